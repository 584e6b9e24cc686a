"""Stage 4, per video, in two steps around the run-wide calibration (``reid_ray.calibration``):

1. ``SampleVideo``: record the clips that failed and the video's certain pairs and proposal distances
   (``calibration/<video_id>.parquet``, written last: its presence marks the video's model work finished).
2. ``RouteVideo``: once the calibration is fitted on every video's samples, propose and route the video's pairs,
   render the review packets of the pairs routed to humans, and write ``pairs/<video_id>.parquet``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reid_ray.calibration import Calibration
from reid_ray.config import PairsJobConfig
from reid_ray.io import bridges_path, calibration_samples_path, candidates_path, clip_pairs_path, errors_path, pairs_path, read_tables, write_table_atomic
from reid_ray.records import rle_to_mask
from reid_ray.schemas import CALIBRATION_SAMPLE, CANDIDATE, ERROR, PAIR, error_row, table_from_rows
from reid_ray.stages.propose import calibration_samples, propose_video
from reid_ray.video.decode import local_video, read_frames

SUMMARY_FIELDS = ("video_id", "n_clip_pairs", "n_clips_ok", "n_clip_errors", "n_candidates", "n_certain_pairs", "seconds_segment")
ROUTE_FIELDS = ("video_id", "n_pairs", "n_review")


def render_review_packets(pairs: list[dict], candidates: dict[str, dict], uri: str, cfg: PairsJobConfig, review_dir: Path) -> None:
    """One PNG per pair routed to humans (skipping those an earlier run drew), decoding only the frames needed."""
    from reid_ray.review.packets import render_pair_row

    pending = [p for p in pairs if p["label"] == "pending_review" and not (review_dir / f"{p['pair_id']}.png").exists()]
    if not pending:
        return
    frames_needed = sorted({p["a_frame"] for p in pending} | {p["b_frame"] for p in pending})
    with local_video(uri, cfg.sources) as local:
        frames = dict(zip(frames_needed, read_frames(local, frames_needed)))
    # Only a real segmenter's masks are worth drawing; a box-only detector's core mask would mislead.
    real_masks = cfg.segmenter.backend == "sam3"
    for p in pending:
        masks = (_mask(candidates[p["a_candidate_id"]]), _mask(candidates[p["b_candidate_id"]])) if real_masks else (None, None)
        render_pair_row(p, frames[p["a_frame"]], frames[p["b_frame"]], review_dir, config=cfg.review, mask_a=masks[0], mask_b=masks[1])


def _mask(c: dict):
    return rle_to_mask({"size": [c["mask_height"], c["mask_width"]], "counts": c["mask_rle"]})


def usable_candidates(out: Path, video_id: str) -> tuple[list[dict], pa.Table]:
    """The video's clip pairs whose two clips were segmented, and their candidates."""
    clip_pairs = pq.read_table(clip_pairs_path(out, video_id)).to_pylist()
    usable = [cp for cp in clip_pairs if all(candidates_path(out, video_id, cp["clip_pair_id"], s).exists() for s in "ab")]
    paths = [candidates_path(out, video_id, cp["clip_pair_id"], s) for cp in usable for s in "ab"]
    return usable, read_tables(paths, CANDIDATE)


class SampleVideo:
    """``map_batches`` callable: one row per video holding the segment stage's status rows as JSON."""

    def __init__(self, cfg_json: str, out_dir: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.out = Path(out_dir)

    def __call__(self, batch: dict) -> dict[str, list]:
        frames = [self.sample(pd.DataFrame(json.loads(s))) for s in batch["statuses"]]
        summary = pd.concat(frames, ignore_index=True)
        return {k: summary[k].tolist() for k in SUMMARY_FIELDS}

    def sample(self, status: pd.DataFrame) -> pd.DataFrame:
        video_id = str(status["video_id"].iloc[0])
        failed = status[status["status"] == "error"]
        err_rows = [
            error_row("segment", r.message, video_id=video_id, uri=r.uri, item_id=f"{r.clip_pair_id}__{r.side}", error_type=r.error_type)
            for r in failed.itertuples()
        ]
        err_path = errors_path(self.out, f"segment__{video_id}")
        if err_rows:
            write_table_atomic(table_from_rows(err_rows, ERROR), err_path)
        else:
            err_path.unlink(missing_ok=True)
        usable, candidates = usable_candidates(self.out, video_id)
        bridge_files = {cp["clip_pair_id"]: bridges_path(self.out, video_id, cp["clip_pair_id"]) for cp in usable}
        bridges = {cp: pq.read_table(path).to_pylist() for cp, path in bridge_files.items() if path.exists()}
        samples = calibration_samples(usable, candidates, self.cfg.proposal, bridges)
        write_table_atomic(table_from_rows(samples, CALIBRATION_SAMPLE), calibration_samples_path(self.out, video_id))
        summary = {
            "video_id": video_id,
            "n_clip_pairs": int(status["clip_pair_id"].nunique()),
            "n_clips_ok": int((status["status"] != "error").sum()),
            "n_clip_errors": len(failed),
            "n_candidates": candidates.num_rows,
            "n_certain_pairs": sum(s["kind"] not in ("proposal", "static") for s in samples),
            "seconds_segment": float(status["seconds"].sum()),
        }
        return pd.DataFrame([summary], columns=list(SUMMARY_FIELDS))


class RouteVideo:
    """``map_batches`` callable: one row per video id; routes by the run's calibration."""

    def __init__(self, cfg_json: str, out_dir: str, calibration_json: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.out = Path(out_dir)
        self.calibration = Calibration.from_json(calibration_json)

    def __call__(self, batch: dict) -> dict[str, list]:
        rows = [self.route(str(v)) for v in batch["video_id"]]
        return {k: [r[k] for r in rows] for k in ROUTE_FIELDS}

    def route(self, video_id: str) -> dict:
        usable, candidates = usable_candidates(self.out, video_id)
        pairs = propose_video(usable, candidates, self.cfg.proposal, self.calibration)
        if any(p["label"] == "pending_review" for p in pairs):
            by_id = {c["candidate_id"]: c for c in candidates.select([n for n in CANDIDATE.names if n != "embedding"]).to_pylist()}
            render_review_packets(pairs, by_id, usable[0]["uri"], self.cfg, self.out / "review")
        write_table_atomic(table_from_rows(pairs, PAIR), pairs_path(self.out, video_id))
        return {"video_id": video_id, "n_pairs": len(pairs), "n_review": sum(p["label"] == "pending_review" for p in pairs)}
