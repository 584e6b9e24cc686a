"""The identity-pair mining job, streaming end to end on Ray Data:

    sources -> probe & clip pairs -> decode (CPU actors) -> segment & embed (model actors) -> certain pairs per
    clip pair -> [calibration over the run] -> propose & route per video -> review files -> report

Nothing on the driver grows with the corpus: workers write every output and every completion marker, the driver
only drains small status rows into counters and reads Parquet in batches. Resumable: a clip pair whose model work
is finished (``calibration/<video>/<clip pair>.parquet``) is not decoded again; a failed one is tried again on the
next run; a video is routed again only when its calibration or its finished clip pairs changed."""
from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from reid_ray.calibration import Calibration, calibrate
from reid_ray.config import ConfigError, PairsJobConfig
from reid_ray.io import SUBDIRS, errors_path, parquet_batches, read_tables, retire_video, write_json_atomic, write_or_remove
from reid_ray.models.registry import preflight
from reid_ray.pipeline import Stage, init_ray, run_stages, stage_report
from reid_ray.schemas import CALIBRATION_SAMPLE, ERROR, PAIR
from reid_ray.storage import OutPath, S3Path, out_root, rmtree, upload_file
from reid_ray.video.sources import list_sources, refusal_lines

RUN_STATE = "_run.json"
STATS_DIR = "_stats"
MODEL_STAGES = ["probe", "decode", "segment"]
# Certain pairs kept per category and kind for the fit: a kernel density needs thousands, not millions, and the
# driver's memory must not grow with the corpus. Kept by a hash of the clip pair, so a rerun keeps the same ones.
MAX_SAMPLES_PER_KIND = 200_000


class JobFailed(RuntimeError):
    """The run produced nothing usable; the message says why (exit code 1)."""


