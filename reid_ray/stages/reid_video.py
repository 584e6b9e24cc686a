"""The per-video actor of the re-identification job: one row per video, decoded inside the actor.

The work is the library's (``reid_ray/reid/``): the tracker (shots, persons, embeddings, tracklets), the identity
step (distances, clustering, gap filling) and the outputs; this actor loads the models once, runs them on each
video and turns a failed video into an error record. A plain callable: Ray Data runs it as an actor pool; a test
may call ``process`` directly.
"""
from __future__ import annotations

import time
import traceback
from pathlib import Path

import numpy as np

from reid_ray.config import ReidJobConfig
from reid_ray.io import write_table_atomic
from reid_ray.mot_format import DetectionsFormatError, read_public_detections
from reid_ray.names import safe_name
from reid_ray.pipeline import RowStage
from reid_ray.reid import outputs
from reid_ray.reid.identities import Identities, assign_identities
from reid_ray.reid.tracker import TrackedVideo, VideoTracker
from reid_ray.schemas import ERROR, error_row, table_from_rows
from reid_ray.tracking.exports import VideoTracks, write_track_exports
from reid_ray.video.decode import VideoDecodeError, local_video, probe

STAGE = "reid_video"
SUMMARY_FIELDS = ("video_id", "status", "n_frames", "n_shots", "n_tracklets", "n_identities", "error_type", "message", "seconds")


class ReidVideoStage(RowStage):
    """One video in, its summary row out; models load once per actor."""

    fields = SUMMARY_FIELDS

    def __init__(self, cfg_json: str, out_dir: str, detections_dir: str | None = None) -> None:
        self.cfg = ReidJobConfig.model_validate_json(cfg_json)
        self.out = Path(out_dir)
        self.detections_dir = Path(detections_dir) if detections_dir else None
        self.tracker = VideoTracker(self.cfg, public_detections=self.detections_dir is not None)

    def process(self, video: dict) -> dict:
        """One video to its folder; a summary row, ``status`` ok, skipped (finished before) or error."""
        t0 = time.perf_counter()
        vid = video["video_id"]
        summary = {k: 0 for k in SUMMARY_FIELDS} | {"video_id": vid, "status": "ok", "error_type": "", "message": "", "seconds": 0.0}
        if outputs.is_finished(self.out, vid):
            summary["status"] = "skipped"
            return summary
        err_path = outputs.video_errors_path(self.out, vid)
        try:
            report = self.run(video)
            err_path.unlink(missing_ok=True)  # an earlier failed attempt's record no longer holds
            summary.update({k: report["counts"][k] for k in ("n_frames", "n_shots", "n_tracklets", "n_identities")})
        except Exception as err:  # noqa: BLE001  (one bad video must not end the job: it becomes an error row)
            kind = "decode" if isinstance(err, VideoDecodeError) else "detections" if isinstance(err, DetectionsFormatError) else type(err).__name__
            msg = str(err) if kind in ("decode", "detections") else f"{err}\n{traceback.format_exc(limit=4)}"
            write_table_atomic(table_from_rows([error_row(STAGE, msg, video_id=vid, uri=video.get("uri", ""), error_type=kind)], ERROR), err_path)
            summary.update(status="error", error_type=kind, message=msg)
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        return summary

    def run(self, video: dict) -> dict:
        """Track, assign identities, write the outputs; the report last."""
        t0 = time.perf_counter()
        vid, timings = video["video_id"], {}
        folder = outputs.video_dir(self.out, vid)
        folder.mkdir(parents=True, exist_ok=True)
        with local_video(video["uri"], self.cfg.sources) as local:
            info = probe(local)
            given = None
            if self.detections_dir is not None:  # read before decoding: a bad file fails fast
                given = read_public_detections(self.detections_dir / f"{safe_name(vid)}.txt", info.n_frames)
            tracked = self.tracker.track(local, given, timings)
            views = tracked.views()
            # public detections are taken as given: no boxes are filled into their gaps
            ids = assign_identities(tracked.tracklets, views, tracked.shots, info.n_frames, self.cfg.distance, self.cfg.clustering,
                                    self.cfg.tracking.interpolate_gaps if given is None else 0, timings)
            t = time.perf_counter()
            outputs.write_tracklets_table(folder, vid, tracked.tracklets, ids.identity, views)
            exports = write_track_exports(folder, self.cfg.outputs.track_formats,
                                          VideoTracks.from_tracklets(vid, info, tracked.tracklets, ids.identity, ids.filled, tracked.detections))
            figures = self.write_figures(folder, local, vid, tracked, ids, views) if self.cfg.outputs.figures else {}
            timings["figures_s"] = time.perf_counter() - t
            t = time.perf_counter()
            if self.cfg.outputs.videos:
                outputs.write_videos(folder, local, info.fps, tracked.tracklets, ids.identity, ids.filled, tracked.detections)
            timings["videos_s"] = time.perf_counter() - t
        report = outputs.video_report(self.cfg, video, info, given is not None, tracked, ids, figures, exports, timings,
                                      time.perf_counter() - t0)
        outputs.write_report(report, folder)
        return report

    def write_figures(self, folder: Path, local: str, vid: str, tracked: TrackedVideo, ids: Identities, views: list[np.ndarray]) -> dict:
        tracker = self.tracker
        figures = outputs.write_figures(folder, vid, tracked.tracklets, ids.identity, views, ids.hierarchy, ids.in_tree,
                                        self.cfg.clustering.threshold, tracker.embedder.dim, self.cfg.embedding_plot)
        if outputs.write_patch_maps(folder, local, vid, tracked.tracklets, ids.identity, tracked.detections, tracker.embedder,
                                    tracker.head, self.cfg.embedder.backend):
            figures["patch_maps"] = outputs.PATCH_MAPS
        return figures
