"""The last stage, after the run-wide calibration (``reid_ray.calibration``) is fitted on every clip pair's samples
(``calibration/<video>/<clip pair>.parquet``, written by the segment stage):

``RouteVideo``, per video: route the pairs the segment stage proposed (``proposals/``), render the review packets of
the pairs routed to humans, and write ``pairs/<video>.parquet``. The file carries the key of what it was routed from
(calibration and finished clip pairs): a rerun routes a video again only when that changed.
"""
from __future__ import annotations

import hashlib
import tempfile
import traceback
from pathlib import Path

import pyarrow as pa

from reid_ray.calibration import Calibration
from reid_ray.config import PairsJobConfig
from reid_ray.io import (
    calibration_samples_path, candidates_path, clip_pairs_path, pairs_path, proposals_path, read_parquet, read_parquet_schema,
    read_tables, video_errors_path, write_or_remove, write_table_atomic,
)
from reid_ray.models import registry
from reid_ray.storage import OutPath, S3Path, out_root, upload_file
from reid_ray.names import packet_file_name
from reid_ray.pipeline import RowStage, StageClock
from reid_ray.records import rle_to_mask
from reid_ray.review.gold import gold_answer
from reid_ray.schemas import CANDIDATE, ERROR, PAIR, PROPOSAL, error_row, table_from_rows
from reid_ray.pairs.proposal import make_router, route_proposals
from reid_ray.video.decode import local_video, read_frames

ROUTE_FIELDS = ("video_id", "status", "n_clip_pairs", "n_unfinished", "n_pairs", "n_review")
ROUTE_KEY = b"reid_ray.route_key"


class MissingOutputError(RuntimeError):
    """A file an earlier stage reported written is not there (on a cluster: written to another node's disk)."""


def render_review_packets(pairs: list[dict], candidates: dict[str, dict], uri: str, cfg: PairsJobConfig, review_dir: OutPath) -> None:
    """One PNG per pair given (those routed to humans and the gold questions), skipping those an earlier run drew,
    decoding only the frames needed."""
    from reid_ray.review.packets import render_pair_row

    pending = [p for p in pairs if not (review_dir / packet_file_name(p['pair_id'])).exists()]
    if not pending:
        return
    frames_needed = sorted({p["a_frame"] for p in pending} | {p["b_frame"] for p in pending})
    with local_video(uri, cfg.sources) as local:
        frames = dict(zip(frames_needed, read_frames(local, frames_needed)))
    # Only a real segmenter's masks are worth drawing; a box-only detector's core mask would mislead.
    real_masks = registry.real_masks(cfg.segmenter.backend)
    for p in pending:
        fa, fb = frames[p["a_frame"]], frames[p["b_frame"]]
        masks = (_mask(candidates[p["a_candidate_id"]], fa.shape[:2]), _mask(candidates[p["b_candidate_id"]], fb.shape[:2])) if real_masks else (None, None)
        if isinstance(review_dir, S3Path):  # drawn locally, then put beside the other outputs
            with tempfile.TemporaryDirectory() as tmp:
                png = render_pair_row(p, fa, fb, tmp, config=cfg.review, mask_a=masks[0], mask_b=masks[1])
                upload_file(Path(png), review_dir / Path(png).name)
        else:
            render_pair_row(p, fa, fb, review_dir, config=cfg.review, mask_a=masks[0], mask_b=masks[1])


