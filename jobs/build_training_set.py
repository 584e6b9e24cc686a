"""Build a re-identification training set from any unlabelled video: shots, tracklets, patch sets per view.

    python jobs/build_training_set.py --videos PATH_OR_S3_OR_MANIFEST --out DIR [--config configs/reid_local.yaml]
    python jobs/train.py --data DIR --out runs/train

Outputs: ``DIR/samples/<video>.parquet`` (one row per view: video, shot, tracklet, patches), ``DIR/previews/``
(views per tracklet of one scene), ``DIR/report.json``. Reruns skip videos already mined from the same source and
refuse another configuration. Exit codes: 2 bad config or input, 1 no training view at all (reasons printed),
130 interrupted (rerun with the same --out).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout or a Ray working_dir

from reid_ray.cli import NO_RESULTS_EXIT_CODE, add_config, add_out, add_set, add_videos, fail, job_parser, run_job  # noqa: E402
from reid_ray.config import TrainingSetJobConfig, load_config_or_exit  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = job_parser(__doc__)
    add_config(p, "reid_local.yaml", "the long-video job's YAML profile, plus mining.*")
    add_videos(p)
    add_out(p, "runs/training_set")
    add_set(p, "mining.every_k=5")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config_or_exit(args.config, args.set, TrainingSetJobConfig)
    from reid_ray.training_set_job import run_training_set_job

    def work() -> int:
        report = run_training_set_job(cfg, args.videos, Path(args.out))
        return fail(report["failure"], NO_RESULTS_EXIT_CODE) if report["failure"] else 0

    return run_job(work)


if __name__ == "__main__":
    raise SystemExit(main())
