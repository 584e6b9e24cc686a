"""Clip pairs: choose pairs of clips of one video separated by a time gap (the probe stage calls this).

``gap_s`` is the offset between the two clips' starts, so frame k of clip A and frame k of clip B are exactly
``gap_s`` apart. Seeded per video (seed, video_id): the same config always picks the same clips."""
from __future__ import annotations

import hashlib

import numpy as np

from reid_ray.config import ClipPairsConfig

MAX_TRIES = 200


class ClipSelectionError(ValueError):
    """The video cannot hold a clip pair under this config (too short, no suitable shots)."""


def video_rng(seed: int, video_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{video_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def shot_of(frame: int, shots: list[tuple[int, int]]) -> int:
    for i, (s, e) in enumerate(shots):
        if s <= frame < e:
            return i
    return len(shots) - 1


def _draw_gap(rng: np.random.Generator, gap: float | tuple[float, float]) -> float:
    if isinstance(gap, (int, float)):
        return float(gap)
    lo, hi = gap
    return float(rng.uniform(lo, hi))


def select_clip_pairs(
    video: dict, fps: float, n_frames: int, cfg: ClipPairsConfig, shots: list[tuple[int, int]] | None = None
) -> list[dict]:
    """CLIP_PAIR rows for one video. Raises ClipSelectionError when no pair fits."""
    shots = shots or [(0, n_frames)]
    clip_len = max(1, int(round(cfg.clip_length_s * fps)))
    rng = video_rng(cfg.seed, video["video_id"])
    rows: dict[tuple[int, int], dict] = {}
    for _ in range(MAX_TRIES):
        if len(rows) >= cfg.pairs_per_video:
            break
        gap_s = _draw_gap(rng, cfg.time_gap_s)
        gap_frames = int(round(gap_s * fps))
        last_a_start = n_frames - clip_len - gap_frames  # clip B must end inside the video
        if last_a_start < 0:
            continue
        a0 = int(rng.integers(0, last_a_start + 1))
        b0 = a0 + gap_frames
        a_shot, b_shot = shot_of(a0, shots), shot_of(b0, shots)
        a_whole = a_shot == shot_of(a0 + clip_len - 1, shots)
        b_whole = b_shot == shot_of(b0 + clip_len - 1, shots)
        if cfg.shot_constraint == "same_shot" and not (a_shot == b_shot and a_whole and b_whole):
            continue
        if cfg.shot_constraint == "across_cut" and not (a_shot != b_shot and a_whole and b_whole):
            continue
        if (a0, b0) in rows:
            continue
        pair_id = f"{video['video_id']}__{a0:07d}_{b0:07d}"
        rows[(a0, b0)] = {
            "clip_pair_id": pair_id,
            "video_id": video["video_id"],
            "uri": video["uri"],
            "license": video["license"],
            "fps": float(fps),
            "gap_s": gap_frames / fps,
            "a_start_frame": a0,
            "a_end_frame": a0 + clip_len,
            "b_start_frame": b0,
            "b_end_frame": b0 + clip_len,
            "a_shot": a_shot,
            "b_shot": b_shot,
            "across_cut": a_shot != b_shot,
            "source_key": video.get("source_key", ""),
        }
    if not rows:
        duration = n_frames / fps if fps else 0.0
        raise ClipSelectionError(
            f"no clip pair fits video {video['video_id']} ({duration:.1f} s, {len(shots)} shot(s)) with gap "
            f"{cfg.time_gap_s} s, clip length {cfg.clip_length_s} s and shot constraint '{cfg.shot_constraint}'"
        )
    return sorted(rows.values(), key=lambda r: r["clip_pair_id"])


def sample_frames(start: int, end: int, n: int) -> list[int]:
    """n frames spread evenly over [start, end), ends included; fewer if the clip is shorter."""
    if end - start <= n:
        return list(range(start, end))
    return sorted(set(int(round(x)) for x in np.linspace(start, end - 1, n)))
