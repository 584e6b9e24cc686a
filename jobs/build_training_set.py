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

from reid_ray.config import CONFIG_ERROR_EXIT_CODE, ConfigError, load_config_or_exit  # noqa: E402
from reid_ray.models.download import DownloadError  # noqa: E402
from reid_ray.reid_config import TrainingSetJobConfig  # noqa: E402
from reid_ray.run_state import INTERRUPTED, INTERRUPTED_EXIT_CODE  # noqa: E402
from reid_ray.video.sources import SourceError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NO_RESULTS_EXIT_CODE = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "reid_local.yaml"), help="the long-video job's profile (+ mining.*)")
    p.add_argument("--videos", required=True, help="file, folder, s3://bucket/prefix or manifest")
    p.add_argument("--out", default="runs/training_set", help="output directory (reruns resume here)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. mining.every_k=5")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config_or_exit(args.config, args.set, TrainingSetJobConfig)
    from reid_ray.training_set_job import run_training_set_job

    try:
        report = run_training_set_job(cfg, args.videos, Path(args.out))
    except (ConfigError, SourceError, DownloadError, FileNotFoundError, NotADirectoryError, FileExistsError, PermissionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return CONFIG_ERROR_EXIT_CODE
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    if report["failure"]:
        print(f"error: {report['failure']}", file=sys.stderr)
        return NO_RESULTS_EXIT_CODE
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
