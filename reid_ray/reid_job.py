"""The long-video re-identification job: sources -> one actor per video (``stages/reid_video.py``) -> a job
report. Resumable: a video whose ``<out>/<safe_name(video_id)>/report.json`` exists is finished and skipped.
An ``--out`` belongs to one configuration (``_run.json``): a rerun with another one is refused."""
from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path

from reid_ray.io import errors_path, read_tables, write_json_atomic, write_or_remove
from reid_ray.models.registry import preflight
from reid_ray.names import safe_name
from reid_ray.config import ReidJobConfig
from reid_ray.pipeline import Stage, init_ray, run_stages
from reid_ray.run_state import check_out_dir, check_run_state
from reid_ray.schemas import ERROR
from reid_ray.reid.outputs import is_finished, video_errors_path
from reid_ray.stages.reid_video import ReidVideoStage
from reid_ray.video.sources import list_sources, refusal_lines


def log(msg: str) -> None:
    print(f"[reid_videos {dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


def run_reid_job(cfg: ReidJobConfig, videos: str, out: Path, detections: str | Path | None = None) -> dict:
    """Run (or resume) the job; the report's ``failure`` is set when no video has results."""
    t0 = time.perf_counter()
    out = Path(out)
    check_out_dir(out)
    if detections is not None and not Path(detections).is_dir():
        raise FileNotFoundError(f"--detections {detections} is not a directory")
    sources, refused = list_sources(videos, cfg.sources)  # a spec that does not exist stops here, nothing written
    (out / "errors").mkdir(parents=True, exist_ok=True)
    check_run_state(out, cfg.fingerprint(), cfg.run_record())
    write_or_remove(refused, ERROR, errors_path(out, "sources"))  # this run's refusals, not an earlier run's
    todo = [v for v in sources if not is_finished(out, v["video_id"])]
    log(f"{len(sources)} usable video(s), {len(refused)} refused, {len(sources) - len(todo)} already finished, {len(todo)} to do")
    for line in refusal_lines(refused, str(errors_path(out, "sources"))):
        log(f"  {line}")
    if todo and detections is None:
        preflight(cfg)  # fetch model files once, in the driver
    summaries = run_ray_pipeline(cfg, todo, out, detections) if todo else []
    for s in summaries:
        extra = f"{s['error_type']}: {s['message'].splitlines()[0] if s['message'] else ''}" if s["status"] == "error" else (
            f"{s['n_shots']} shot(s), {s['n_tracklets']} tracklets -> {s['n_identities']} identities")
        where = "" if safe_name(s["video_id"]) == s["video_id"] else f" (in {safe_name(s['video_id'])}/)"
        log(f"video {s['video_id']}{where}: {s['status']} in {s['seconds']:.1f} s, {extra}")
    report = build_report(cfg, out, sources, refused, summaries, detections, time.perf_counter() - t0)
    write_json_atomic(report, out / "report.json")
    if report["failure"]:
        log(f"no results: {report['failure']}")
    return report


def run_ray_pipeline(cfg: ReidJobConfig, videos: list[dict], out: Path, detections: str | Path | None) -> list[dict]:
    import ray

    init_ray(cfg.resources.ray_address, cfg.resources.num_cpus)
    kwargs = {"cfg_json": cfg.model_dump_json(), "out_dir": str(out.resolve()),
              "detections_dir": str(Path(detections).resolve()) if detections is not None else None}
    ds = run_stages(ray.data.from_items(videos, override_num_blocks=max(1, len(videos))),
                    [Stage("reid_video", ReidVideoStage, kwargs, cfg.resources.video)])
    return sorted(ds.take_all(), key=lambda s: s["video_id"])


def failure_reason(sources: list[dict], refused: list[dict], errors: list[dict], n_finished: int, limit: int = 3) -> str:
    """Why no video has results ('' when some do): the first few refusals and failures, one line each."""
    if n_finished:
        return ""
    if not sources and not refused:
        return "no video found in --videos"
    problems = [f"{e['video_id'] or e['uri']}: {e['message'].splitlines()[0] if e['message'] else e['error_type']}"
                for e in [*refused, *errors]]
    more = f"; and {len(problems) - limit} more (see errors/)" if len(problems) > limit else ""
    head = f"all {len(sources) + len(refused)} source(s) refused or failed ({len(refused)} refused, {len(sources)} failed)"
    return f"{head}: {'; '.join(problems[:limit])}{more}" if problems else head


def build_report(cfg, out: Path, sources, refused, summaries, detections, seconds: float) -> dict:
    # Only this manifest's records: a video dropped from it keeps its old error file, but not in this report.
    paths = [errors_path(out, "sources"), *(video_errors_path(out, v["video_id"]) for v in sources)]
    errors = read_tables([p for p in paths if p.exists()], ERROR).to_pylist()
    n_finished = sum(is_finished(out, v["video_id"]) for v in sources)
    failed = [e for e in errors if e["stage"] != "sources"]
    return {
        "job": "reid_videos",
        "fingerprint": cfg.fingerprint(),
        "detections": str(detections) if detections is not None else cfg.segmenter.backend,
        "seconds": round(seconds, 2),
        "videos": {"usable": len(sources), "refused": len(refused), "processed_this_run": len(summaries), "finished": n_finished},
        "failure": failure_reason(sources, refused, failed, n_finished),
        "video_dirs": {v["video_id"]: safe_name(v["video_id"]) for v in sources},  # where each video's outputs are
        "this_run": summaries,
        "errors": {"total": len(errors), "by_stage_and_type": dict(Counter(f"{e['stage']}/{e['error_type']}" for e in errors))},
        "config": json.loads(cfg.model_dump_json()),
    }
