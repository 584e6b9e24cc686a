"""Train a set head (patch set -> identity embedding) with circle loss on Ray Train.

    python jobs/train.py --config configs/train.yaml --data samples.parquet --out runs/train
    python jobs/train.py --data s3://bucket/samples/ --out s3://bucket/runs --set scaling.use_gpu=true

Rerun with the same --out (and name) to resume from the latest checkpoint. The trained head is
``<out>/<name>/checkpoint_*/head.pt`` (printed at the end): ``embedder.head: <that path>``.
Training data: ``reid_ray.train.data`` (build_from_synthetic, ingest_market1501).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout or a Ray working_dir

from reid_ray.config import CONFIG_ERROR_EXIT_CODE, ConfigError, load_config_or_exit  # noqa: E402
from reid_ray.run_state import INTERRUPTED, INTERRUPTED_EXIT_CODE, check_out_dir  # noqa: E402
from reid_ray.train.config import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "train.yaml"))
    p.add_argument("--data", required=True, help="training Parquet file or folder (local or s3://)")
    p.add_argument("--out", required=True, help="Ray Train storage path (local or s3://); reruns resume")
    p.add_argument("--name", default=None, help="run name (default: config name)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. epochs=5")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config_or_exit(args.config, args.set, TrainConfig)
    import ray

    from reid_ray.train.trainer import HEAD_FILE, run_training

    try:
        if "://" not in args.out:
            check_out_dir(Path(args.out))
        if not ray.is_initialized():
            ray.init(address=cfg.ray_address, include_dashboard=False)  # None: a running cluster, else local
        result = run_training(cfg, args.data, args.out, args.name)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return CONFIG_ERROR_EXIT_CODE
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    print(json.dumps({"metrics": result.metrics, "head": f"{result.checkpoint.path}/{HEAD_FILE}" if result.checkpoint else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
