"""Time of constrained tracklet clustering at 1,000 / 5,000 / 10,000 tracklets.

Random embeddings around a few identities (cosine distance / 2, in [0, 1]) and random time spans, sized so
that about 10% of tracklet pairs overlap in time (cannot-link). For constrained average and complete linkage
it prints the seconds for the time-overlap matrix and for clustering, the number of identities, and whether
the constraint held (no identity with two overlapping tracklets). Plain scipy average linkage runs on the same
distances for comparison. The machine is shared and noisy, so compare the ratios.

    python bench/bench_clustering.py [--sizes 1000 5000 10000] [--threshold 0.3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402  (after the sys.path line, as in bench_pairs.py)
from scipy.cluster.hierarchy import fcluster, linkage  # noqa: E402
from scipy.spatial.distance import pdist, squareform  # noqa: E402

from reid_ray.tracking.clustering import cannot_link_violations, cluster_tracklets, temporal_overlap  # noqa: E402


def instance(n: int, seed: int = 0, people: int = 40, video_frames: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Condensed distances and (start, end) spans. For uniform starts, P(overlap) ~ 2 * mean length / video,
    so a mean length of 5% of the video gives about 10% overlapping pairs."""
    rng = np.random.default_rng(seed)
    who = rng.integers(people, size=n)
    emb = rng.normal(size=(people, 32))[who] + 0.7 * rng.normal(size=(n, 32))
    dist = pdist(emb, "cosine") / 2
    start = rng.integers(0, video_frames, n)
    length = rng.integers(int(0.03 * video_frames), int(0.07 * video_frames), n)
    return dist, np.stack([start, start + length], 1)


def timed(f, *args):
    t0 = time.perf_counter()
    out = f(*args)
    return out, time.perf_counter() - t0


def bench(n: int, threshold: float) -> None:
    dist, spans = instance(n)
    overlap, t_overlap = timed(temporal_overlap, spans)
    share = overlap.sum() / (n * (n - 1))
    cl = squareform(overlap, checks=False)  # condensed: half the memory of the square matrix
    print(f"n={n:>6}  overlapping pairs {share:.1%}  temporal_overlap {t_overlap:.2f} s")
    for method in ("average", "complete"):
        labels, secs = timed(cluster_tracklets, dist, cl, threshold, method)
        bad = cannot_link_violations(labels, overlap)
        print(f"    constrained {method:<8} {secs:7.2f} s  identities {labels.max() + 1:>5}  "
              f"constraint {'held' if bad == 0 else f'BROKEN ({bad} pairs)'}")
    plain, secs = timed(lambda: fcluster(linkage(dist, "average"), threshold, "distance"))
    print(f"    plain scipy average  {secs:7.2f} s  identities {plain.max():>5}  "
          f"overlapping pairs joined: {cannot_link_violations(plain, overlap)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    ap.add_argument("--threshold", type=float, default=0.3)
    a = ap.parse_args(argv)
    for n in a.sizes:
        bench(n, a.threshold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
