"""A clip pair's frames: which to decode (``frames_to_decode``, shared by the decode stage, which reads them, and
the segment stage, which uses them), at what size (``downscale``), and how they travel between the two stages in
one row (``pack_frames`` / ``unpack_frames``: raw bytes, read back as views without a copy)."""
from __future__ import annotations

import numpy as np

from reid_ray.config import PairsJobConfig
from reid_ray.pairs.clip_pairs import sample_frames
from reid_ray.tracking.bridge import bridge_frames, is_bridged


def frames_to_decode(clip_pair: dict, cfg: PairsJobConfig) -> dict[str, list[int]]:
    """Frame indices per use: 'a' and 'b' (tracked, sampled included), 'bridge' (A's start to B's end)."""
    fps = float(clip_pair["fps"])
    step = max(1, int(round(cfg.sampling.track_step_s * fps)))
    n = cfg.sampling.frames_per_clip
    out: dict[str, list[int]] = {}
    sampled = {}
    for side in "ab":
        start, end = int(clip_pair[f"{side}_start_frame"]), int(clip_pair[f"{side}_end_frame"])
        sampled[side] = sample_frames(start, end, n)
        out[side] = sorted(set(range(start, end, step)) | set(sampled[side]))
    if is_bridged(clip_pair["clip_pair_id"], cfg.proposal.calibration.bridge_share):
        out["bridge"] = bridge_frames(int(clip_pair["a_start_frame"]), int(clip_pair["b_end_frame"]), step, sampled["a"], sampled["b"])
    return out


def downscale(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    import cv2

    h, w = frame.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0:
        return frame, 1.0
    return cv2.resize(frame, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA), s


def pack_frames(frames: list[np.ndarray]) -> bytes:
    return np.ascontiguousarray(np.stack(frames)).tobytes() if frames else b""


def unpack_frames(row: dict) -> dict[int, np.ndarray]:
    """frame index -> RGB uint8 frame at model size (read-only views of the row's bytes)."""
    indices = np.frombuffer(row["frame_indices"], np.int64)
    if not len(indices):
        return {}
    stack = np.frombuffer(row["frames"], np.uint8).reshape(len(indices), int(row["frame_height"]), int(row["frame_width"]), 3)
    return {int(i): stack[k] for k, i in enumerate(indices)}
