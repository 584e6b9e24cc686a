"""The long-video re-identification job: sources -> one actor per video (``stages/reid_video.py``) -> a job
report. Resumable: a video whose ``<out>/<video_id>/report.json`` exists is finished and skipped."""
from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path

from reid_ray.io import errors_path, read_tables, write_json_atomic, write_table_atomic
from reid_ray.models.registry import preflight
from reid_ray.pipeline import Stage, apply_stage, init_ray
from reid_ray.reid_config import ReidJobConfig
from reid_ray.schemas import ERROR, table_from_rows
from reid_ray.stages.reid_video import ReidVideoStage, is_finished
from reid_ray.video.sources import list_sources


def log(msg: str) -> None:
    print(f"[reid_videos {dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


def run_reid_job(cfg: ReidJobConfig, videos: str, out: Path, detections: str | Path | None = None) -> dict:
    t0 = time.perf_counter()
    out = Path(out)
    (out / "errors").mkdir(parents=True, exist_ok=True)
    if detections is not None and not Path(detections).is_dir():
        raise FileNotFoundError(f"--detections {detections} is not a directory")
    sources, refused = list_sources(videos, cfg.sources)
    if refused:
        write_table_atomic(table_from_rows(refused, ERROR), errors_path(out, "sources"))
    todo = [v for v in sources if not is_finished(out, v["video_id"])]
    log(f"{len(sources)} usable video(s), {len(refused)} refused, {len(sources) - len(todo)} already finished, {len(todo)} to do")
    if todo and detections is None:
        preflight(cfg)  # fetch model files once, in the driver
    summaries = run_ray_pipeline(cfg, todo, out, detections) if todo else []
    for s in summaries:
        extra = f"{s['error_type']}: {s['message'].splitlines()[0] if s['message'] else ''}" if s["status"] == "error" else (
            f"{s['n_shots']} shot(s), {s['n_tracklets']} tracklets -> {s['n_identities']} identities")
        log(f"video {s['video_id']}: {s['status']} in {s['seconds']:.1f} s, {extra}")
    report = build_report(cfg, out, sources, refused, summaries, detections, time.perf_counter() - t0)
    write_json_atomic(report, out / "report.json")
    return report


def run_ray_pipeline(cfg: ReidJobConfig, videos: list[dict], out: Path, detections: str | Path | None) -> list[dict]:
    import ray

    init_ray(cfg.resources.ray_address, cfg.resources.num_cpus)
    kwargs = {"cfg_json": cfg.model_dump_json(), "out_dir": str(out.resolve()),
              "detections_dir": str(Path(detections).resolve()) if detections is not None else None}
    ds = ray.data.from_items(videos, override_num_blocks=max(1, len(videos)))
    ds = apply_stage(ds, Stage("reid_video", ReidVideoStage, kwargs, cfg.resources.video))
    return sorted(ds.take_all(), key=lambda s: s["video_id"])


def build_report(cfg, out: Path, sources, refused, summaries, detections, seconds: float) -> dict:
    errors = read_tables(list((out / "errors").glob("*.parquet")), ERROR).to_pylist()
    return {
        "job": "reid_videos",
        "fingerprint": cfg.fingerprint(),
        "detections": str(detections) if detections is not None else cfg.segmenter.backend,
        "seconds": round(seconds, 2),
        "videos": {"usable": len(sources), "refused": len(refused), "processed_this_run": len(summaries),
                   "finished": sum(is_finished(out, v["video_id"]) for v in sources)},
        "this_run": summaries,
        "errors": {"total": len(errors), "by_stage_and_type": dict(Counter(f"{e['stage']}/{e['error_type']}" for e in errors))},
        "config": json.loads(cfg.model_dump_json()),
    }
