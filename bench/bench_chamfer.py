"""Throughput of the tracklet distance kernel and of its Ray-sharded form (prints figures; not a test).

1. Kernel: N tracklets x ~F frames (lengths uniform in [F/2, 3F/2]) x dim D, the seed's Chamfer-10, in this process,
   with torch on 1 thread and on its default thread count; kernel and baseline alternate, best of R. Figures: tracklet pairs/s and GFLOP/s, counting 2 * n_i * n_j * D per pair for the similarity product,
   as ratios to a plain float32 `torch.mm` of the full frame matrix with itself measured in the same run:
     - distinct pairs (i < j): the work a distance matrix needs; the kernel computes only the upper
       triangle, the mm baseline the full square, so this rate is the strict comparison;
     - executed: the product FLOPs the kernel actually runs (upper-triangle tiles incl. diagonal tiles),
       i.e. how much the per-segment reductions cost on top of the product.
   The baseline writes into a preallocated, already touched output (its best case).
   The power-mean Chamfer-10 and the percentile-10 of all D, each timed once. And the naive per-pair loop over `tracklet_distance` (float64
   numpy, BLAS limited to 1 thread), timed on a random subset of the distinct pairs, extrapolated linearly.
2. Sharded (`sharded_distance_matrix`, blocks of B tracklets, one Ray task per upper-triangle block):
   a local Ray with 1 CPU vs 2 CPUs, and a simulated 2-node cluster (`ray.cluster_utils.Cluster`, 1 CPU
   per node) where blocks travel between the nodes' object stores. Each timed once after a warm-up (worker
   start, torch import); the torch thread count inside a task is printed (Ray sets OMP_NUM_THREADS from
   the task's num_cpus, 1).

    python bench/bench_chamfer.py [--tracklets 400] [--frames 40] [--dim 256] [--block 50]

Figures from one run on a shared, noisy machine: compare ratios within a run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from reid_ray.tracking.distances import (  # noqa: E402
    DEFAULT_TILE_FRAMES,
    _groups,
    distance_matrix,
    pack,
    sharded_distance_matrix,
    tracklet_distance,
)


def make_tracklets(n: int, frames: int, dim: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for length in rng.integers(frames // 2, frames * 3 // 2 + 1, size=n):
        x = rng.normal(size=(length, dim)).astype(np.float32)
        out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return out


def alternating_min(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function over `repeats` rounds, run alternately so that all see the same
    background load (the machine is shared: the minimum is the least disturbed run)."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def executed_flops(lengths: np.ndarray, dim: int) -> float:
    """Product FLOPs the symmetric kernel runs: every tile on or above the diagonal of the tile grid."""
    tile = np.array([lengths[t0:t1].sum() for t0, t1 in _groups(lengths, DEFAULT_TILE_FRAMES, padded=False)], float)
    return float(2.0 * dim * np.triu(np.outer(tile, tile)).sum())


def time_kernel_and_mm(x: torch.Tensor, tr: list[np.ndarray], repeats: int) -> tuple[float, float]:
    """Best times of the full-square product and of the kernel, alternating."""
    out = torch.mm(x, x.T)  # warm-up; timed runs write into this touched buffer (the baseline's best case)
    t = alternating_min({"mm": lambda: torch.mm(x, x.T, out=out), "kernel": lambda: distance_matrix(tr)}, repeats)
    return t["mm"], t["kernel"]


def bench_kernel(tr: list[np.ndarray], dim: int, naive_pairs: int, repeats: int) -> None:
    frames, lengths = pack(tr)
    n, f = len(tr), len(frames)
    pairs = n * (n - 1) // 2
    useful = float((f * f - (lengths**2).sum()) * dim)  # sum over i < j of 2 n_i n_j d
    executed = executed_flops(lengths, dim)
    print(f"kernel: {n} tracklets, {f} frames (mean {f / n:.1f}), dim {dim}; the seed's Chamfer-10 (default method); best of {repeats}")
    print(f"  the kernel runs {executed / (2.0 * f * f * dim):.2f} of the full square's product FLOPs (upper-triangle tiles)")
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        t_mm, t_k = time_kernel_and_mm(torch.from_numpy(frames), tr, repeats)
        mm_rate = 2.0 * f * f * dim / t_mm / 1e9
        print(f"  torch threads {threads}: torch.mm full {f}x{f}x{dim} {t_mm:.2f} s = {mm_rate:.1f} GFLOP/s; "
              f"distance_matrix {t_k:.2f} s = {pairs / t_k:,.0f} distinct pairs/s")
        print(f"    distinct-pair GFLOP/s {useful / t_k / 1e9:.1f} = {useful / t_k / 1e9 / mm_rate:.2f} x mm rate; "
              f"executed GFLOP/s {executed / t_k / 1e9:.1f} = {executed / t_k / 1e9 / mm_rate:.2f} x mm rate; "
              f"wall time / full mm {t_k / t_mm:.2f}")
    torch.set_num_threads(default_threads)
    for label, kw in (("power_chamfer p=10", {"method": "power_chamfer", "p": 10}), ("percentile-10 of all D", {"method": "percentile", "q": 10})):
        t = time.perf_counter()
        distance_matrix(tr, **kw)
        t_other = time.perf_counter() - t
        print(f"  distance_matrix {label} (torch threads {default_threads}, once): {t_other:.2f} s = {pairs / t_other:,.0f} distinct pairs/s")

    rng = np.random.default_rng(1)
    iu = np.transpose(np.triu_indices(n, 1))[rng.choice(pairs, size=min(naive_pairs, pairs), replace=False)]
    with threadpool_limits(limits=1):  # tiny products: BLAS threads only contend (measured up to 60x slower)
        t = time.perf_counter()
        for i, j in iu:
            tracklet_distance(tr[i], tr[j])
        t_naive = (time.perf_counter() - t) / len(iu) * pairs
    print(f"  naive loop over tracklet_distance (float64 numpy, 1 BLAS thread): {len(iu)} random distinct pairs timed, "
          f"extrapolated to all {pairs}: {t_naive:.1f} s = {pairs / t_naive:,.0f} pairs/s")


def _task_threads() -> int:
    return torch.get_num_threads()


def time_sharded(tr: list[np.ndarray], block: int, expected: np.ndarray) -> tuple[float, float, int]:
    import ray

    small = make_tracklets(12, 8, tr[0].shape[1], seed=2)
    sharded_distance_matrix(small, block=2)  # warm-up: starts the workers, imports torch in them
    threads = ray.get(ray.remote(_task_threads).remote())
    t = time.perf_counter()
    got = sharded_distance_matrix(tr, block)
    return time.perf_counter() - t, float(np.abs(got - expected).max()), threads


def bench_sharded(tr: list[np.ndarray], block: int, expected: np.ndarray) -> None:
    import ray
    from ray.cluster_utils import Cluster

    n_blocks = -(-len(tr) // block)
    print(f"sharded: block {block} tracklets -> {n_blocks} blocks, {n_blocks * (n_blocks + 1) // 2} tasks")
    times = {}
    for cpus in (1, 2):
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        times[cpus], err, threads = time_sharded(tr, block, expected)
        ray.shutdown()
        print(f"  local Ray, {cpus} CPU: {times[cpus]:.2f} s (max |diff| to unsharded {err:.1e}; torch threads per task {threads})")
    print(f"  speed-up 2 CPUs / 1 CPU: {times[1] / times[2]:.2f}x")

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        t_cluster, err, threads = time_sharded(tr, block, expected)
        print(f"  simulated cluster, 2 nodes x 1 CPU: {t_cluster:.2f} s (max |diff| {err:.1e}; threads per task {threads}); "
              f"speed-up vs 1 CPU: {times[1] / t_cluster:.2f}x")
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracklets", type=int, default=400)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--block", type=int, default=50)
    ap.add_argument("--naive-pairs", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(f"bench_chamfer: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    tr = make_tracklets(args.tracklets, args.frames, args.dim)
    bench_kernel(tr, args.dim, args.naive_pairs, args.repeats)
    bench_sharded(tr, args.block, distance_matrix(tr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
