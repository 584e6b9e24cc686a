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

from reid_ray.cli import add_config, add_set, fail, job_parser, run_job  # noqa: E402
from reid_ray.config import ConfigError, TrainConfig, load_config_or_exit  # noqa: E402
from reid_ray.run_state import check_out_dir  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = job_parser(__doc__)
    add_config(p, "train.yaml")
    p.add_argument("--data", required=True, help="training Parquet file or folder (local or s3://)")
    p.add_argument("--out", required=True, help="Ray Train storage path (local or s3://); reruns resume")
    p.add_argument("--name", default=None, help="run name (default: config name)")
    add_set(p, "epochs=5")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config_or_exit(args.config, args.set, TrainConfig)
    import ray

    from reid_ray.train.trainer import HEAD_FILE, run_training


    def work() -> int:
        if "://" not in args.out:
            check_out_dir(Path(args.out))
        if not ray.is_initialized():
            ray.init(address=cfg.ray_address, include_dashboard=False)  # None: a running cluster, else local
        result = run_training(cfg, args.data, args.out, args.name)
        if result.error:
            return fail(result.error)
        print(json.dumps({"metrics": result.metrics, "head": f"{result.checkpoint.path}/{HEAD_FILE}" if result.checkpoint else None}))
        return 0

    return run_job(work, bad_input=(ConfigError,))


if __name__ == "__main__":
    raise SystemExit(main())
