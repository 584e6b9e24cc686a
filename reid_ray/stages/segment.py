"""Stage 2 (the model stage): one clip pair per row, its frames decoded by ``stages/decode.py``. The candidates of
both clips (``reid_ray/pairs/candidates.py``: segment, faces, embed, quality, tracks within each clip) as one Parquet
file (``candidates/<video>/<clip pair>.parquet``); for a bridged clip pair, tracks followed across the gap
(``bridges/``). Last, from the same rows in memory: the clip pair's proposed pairs before routing (``proposals/``),
and its certain pairs and proposal distances for the run's calibration (``calibration/<video>/<clip pair>.parquet``):
written last, its presence marks the clip pair finished.

A plain callable: Ray Data runs it as an actor pool (``compute=ActorPoolStrategy``); a test calls it directly.
"""
from __future__ import annotations

import time
import traceback

from reid_ray.config import PairsJobConfig
from reid_ray.io import (
    bridges_path, calibration_samples_path, candidates_path, clip_pair_errors_path, proposals_path, write_or_remove,
    write_table_atomic,
)
from reid_ray.pairs.candidates import CandidateFinder, clip_rows
from reid_ray.pairs.frames import frames_to_decode, unpack_frames
from reid_ray.pairs.proposal import build_tracks, certain_pairs, matches, proposal_rows
from reid_ray.pipeline import RowStage, StageClock
from reid_ray.schemas import BRIDGE, CALIBRATION_SAMPLE, CANDIDATE, CLIP_PAIR_FIELDS, ERROR, PROPOSAL, error_row, table_from_rows
from reid_ray.storage import out_root

STATUS_FIELDS = ("clip_pair_id", "video_id", "uri", "status", "n_frames", "n_instances", "n_kept", "n_certain_pairs", "error_type",
                 "message", "seconds")
SEGMENTED_FIELDS = CLIP_PAIR_FIELDS + STATUS_FIELDS[3:]


class ClipPairSegmentStage(RowStage):
    """One decoded clip pair in, the clip pair with its status out; loads its models once per actor, when a clip
    pair first needs them."""

    fields = SEGMENTED_FIELDS

    def __init__(self, cfg_json: str, out_dir: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.out_dir = out_root(out_dir, self.cfg.sources.s3_endpoint_url)
        self.finder = CandidateFinder(self.cfg)  # models load on first use
        self.clock = StageClock("segment", self.out_dir)

    def process(self, row: dict) -> dict:
        """The clip pair's fields (the frames left behind) and its status."""
        return {**{k: row[k] for k in CLIP_PAIR_FIELDS}, **self.segment(row)}

    def segment(self, row: dict) -> dict:
        """Status of one decoded clip pair; its candidates (and bridges) written, or its error recorded."""
        t0 = time.perf_counter()
        status = {k: row.get(k, "") for k in ("clip_pair_id", "video_id", "uri")}
        status.update(status="ok", n_frames=0, n_instances=0, n_kept=0, n_certain_pairs=0, error_type="", message="", seconds=0.0)
        video_id, cp_id = row["video_id"], row["clip_pair_id"]
        err_path = clip_pair_errors_path(self.out_dir, "segment", video_id, cp_id)
        finished = calibration_samples_path(self.out_dir, video_id, cp_id)
        if finished.exists():  # finished by an earlier run: idempotent skip
            status["status"] = "skipped"
            return status
        try:
            if row["error_type"]:
                raise ClipPairInputError(row["error_type"], row["message"])
            frames = unpack_frames(row)
            scale = float(row["scale"])
            wanted = frames_to_decode(row, self.cfg)
            detections = {}  # one detection per frame, shared by a clip's tracking and the bridge
            bridges = None
            if "bridge" in wanted:
                table = table_from_rows(self.finder.bridges(row, wanted, frames, detections, scale), BRIDGE)
                write_table_atomic(table, bridges_path(self.out_dir, video_id, cp_id))
                bridges = table.to_pylist()  # as written, like the candidates below
            rows = []
            for clip in clip_rows(row):
                clip_candidates, n_frames = self.finder.clip_candidates(clip, frames, scale, detections)
                rows += clip_candidates
                status["n_frames"] += n_frames
            both = table_from_rows(rows, CANDIDATE)
            write_table_atomic(both, candidates_path(self.out_dir, video_id, cp_id))
            # From the table as written (float32), so the samples equal what routing later reads from the file.
            tracks = build_tracks(both, self.cfg.proposal)
            matched = list(matches(tracks, self.cfg.proposal))  # track distances and matches, computed once for both
            proposals = proposal_rows(row, tracks, self.cfg.proposal, matched)  # routed once the calibration is known
            write_table_atomic(table_from_rows(proposals, PROPOSAL), proposals_path(self.out_dir, video_id, cp_id))
            samples = [{"video_id": video_id, "clip_pair_id": cp_id, **s}
                       for s in certain_pairs(tracks, self.cfg.proposal, bridges, matched)]
            write_table_atomic(table_from_rows(samples, CALIBRATION_SAMPLE), finished)  # last: the clip pair is finished
            status.update(n_instances=both.num_rows, n_kept=sum(both.column("keep").to_pylist()),
                          n_certain_pairs=sum(s["kind"] not in ("proposal", "static") for s in samples))
        except ClipPairInputError as err:
            status.update(status="error", error_type=err.error_type, message=err.message)
        except Exception as err:  # one bad clip pair must not end the job: it becomes an error record
            status.update(status="error", error_type=type(err).__name__, message=f"{err}\n{traceback.format_exc(limit=3)}")
        failed = [error_row("segment", status["message"], video_id=video_id, uri=row["uri"], item_id=cp_id, error_type=status["error_type"])]
        write_or_remove(failed if status["status"] == "error" else [], ERROR, err_path)
        status["seconds"] = round(time.perf_counter() - t0, 3)
        return status


class ClipPairInputError(Exception):
    """The decode stage could not give this clip pair's frames."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type, self.message = error_type, message