def _mask(c: dict, frame_shape: tuple[int, int]):
    """The candidate's mask at the source frame's size (masks are kept at model size)."""
    import cv2
    import numpy as np

    mask = rle_to_mask({"size": [c["mask_height"], c["mask_width"]], "counts": c["mask_rle"]})
    if mask.shape[:2] == tuple(frame_shape):
        return mask
    return cv2.resize(mask.astype(np.uint8), (frame_shape[1], frame_shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def require_files(paths: list[OutPath], what: str) -> list[OutPath]:
    """A file of a finished clip pair that is missing is an error, never a silent skip."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise MissingOutputError(
            f"{len(missing)} {what} file(s) of finished clip pairs are missing, e.g. {missing[0]}: "
            "--out must be storage every node of the cluster can read (a shared filesystem or s3://)"
        )
    return paths


def read_candidates(out: OutPath, video_id: str, clip_pair_ids: list[str]) -> pa.Table:
    """The candidates of these finished clip pairs."""
    return read_tables(require_files([candidates_path(out, video_id, cp) for cp in clip_pair_ids], "candidate"), CANDIDATE)


def read_proposals(out: OutPath, video_id: str, clip_pair_ids: list[str]) -> list[list[dict]]:
    """Per clip pair (in the given order), its proposed pairs before routing; the candidate files they point at
    must be there too."""
    require_files([candidates_path(out, video_id, cp) for cp in clip_pair_ids], "candidate")
    paths = require_files([proposals_path(out, video_id, cp) for cp in clip_pair_ids], "proposal")
    return [read_parquet(p, schema=PROPOSAL).to_pylist() for p in paths]


def route_key(routing_key: str, finished: list[str]) -> str:
    return hashlib.sha256("\n".join([routing_key, *sorted(finished)]).encode()).hexdigest()[:16]


def stored_route_key(path: OutPath) -> str | None:
    if not path.exists():
        return None
    meta = read_parquet_schema(path).metadata or {}
    return meta.get(ROUTE_KEY, b"").decode() or None


class RouteVideo(RowStage):
    """One video id in, its routing status out; routes by the run's calibration."""

    fields = ROUTE_FIELDS

    def __init__(self, cfg_json: str, out_dir: str, calibration_json: str, routing_key: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.out = out_root(out_dir, self.cfg.sources.s3_endpoint_url)
        self.calibration = Calibration.from_json(calibration_json)
        self.router = make_router(self.cfg.proposal, self.calibration)
        self.routing_key = routing_key
        self.clock = StageClock("route", self.out)

    def process(self, row: dict) -> dict:
        return self.route(str(row["video_id"]))

    def route(self, video_id: str) -> dict:
        status = {"video_id": video_id, "status": "routed", "n_clip_pairs": 0, "n_unfinished": 0, "n_pairs": 0, "n_review": 0}
        cp_file = clip_pairs_path(self.out, video_id)
        if not cp_file.exists():  # never probed successfully: the probe's error record says why
            return {**status, "status": "not_probed"}
        clip_pairs = read_parquet(cp_file).to_pylist()
        finished = [cp for cp in clip_pairs if calibration_samples_path(self.out, video_id, cp["clip_pair_id"]).exists()]
        status.update(n_clip_pairs=len(clip_pairs), n_unfinished=len(clip_pairs) - len(finished))
        if not finished:
            return {**status, "status": "nothing_finished"}
        path = pairs_path(self.out, video_id)
        key = route_key(self.routing_key, [cp["clip_pair_id"] for cp in finished])
        err_path = video_errors_path(self.out, "route", video_id)
        if stored_route_key(path) == key:
            return {**status, "status": "up_to_date"}
        try:
            # The model stage proposed each clip pair's pairs; routing labels them by the run's calibration.
            ids = sorted(cp["clip_pair_id"] for cp in finished)
            pairs = [p for proposals in read_proposals(self.out, video_id, ids) for p in route_proposals(proposals, self.router, video_id)]
            to_review = [p for p in pairs if p["label"] == "pending_review" or gold_answer(p, self.cfg.review) is not None]
            if to_review:
                by_id = {}  # masks are drawn only for a real segmenter's (render_review_packets)
                if registry.real_masks(self.cfg.segmenter.backend):
                    columns = [n for n in CANDIDATE.names if n != "embedding"]
                    by_id = {c["candidate_id"]: c for c in read_candidates(self.out, video_id, ids).select(columns).to_pylist()}
                render_review_packets(to_review, by_id, finished[0]["uri"], self.cfg, self.out / "review")
            table = table_from_rows(pairs, PAIR)
            write_table_atomic(table.replace_schema_metadata({ROUTE_KEY: key.encode()}), path)
        except Exception as err:  # one video's failure is its error record; the rest of the corpus goes on
            message = str(err) if isinstance(err, MissingOutputError) else f"{err}\n{traceback.format_exc(limit=3)}"
            write_or_remove([error_row("route", message, video_id=video_id, item_id=video_id, error_type=type(err).__name__)], ERROR, err_path)
            return {**status, "status": "error"}
        write_or_remove([], ERROR, err_path)
        return {**status, "n_pairs": len(pairs), "n_review": sum(p["label"] == "pending_review" for p in pairs)}
