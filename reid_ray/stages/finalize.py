"""Stage 4 (per video): propose and route pairs from the video's candidates, render the review packets of the
pairs routed to humans, record the clips that failed, and write ``pairs/<video_id>.parquet`` last: its presence
marks the video finished, so a rerun skips it."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from reid_ray.config import PairsJobConfig
from reid_ray.io import candidates_path, clip_pairs_path, errors_path, pairs_path, read_tables, write_table_atomic
from reid_ray.records import rle_to_mask
from reid_ray.schemas import CANDIDATE, ERROR, PAIR, error_row, table_from_rows
from reid_ray.stages.propose import propose_video
from reid_ray.video.decode import local_video, read_frames

SUMMARY_FIELDS = ("video_id", "n_clip_pairs", "n_clips_ok", "n_clip_errors", "n_candidates", "n_pairs", "n_review", "seconds_segment")


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


class FinalizeVideo:
    """``map_batches`` callable: one row per video holding the segment stage's status rows as JSON."""

    def __init__(self, cfg_json: str, out_dir: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.out = Path(out_dir)

    def __call__(self, batch: dict) -> dict[str, list]:
        frames = [self.finalize(pd.DataFrame(json.loads(s))) for s in batch["statuses"]]
        summary = pd.concat(frames, ignore_index=True)
        return {k: summary[k].tolist() for k in SUMMARY_FIELDS}

    def finalize(self, status: pd.DataFrame) -> pd.DataFrame:
        video_id = str(status["video_id"].iloc[0])
        clip_pairs = pq.read_table(clip_pairs_path(self.out, video_id)).to_pylist()
        failed = status[status["status"] == "error"]
        bad_pairs = set(failed["clip_pair_id"])
        err_rows = [
            error_row("segment", r.message, video_id=video_id, uri=r.uri, item_id=f"{r.clip_pair_id}__{r.side}", error_type=r.error_type)
            for r in failed.itertuples()
        ]
        err_path = errors_path(self.out, f"segment__{video_id}")
        if err_rows:
            write_table_atomic(table_from_rows(err_rows, ERROR), err_path)
        else:
            err_path.unlink(missing_ok=True)
        usable = [cp for cp in clip_pairs if cp["clip_pair_id"] not in bad_pairs]
        paths = [candidates_path(self.out, video_id, cp["clip_pair_id"], s) for cp in usable for s in ("a", "b")]
        candidates = read_tables([p for p in paths if p.exists()], CANDIDATE)
        pairs = propose_video(usable, candidates, self.cfg.proposal)
        if any(p["label"] == "pending_review" for p in pairs):
            by_id = {c["candidate_id"]: c for c in candidates.select([n for n in CANDIDATE.names if n != "embedding"]).to_pylist()}
            render_review_packets(pairs, by_id, clip_pairs[0]["uri"], self.cfg, self.out / "review")
        write_table_atomic(table_from_rows(pairs, PAIR), pairs_path(self.out, video_id))
        summary = {
            "video_id": video_id,
            "n_clip_pairs": len(clip_pairs),
            "n_clips_ok": int((status["status"] != "error").sum()),
            "n_clip_errors": len(failed),
            "n_candidates": candidates.num_rows,
            "n_pairs": len(pairs),
            "n_review": sum(p["label"] == "pending_review" for p in pairs),
            "seconds_segment": float(status["seconds"].sum()),
        }
        return pd.DataFrame([summary], columns=list(SUMMARY_FIELDS))
