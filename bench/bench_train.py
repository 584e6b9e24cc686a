"""Training throughput of the set head on Ray Train: samples (patch sets) per second, 1 and 2 workers.

    python bench/bench_train.py [--epochs 2] [--batches 20] [--num-cpus 2]

Data: random patch sets around per-identity prototypes (dim 120, 2-64 patches like EfficientNet masks),
so the figure is the trainer's (padding, transformer, gathered circle loss, DDP all-reduce), not the
backbone's. Head: configs/train.yaml's (transformer, d_model 128, 2 layers), P=16, K=4. The last epoch's
figure is printed (the first includes process start-up and warm-up). With 2 workers it also runs
``sampler.unlabelled_negatives=any`` (PML's own all-pairs path, no pair indices built) and prints the ratio, the cost
of the profile's pair rule in the same run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid_ray.config import load_config  # noqa: E402
from reid_ray.train.data import write_samples  # noqa: E402


def toy_rows(n_videos=4, shots=3, people=8, frames=8, dim=120, seed=0):
    rng = np.random.default_rng(seed)
    for v in range(n_videos):
        protos = rng.normal(size=(people, 4, dim))
        for s in range(shots):
            for p in range(people):
                for f in range(frames):
                    n = int(rng.integers(2, 65))
                    parts = protos[p, rng.integers(0, 4, n)]
                    yield {"video_id": f"v{v}", "shot_id": f"s{s}", "tracklet_id": f"t{p}", "identity": f"v{v}/{p}",
                           "frame": f, "patches": (parts + rng.normal(size=parts.shape)).astype(np.float32)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--num-cpus", type=int, default=2)
    args = ap.parse_args()
    import ray

    from reid_ray.config import TrainConfig
    from reid_ray.train.trainer import run_training

    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        data = write_samples(Path(tmp) / "toy.parquet", toy_rows())
        rates = {}
        for workers, rule in ((1, None), (2, None), (2, "any")):
            sets = [f"epochs={args.epochs}", f"sampler.batches_per_epoch={args.batches}", f"scaling.num_workers={workers}"]
            cfg = load_config(root / "configs" / "train.yaml", sets + ([f"sampler.unlabelled_negatives={rule}"] if rule else []), TrainConfig)
            res = run_training(cfg, str(data), str(Path(tmp) / "runs"), name=f"bench_{workers}_{rule or 'profile'}")
            m = res.metrics
            rates[workers, rule] = m["samples_per_s"]
            print(f"workers={workers} pairs={cfg.sampler.unlabelled_negatives}: {m['samples_per_s']:.0f} samples/s (epoch {m['epoch']}: "
                  f"{m['steps']} steps x {cfg.sampler.P * cfg.sampler.K} per worker in {m['epoch_s']:.1f} s, loss {m['loss']:.3f})", flush=True)
        print(f"2 workers / 1 worker: {rates[2, None] / rates[1, None]:.2f}x; profile's pair rule / all pairs (2 workers): "
              f"{rates[2, None] / rates[2, 'any']:.2f}x")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