def log(msg: str) -> None:
    print(f"[generate_pairs {dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


def check_run_state(out: OutPath, cfg: PairsJobConfig) -> dict:
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
    state = {"fingerprint": fp, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "config": cfg.run_record()}
    write_json_atomic(state, path)
    return state


def prepare_out(out: OutPath) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory (it is created if missing)")
    for d in SUBDIRS:
        (out / d).mkdir(parents=True, exist_ok=True)
    rmtree(out / STATS_DIR)  # the stage clocks are this run's


def run_pairs_job(cfg: PairsJobConfig, videos: str, out: OutPath) -> dict:
    t0 = time.perf_counter()
    out = out_root(out, cfg.sources.s3_endpoint_url)
    prepare_out(out)
    state = check_run_state(out, cfg)
    sources, refused = list_sources(videos, cfg.sources)
    write_or_remove(refused, ERROR, errors_path(out, "sources"))  # this run's refusals, not an earlier run's
    for r in refused:  # a licence revoked since an earlier run takes that video's pairs out of the dataset
        if r["video_id"]:
            retire_video(out, r["video_id"])
    log(f"{len(sources)} usable video(s), {len(refused)} refused")
    why = refusal_lines(refused, str(errors_path(out, "sources")))
    for line in why:
        log(f"  {line}")
    if not sources:
        raise JobFailed(f"no usable video in {videos}: {len(refused)} refused: {'; '.join(why)}" if refused else f"no video found in {videos}")
    preflight(cfg)
    model_work = run_model_stages(cfg, sources, out)
    calibration = fit_calibration(cfg, out)
    routing = route_videos(cfg, out, sources, calibration)
    review = write_review(out, cfg, state["created_at"])
    report = build_report(cfg, out, sources, refused, model_work, routing, review, calibration, time.perf_counter() - t0)
    write_json_atomic(report, out / "report.json")
    if report["dataset_card"]["pairs"] == 0:
        raise JobFailed(f"no pairs: {report['errors']['total']} error record(s) under {out / 'errors'} "
                        f"({json.dumps(report['errors']['by_stage_and_type'])}); report at {out / 'report.json'}")
    log(f"done in {report['seconds']:.1f} s: {json.dumps(report['dataset_card']['by_label'])}; report at {out / 'report.json'}")
    return report


MAX_VIDEO_BLOCKS = 100_000


def _videos_dataset(sources: list[dict]):
    """A block per video (up to ``MAX_VIDEO_BLOCKS``): a block moves on whole, so the probe's output for one video
    (its clip pairs) is what flows into decode and segment, and the model actors get work as soon as the first
    video is probed."""
    import ray

    return ray.data.from_items(sources, override_num_blocks=max(1, min(len(sources), MAX_VIDEO_BLOCKS)))


def run_model_stages(cfg: PairsJobConfig, sources: list[dict], out: OutPath) -> dict:
    """Probe, decode and segment every unfinished clip pair, streaming; returns this run's counters."""
    from ray.data import DataContext

    from reid_ray.stages.decode import DecodeClipPairs
    from reid_ray.stages.probe import ProbeStage
    from reid_ray.stages.segment import ClipPairSegmentStage

    init_ray(cfg.resources.ray_address, cfg.resources.num_cpus)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = True
    if cfg.resources.object_store_memory_mb:
        limits = ctx.execution_options.resource_limits
        ctx.execution_options.resource_limits = limits.copy(object_store_memory=cfg.resources.object_store_memory_mb * 2**20)
    kwargs = {"cfg_json": cfg.model_dump_json(), "out_dir": str(out.resolve())}
    r = cfg.resources
    ds = run_stages(_videos_dataset(sources), [
        Stage("probe", ProbeStage, kwargs, r.probe),  # one video per call (config): a block per video
        Stage("decode", DecodeClipPairs, kwargs, r.decode),
        Stage("segment", ClipPairSegmentStage, kwargs, r.segment),
    ])
    counts: Counter = Counter()
    t0 = time.perf_counter()
    for batch in ds.iter_batches(batch_size=256, batch_format="numpy"):  # small status rows, counted and dropped
        counts.update(f"clip_pairs_{s}" for s in batch["status"])
        counts.update(f"error/{e}" for e, s in zip(batch["error_type"], batch["status"]) if s == "error")
        counts["candidates"] += int(np.sum(batch["n_instances"]))
        counts["certain_pairs"] += int(np.sum(batch["n_certain_pairs"]))
        counts["frames"] += int(np.sum(batch["n_frames"]))
    wall = time.perf_counter() - t0
    stages = stage_report(out, MODEL_STAGES)
    probe = stages.get("probe", {})
    log(f"model stages: {counts.get('clip_pairs_ok', 0)} clip pair(s) done, {counts.get('clip_pairs_error', 0)} failed, "
        f"{counts.get('clip_pairs_skipped', 0)} already done, in {wall:.1f} s")
    return {"wall_s": round(wall, 2), "videos_with_work": int(probe.get("videos_with_work", 0)), "counts": dict(counts), "stages": stages}


def fit_calibration(cfg: PairsJobConfig, out: OutPath) -> Calibration:
    """Fit P(same | distance) per category on the finished clip pairs' samples, read in batches, and write
    ``calibration.json`` and its plot."""
    from reid_ray.viz.calibration import plot_calibration

    parts: dict[str, dict[str, list[np.ndarray]]] = {}  # arrays per batch: 8 bytes a distance, not a Python float
    kept = pads.field("distance").is_valid()
    for batch in parquet_batches(out / "calibration", ["video_id", "clip_pair_id", "category", "kind", "distance"], CALIBRATION_SAMPLE, kept):
        t = pa.Table.from_batches([batch])
        for category in pa.compute.unique(t.column("category")).to_pylist():
            mine = parts.setdefault(category, {})
            rows = t.filter(pa.compute.equal(t.column("category"), category))
            for kind in pa.compute.unique(rows.column("kind")).to_pylist():
                of_kind = rows.filter(pa.compute.equal(rows.column("kind"), kind))
                mine.setdefault(kind, []).append(of_kind.column("distance").to_numpy())
                if kind == "proposal":
                    mine.setdefault("proposal_video", []).append(of_kind.column("video_id").to_numpy(zero_copy_only=False))
    samples: dict[str, dict[str, np.ndarray]] = {c: {k: np.concatenate(v) for k, v in mine.items()} for c, mine in parts.items()}
    for mine in samples.values():
        for kind in [k for k in mine if k not in ("proposal", "proposal_video")]:
            if len(mine[kind]) > MAX_SAMPLES_PER_KIND:
                mine[kind] = np.random.default_rng(0).choice(mine[kind], MAX_SAMPLES_PER_KIND, replace=False)
    calibration = calibrate(samples, cfg.proposal.calibration)
    write_json_atomic(json.loads(calibration.to_json()), out / "calibration.json")
    if isinstance(out, S3Path):  # drawn locally, then put beside the other outputs
        with tempfile.TemporaryDirectory() as tmp:
            upload_file(plot_calibration(samples, calibration, Path(tmp) / "calibration.png"), out / "calibration.png")
    else:
        plot_calibration(samples, calibration, out / "calibration.png")
    return calibration


def route_videos(cfg: PairsJobConfig, out: OutPath, sources: list[dict], calibration: Calibration) -> dict:
    """Route every video whose calibration or finished clip pairs changed since it was last routed (the workers
    check; the pairs file carries its key). Returns this run's counters."""
    from reid_ray.stages.finalize import RouteVideo

    key = calibration.fingerprint() if cfg.proposal.routing == "calibrated" else "thresholds"
    init_ray(cfg.resources.ray_address, cfg.resources.num_cpus)
    kwargs = {"cfg_json": cfg.model_dump_json(), "out_dir": str(out.resolve()), "calibration_json": calibration.to_json(), "routing_key": key}
    ds = run_stages(_videos_dataset([{"video_id": v["video_id"]} for v in sources]), [Stage("route", RouteVideo, kwargs, cfg.resources.route)])
    counts: Counter = Counter()
    for batch in ds.iter_batches(batch_size=256, batch_format="numpy"):
        counts.update(f"videos_{s}" for s in batch["status"])
        for field in ("n_pairs", "n_review", "n_unfinished"):
            counts[field] += int(np.sum(batch[field]))
    counts = dict(counts)
    log(f"routing: {counts.get('videos_routed', 0)} video(s) routed, {counts.get('videos_up_to_date', 0)} up to date, "
        f"{counts.get('n_pairs', 0)} pairs, {counts.get('n_review', 0)} to review")
    if counts.get("n_unfinished"):
        log(f"{counts['n_unfinished']} clip pair(s) have no finished model work (their error records are under "
            f"{out / 'errors'}); a rerun with the same --out tries them again")
    return {**counts, "stages": stage_report(out, ["route"])}


def all_pairs(out: OutPath):
    return read_tables(sorted((out_root(out) / "pairs").glob("*.parquet")), PAIR)


def write_review(out: OutPath, cfg: PairsJobConfig, created_at: str) -> int:
    from reid_ray.review.label_studio import pending_pairs, write_review_outputs

    if isinstance(out, S3Path):
        return write_review_on_s3(out, cfg, created_at)
    # Streamed from pairs/*.parquet a batch at a time: memory does not grow with the pairs mined.
    written = write_review_outputs(pending_pairs(out / "pairs", cfg.review), out / "review", cfg.review.project_title, created_at,
                                   image_prefix=review_image_prefix(out, cfg))
    return written["given"] - written["gold"]


def review_image_prefix(out: OutPath, cfg: PairsJobConfig) -> str:
    """What a Label Studio task's image is before the packet's file name (``review.image_url_prefix``; by default
    the local-files URL relative to --out, or on S3 the packets' s3:// prefix)."""
    from reid_ray.review.label_studio import LOCAL_FILES_URL

    if cfg.review.image_url_prefix is not None:
        return cfg.review.image_url_prefix
    return f"{out / 'review'}/" if isinstance(out, S3Path) else f"{LOCAL_FILES_URL}review/"


def write_review_on_s3(out: S3Path, cfg: PairsJobConfig, created_at: str) -> int:
    """The review files are merged with what is there (records may hold verdicts): fetched, merged locally with
    the same streaming writer, and put back."""
    from reid_ray.review.gold import GOLD_FILE
    from reid_ray.review.label_studio import CONFIG_FILE, RECORDS_FILE, REVIEW_COLUMNS, REVIEW_FILTER, TASKS_FILE, review_pairs, write_review_outputs

    def pending():
        return review_pairs(parquet_batches(out / "pairs", list(REVIEW_COLUMNS), PAIR, REVIEW_FILTER), cfg.review)

    names = (TASKS_FILE, RECORDS_FILE, CONFIG_FILE, GOLD_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        for name in names:
            if (out / "review" / name).exists():
                (local / name).write_bytes((out / "review" / name).read_bytes())
        written = write_review_outputs(pending(), local, cfg.review.project_title, created_at,
                                       image_prefix=review_image_prefix(out, cfg))
        for name in names:
            if (local / name).exists():
                upload_file(local / name, out / "review" / name)
    return written["given"] - written["gold"]


def gap_bucket(gap_s: float) -> str:
    return f"{gap_s:.1f}"


CARD_FIELDS = ("label", "category", "gap_s", "verified_by", "license", "kind")


def dataset_card(out: OutPath) -> dict:
    """Counts of every pair, Parquet read a batch at a time."""
    card = {name: Counter() for name in ("by_label", "by_category", "by_gap_s", "by_label_and_category", "by_verified_by", "licenses", "matches_by_label")}
    n = 0
    for batch in parquet_batches(out / "pairs", list(CARD_FIELDS), PAIR):
        cols = {f: batch.column(f).to_pylist() for f in CARD_FIELDS}
        n += batch.num_rows
        card["by_label"].update(cols["label"])
        card["by_category"].update(cols["category"])
        card["by_gap_s"].update(gap_bucket(g) for g in cols["gap_s"])
        card["by_label_and_category"].update(f"{lab}/{cat}" for lab, cat in zip(cols["label"], cols["category"]))
        card["by_verified_by"].update(cols["verified_by"])
        card["licenses"].update(cols["license"])
        card["matches_by_label"].update(lab for lab, kind in zip(cols["label"], cols["kind"]) if kind == "match")
    from reid_ray.review.verdicts import verified_by_counts

    return {"pairs": n, **{k: dict(v) for k, v in card.items()}, "by_verified_by": verified_by_counts(card["by_verified_by"])}


def error_counts(out: OutPath) -> dict:
    by = Counter()
    for batch in parquet_batches(out / "errors", ["stage", "error_type"], ERROR):
        by.update(f"{s}/{e}" for s, e in zip(batch.column("stage").to_pylist(), batch.column("error_type").to_pylist()))
    return {"total": sum(by.values()), "by_stage_and_type": dict(by)}


def build_report(cfg, out, sources, refused, model_work, routing, n_review, calibration: Calibration, seconds) -> dict:
    card = dataset_card(out)
    matches = card.pop("matches_by_label")
    n_matches = sum(matches.values())
    stages = {**model_work.pop("stages"), **routing.pop("stages")}
    return {
        "job": "generate_pairs",
        "fingerprint": cfg.fingerprint(),
        "seconds": round(seconds, 2),
        "videos": {"usable": len(sources), "refused": len(refused), "processed_this_run": model_work["videos_with_work"],
                   "finished": len(list((out / "pairs").glob("*.parquet")))},
        "this_run": {"model_stages": model_work, "routing": routing},
        # Per stage: rows, seconds busy in the stage's code, seconds its actors waited for input (idle_s).
        "stages": stages,
        "routing": {
            "method": cfg.proposal.routing,
            "proposed_matches": n_matches,
            "auto_identical": matches.get("identical", 0),
            "auto_rejected": matches.get("same_category_different_instance", 0),
            "to_human_review": matches.get("pending_review", 0),
            # Sending every proposal to humans is the baseline this routing improves on.
            "human_reviews_saved_share": round(1 - matches.get("pending_review", 0) / n_matches, 4) if n_matches else None,
            **({"accept_threshold": cfg.proposal.accept_threshold, "reject_threshold": cfg.proposal.reject_threshold}
               if cfg.proposal.routing == "thresholds" else {"target_error": cfg.proposal.calibration.target_error}),
        },
        "calibration": {c: asdict(v) for c, v in calibration.by_category.items()},
        "calibration_plot": "calibration.png",
        "review_tasks": n_review,
        "errors": error_counts(out),
        "dataset_card": card,
    }
