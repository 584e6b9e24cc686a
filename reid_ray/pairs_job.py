"""The identity-pair mining job: sources -> probe & clip pairs -> segment (actors) -> certain pairs per video ->
calibration over the run -> propose & route per video -> review packets -> report. Resumable: videos whose model
work is finished (``calibration/<video_id>.parquet``) are not segmented again; routing is redone only when the
calibration changed (a rerun of the same inputs routes nothing)."""
from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq

from reid_ray.calibration import Calibration, calibrate
from reid_ray.config import ConfigError, PairsJobConfig, StageResources
from reid_ray.io import SUBDIRS, calibration_samples_path, errors_path, pairs_path, read_tables, write_json_atomic, write_table_atomic
from reid_ray.models.registry import preflight
from reid_ray.pipeline import Stage, apply_stage, init_ray
from reid_ray.schemas import ERROR, PAIR, table_from_rows
from reid_ray.video.sources import list_sources

RUN_STATE = "_run.json"
ROUTING_STATE = "_routing.json"


def log(msg: str) -> None:
    print(f"[generate_pairs {dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


def check_run_state(out: Path, cfg: PairsJobConfig) -> dict:
    """An --out belongs to one config: resuming with another would mix incompatible pairs."""
    path = out / RUN_STATE
    fp = cfg.fingerprint()
    if path.exists():
        state = json.loads(path.read_text())
        if state.get("fingerprint") != fp:
            raise ConfigError(
                f"--out {out} holds results of another configuration (fingerprint {state.get('fingerprint')}, "
                f"this run {fp}); use a new --out to run this configuration"
            )
        return state
    state = {"fingerprint": fp, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "config": cfg.model_dump(mode="json")}
    write_json_atomic(state, path)
    return state


def run_pairs_job(cfg: PairsJobConfig, videos: str, out: Path) -> dict:
    t0 = time.perf_counter()
    out = Path(out)
    for d in SUBDIRS:
        (out / d).mkdir(parents=True, exist_ok=True)
    state = check_run_state(out, cfg)
    sources, refused = list_sources(videos, cfg.sources)
    if refused:
        write_table_atomic(table_from_rows(refused, ERROR), errors_path(out, "sources"))
    todo = [v for v in sources if not calibration_samples_path(out, v["video_id"]).exists()]
    if todo:
        preflight(cfg)
    log(f"{len(sources)} usable video(s), {len(refused)} refused, {len(sources) - len(todo)} already finished, {len(todo)} to do")
    summaries = run_ray_pipeline(cfg, todo, out) if todo else []
    sampled = [v["video_id"] for v in sources if calibration_samples_path(out, v["video_id"]).exists()]
    calibration = fit_calibration(cfg, out, sampled)
    routed = route_videos(cfg, out, sampled, calibration)
    review = write_review(out, cfg, state["created_at"])
    report = build_report(cfg, out, sources, refused, todo, summaries, routed, review, calibration, time.perf_counter() - t0)
    write_json_atomic(report, out / "report.json")
    log(f"done in {report['seconds']:.1f} s: {json.dumps(report['dataset_card']['by_label'])}; report at {out / 'report.json'}")
    return report


def run_ray_pipeline(cfg: PairsJobConfig, videos: list[dict], out: Path) -> list[dict]:
    import ray
    from ray.data import DataContext

    from reid_ray.stages.finalize import SampleVideo
    from reid_ray.stages.probe import ProbeStage
    from reid_ray.stages.segment import ClipSegmentStage

    init_ray(cfg.resources.ray_address, cfg.resources.num_cpus)
    DataContext.get_current().enable_progress_bars = True
    kwargs = {"cfg_json": cfg.model_dump_json(), "out_dir": str(out.resolve())}
    ds = ray.data.from_items(videos, override_num_blocks=max(1, len(videos)))
    ds = apply_stage(ds, Stage("probe", ProbeStage, kwargs, StageResources(num_cpus=1, max_actors=1)))
    ds = apply_stage(ds, Stage("segment", ClipSegmentStage, kwargs, cfg.resources.segment))
    # One small status row per clip comes back to the driver and is grouped per video here: cheaper and
    # sturdier than a Ray shuffle (whose reduce fails on the empty blocks of videos that yield no clip).
    by_video: dict[str, list[dict]] = {}
    for row in ds.take_all():
        by_video.setdefault(row["video_id"], []).append(row)
    if not by_video:
        return []
    groups = [{"video_id": v, "statuses": json.dumps(rows, default=float)} for v, rows in sorted(by_video.items())]
    ds = ray.data.from_items(groups, override_num_blocks=len(groups))
    ds = apply_stage(ds, Stage("sample", SampleVideo, kwargs, StageResources(num_cpus=0.5, max_actors=2)))
    summaries = ds.take_all()
    for s in summaries:
        log(f"video {s['video_id']}: {s['n_clips_ok']} clip(s) ok, {s['n_clip_errors']} failed, {s['n_candidates']} candidates, {s['n_certain_pairs']} certain pairs")
    return summaries


def fit_calibration(cfg: PairsJobConfig, out: Path, video_ids: list[str]) -> Calibration:
    """Fit P(same | distance) per category on every finished video's samples (distances only: a few floats per
    track), and write ``calibration.json`` and its plot."""
    from reid_ray.viz.calibration import plot_calibration

    samples: dict[str, dict[str, list]] = {}
    for vid in sorted(video_ids):
        t = pq.read_table(calibration_samples_path(out, vid), columns=["category", "kind", "distance"])
        for category, kind, d in zip(*(t.column(c).to_pylist() for c in ("category", "kind", "distance"))):
            mine = samples.setdefault(category, {})
            mine.setdefault(kind, []).append(d)
            if kind == "proposal":
                mine.setdefault("proposal_video", []).append(vid)
    calibration = calibrate(samples, cfg.proposal.calibration)
    write_json_atomic(json.loads(calibration.to_json()), out / "calibration.json")
    plot_calibration(samples, calibration, out / "calibration.png")
    return calibration


def route_videos(cfg: PairsJobConfig, out: Path, video_ids: list[str], calibration: Calibration) -> list[dict]:
    """Route every finished video by this calibration, unless the last routing used the same one."""
    from reid_ray.stages.finalize import RouteVideo

    key = calibration.fingerprint() if cfg.proposal.routing == "calibrated" else "thresholds"
    state_path = out / ROUTING_STATE
    done = json.loads(state_path.read_text()) if state_path.exists() else {}
    if done.get("calibration") == key and all(pairs_path(out, v).exists() for v in video_ids) and set(done.get("videos", [])) == set(video_ids):
        return []
    if not video_ids:
        return []
    import ray

    init_ray(cfg.resources.ray_address, cfg.resources.num_cpus)
    kwargs = {"cfg_json": cfg.model_dump_json(), "out_dir": str(out.resolve()), "calibration_json": calibration.to_json()}
    ds = ray.data.from_items([{"video_id": v} for v in sorted(video_ids)], override_num_blocks=len(video_ids))
    ds = apply_stage(ds, Stage("route", RouteVideo, kwargs, StageResources(num_cpus=0.5, max_actors=2)))
    routed = sorted(ds.take_all(), key=lambda r: r["video_id"])
    write_json_atomic({"calibration": key, "videos": sorted(video_ids)}, state_path)
    for r in routed:
        log(f"video {r['video_id']}: {r['n_pairs']} pairs, {r['n_review']} to review")
    return routed


def all_pairs(out: Path):
    return read_tables(list((Path(out) / "pairs").glob("*.parquet")), PAIR)


def write_review(out: Path, cfg: PairsJobConfig, created_at: str) -> int:
    from reid_ray.review.label_studio import write_review_outputs

    pairs = [p for p in all_pairs(out).to_pylist() if p["label"] == "pending_review"]
    write_review_outputs(pairs, out / "review", cfg.review.project_title, created_at)
    return len(pairs)


def gap_bucket(gap_s: float) -> str:
    return f"{gap_s:.1f}"


def build_report(cfg, out, sources, refused, todo, summaries, routed, n_review, calibration: Calibration, seconds) -> dict:
    pairs = all_pairs(out).to_pylist()
    errors = read_tables(list((out / "errors").glob("*.parquet")), ERROR).to_pylist()
    matches = [p for p in pairs if p["kind"] == "match"]
    routed_labels = Counter(p["label"] for p in matches)
    card = {
        "by_label": dict(Counter(p["label"] for p in pairs)),
        "by_category": dict(Counter(p["category"] for p in pairs)),
        "by_gap_s": dict(Counter(gap_bucket(p["gap_s"]) for p in pairs)),
        "by_label_and_category": dict(Counter(f"{p['label']}/{p['category']}" for p in pairs)),
        "by_verified_by": dict(Counter(p["verified_by"] for p in pairs)),
        "licenses": dict(Counter(p["license"] for p in pairs)),
    }
    return {
        "job": "generate_pairs",
        "fingerprint": cfg.fingerprint(),
        "seconds": round(seconds, 2),
        "videos": {"usable": len(sources), "refused": len(refused), "processed_this_run": len(todo), "finished": len(list((out / "pairs").glob("*.parquet")))},
        "this_run": summaries,
        "routed_this_run": routed,
        "routing": {
            "method": cfg.proposal.routing,
            "proposed_matches": len(matches),
            "auto_identical": routed_labels.get("identical", 0),
            "auto_rejected": routed_labels.get("same_category_different_instance", 0),
            "to_human_review": routed_labels.get("pending_review", 0),
            # Sending every proposal to humans is the baseline this routing improves on.
            "human_reviews_saved_share": round(1 - routed_labels.get("pending_review", 0) / len(matches), 4) if matches else None,
            **({"accept_threshold": cfg.proposal.accept_threshold, "reject_threshold": cfg.proposal.reject_threshold}
               if cfg.proposal.routing == "thresholds" else {"target_error": cfg.proposal.calibration.target_error}),
        },
        "calibration": {c: asdict(v) for c, v in calibration.by_category.items()},
        "calibration_plot": "calibration.png",
        "review_tasks": n_review,
        "errors": {"total": len(errors), "by_stage_and_type": dict(Counter(f"{e['stage']}/{e['error_type']}" for e in errors))},
        "dataset_card": card,
    }
