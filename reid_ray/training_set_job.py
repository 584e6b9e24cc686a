"""Build the re-identification head's training set from any unlabelled video (the seed's self-supervision):
sources (licences checked) -> one actor per video: shots, tracklets (the long-video job's own ``track``), the
patch sets of every k-th clean view inside its mask -> ``<out>/samples/<video>.parquet`` (``reid_ray.train.data``
schema: video, scene (shot) and tracklet keys, identity null) and ``<out>/previews/<video>.png`` -> report.

A tracklet's views are positives of each other, other tracklets of its shot hard negatives, other videos easy
ones: ``jobs/train.py --data <out>`` trains on it directly. Resumable: a video whose samples file was made from
the same source (id, uri, licence, content fingerprint) is skipped; a changed source is mined again; a licence
refused on a rerun takes its video out of the set. An ``--out`` belongs to one configuration."""
from __future__ import annotations

import datetime as dt
import json
import time
import traceback
from collections import Counter
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from reid_ray.io import errors_path, read_tables, write_json_atomic, write_or_remove, write_table_atomic
from reid_ray.models.registry import preflight
from reid_ray.names import safe_name
from reid_ray.config import TrainingSetJobConfig
from reid_ray.pipeline import RowStage, Stage, init_ray, rows_of, run_stages
from reid_ray.run_state import check_out_dir, check_run_state
from reid_ray.schemas import ERROR, error_row, table_from_rows
from reid_ray.train.data import TRAINING_SET_SAMPLES, to_arrow
from reid_ray.video.decode import VideoDecodeError, content_fingerprint
from reid_ray.video.sources import list_sources, refusal_lines, source_key

STAGE = "mine"
SOURCE_KEY = b"reid_ray.source_key"  # Parquet metadata: what a samples file was made from
SUMMARY_FIELDS = ("video_id", "status", "n_views", "n_tracklets", "n_shots", "n_empty_views", "error_type", "message", "seconds")


def log(msg: str) -> None:
    print(f"[build_training_set {dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


def samples_path(out: Path, video_id: str) -> Path:
    return Path(out) / TRAINING_SET_SAMPLES / f"{safe_name(video_id)}.parquet"


def preview_path(out: Path, video_id: str) -> Path:
    return Path(out) / "previews" / f"{safe_name(video_id)}.png"


def made_from(path: Path) -> str | None:
    """The source key a samples file was made from (None: no file)."""
    if not path.exists():
        return None
    return (pq.read_schema(path).metadata or {}).get(SOURCE_KEY, b"").decode()


class MineTrainingViews(RowStage):
    """One video in, its summary out; models load once per actor, on the first video with work."""

    fields = SUMMARY_FIELDS

    def __init__(self, cfg_json: str, out_dir: str) -> None:
        self.cfg = TrainingSetJobConfig.model_validate_json(cfg_json)
        self.out = Path(out_dir)

    @cached_property
    def tracker(self):
        from reid_ray.reid.tracker import VideoTracker

        return VideoTracker(self.cfg)  # the long-video job's own shots, detector, tracker and embedder

    def process(self, video: dict) -> dict:
        from reid_ray.train.data import mine_video
        from reid_ray.viz.training_set import plot_training_views

        t0 = time.perf_counter()
        vid = video["video_id"]
        summary = {k: 0 for k in SUMMARY_FIELDS} | {"video_id": vid, "status": "ok", "error_type": "", "message": "", "seconds": 0.0}
        err_path = errors_path(self.out, safe_name(vid))
        try:
            key = source_key(video, content_fingerprint(video["uri"], self.cfg.sources))
            path = samples_path(self.out, vid)
            if made_from(path) == key:
                summary["status"] = "skipped"
                return summary
            m = self.cfg.mining
            mined = mine_video(self.tracker, video["uri"], vid, m.every_k, m.clean_only, m.preview_tracklets, m.preview_views)
            rows = [r for r in mined.rows if len(r["patches"])]  # a sliver's mask can hold no patch: counted, not kept
            table = to_arrow(rows)
            write_table_atomic(table.replace_schema_metadata({SOURCE_KEY: key.encode()}), path)
            preview = preview_path(self.out, vid)
            if plot_training_views(mined.preview, preview, f"{vid}: {mined.n_tracklets} tracklets in {mined.n_shots} shot(s)") is None:
                preview.unlink(missing_ok=True)
            err_path.unlink(missing_ok=True)  # an earlier failed attempt's record no longer holds
            summary.update(n_views=len(rows), n_tracklets=mined.n_tracklets, n_shots=mined.n_shots, n_empty_views=len(mined.rows) - len(rows))
        except Exception as err:  # noqa: BLE001  (one bad video must not end the job: it becomes an error record)
            kind = "decode" if isinstance(err, VideoDecodeError) else type(err).__name__
            msg = str(err) if kind == "decode" else f"{err}\n{traceback.format_exc(limit=4)}"
            write_table_atomic(table_from_rows([error_row(STAGE, msg, video_id=vid, uri=video.get("uri", ""), error_type=kind)], ERROR), err_path)
            summary.update(status="error", error_type=kind, message=msg)
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        return summary


def run_training_set_job(cfg: TrainingSetJobConfig, videos: str, out: Path) -> dict:
    """Run (or resume) the job; the report's ``failure`` is set when no video gave a single training view."""
    t0 = time.perf_counter()
    out = Path(out)
    check_out_dir(out)
    sources, refused = list_sources(videos, cfg.sources)
    (out / "errors").mkdir(parents=True, exist_ok=True)
    check_run_state(out, cfg.fingerprint(), cfg.run_record())
    write_or_remove(refused, ERROR, errors_path(out, "sources"))  # this run's refusals, not an earlier run's
    for r in refused:  # a licence refused now takes the video's views out of the set
        if r["video_id"]:
            samples_path(out, r["video_id"]).unlink(missing_ok=True)
            preview_path(out, r["video_id"]).unlink(missing_ok=True)
    log(f"{len(sources)} usable video(s), {len(refused)} refused")
    for line in refusal_lines(refused, str(errors_path(out, "sources"))):
        log(f"  {line}")
    summaries: list[dict] = []
    if sources:
        preflight(cfg)  # model files fetched once, in the driver, before any actor starts
        init_ray(cfg.resources.ray_address, cfg.resources.num_cpus)
        import ray

        kwargs = {"cfg_json": cfg.model_dump_json(), "out_dir": str(out.resolve())}
        ds = run_stages(ray.data.from_items(sources, override_num_blocks=max(1, len(sources))),
                        [Stage(STAGE, MineTrainingViews, kwargs, cfg.resources.video)])
        for batch in ds.iter_batches(batch_size=64, batch_format="numpy"):  # one small summary per video
            for s in rows_of(batch):
                summaries.append(s)
                extra = f"{s['error_type']}: {s['message'].splitlines()[0] if s['message'] else ''}" if s["status"] == "error" else (
                    f"{s['n_views']} views of {s['n_tracklets']} tracklets in {s['n_shots']} shot(s)")
                log(f"video {s['video_id']}: {s['status']} in {s['seconds']:.1f} s, {extra}")
    report = build_report(cfg, out, sources, refused, summaries, time.perf_counter() - t0)
    write_json_atomic(report, out / "report.json")
    if report["failure"]:
        log(f"no training views: {report['failure']}")
    else:
        log(f"{report['set']['views']} views of {report['set']['tracklets']} tracklets from {report['set']['videos']} video(s); "
            f"train with: python jobs/train.py --data {out}")
    return report


def build_report(cfg: TrainingSetJobConfig, out: Path, sources: list[dict], refused: list[dict], summaries: list[dict], seconds: float) -> dict:
    """Counts over the whole set (this run's and earlier runs' videos of this manifest), read from the files' footers."""
    views = tracklets = videos = 0
    for v in sources:
        path = samples_path(out, v["video_id"])
        if path.exists():
            t = pq.read_table(path, columns=["shot_id", "tracklet_id"])
            views += t.num_rows
            tracklets += len(set(zip(t.column("shot_id").to_pylist(), t.column("tracklet_id").to_pylist())))
            videos += t.num_rows > 0
    paths = [errors_path(out, "sources"), *(errors_path(out, safe_name(v["video_id"])) for v in sources)]
    errors = read_tables([p for p in paths if p.exists()], ERROR).to_pylist()
    failure = ""
    if not views:
        problems = [f"{e['video_id'] or e['uri']}: {e['message'].splitlines()[0] if e['message'] else e['error_type']}" for e in errors]
        failure = (f"no video gave a training view ({len(refused)} refused, {len(errors) - len(refused)} failed"
                   + (f": {'; '.join(problems[:3])}" if problems else "; no person tracked long enough") + ")")
    return {
        "job": "build_training_set",
        "fingerprint": cfg.fingerprint(),
        "seconds": round(seconds, 2),
        "samples": str(out / TRAINING_SET_SAMPLES),
        "set": {"videos": videos, "tracklets": tracklets, "views": views},
        "videos": {"usable": len(sources), "refused": len(refused), "processed_this_run": sum(s["status"] != "skipped" for s in summaries)},
        "this_run": {k: int(np.sum([s[k] for s in summaries])) for k in ("n_views", "n_tracklets", "n_empty_views")}
        | {"by_status": dict(Counter(s["status"] for s in summaries))},
        "failure": failure,
        "errors": {"total": len(errors), "by_stage_and_type": dict(Counter(f"{e['stage']}/{e['error_type']}" for e in errors))},
        "config": json.loads(cfg.model_dump_json()),
    }
