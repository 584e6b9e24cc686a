"""Every frame embedding of every tracklet in 2-D (umap-learn), coloured by identity: tight, separate clouds
mean the features tell these people apart; one identity split over distant clouds shows where clustering had
to bridge a change of look. Below ``MIN_UMAP_POINTS`` UMAP's neighbourhood graph is meaningless: PCA.

umap-learn jit-compiles its numba kernels without numba's on-disk cache, so every new process paid the whole
compilation again for this one figure; ``_cache_umap_kernels`` turns that cache on (README, Measured)."""
from __future__ import annotations

import functools
import importlib
import warnings
from pathlib import Path

import numpy as np

MIN_UMAP_POINTS = 15
# Below this many points umap finds exact neighbours from the full distance matrix (its own threshold); above it,
# approximate ones (NN-descent), and a matrix would no longer fit comfortably in memory.
EXACT_NEIGHBOURS_BELOW = 4096
# umap-learn's modules of numba kernels; the figure's path (exact neighbours from a cosine matrix, Euclidean layout)
# compiles fast_knn_indices, smooth_knn_dist, compute_membership_strengths and the layout's epoch.
UMAP_JIT_MODULES = ("umap.utils", "umap.umap_", "umap.layouts", "umap.distances", "umap.sparse", "umap.spectral")


@functools.cache
def _cache_umap_kernels() -> int:
    """Enable numba's on-disk cache (what ``cache=True`` does) for umap-learn's kernels not compiled yet; returns
    how many. The cache goes where numba puts it: ``__pycache__`` beside umap's sources, or ``NUMBA_CACHE_DIR``,
    or the user's cache directory when those are read-only. Keyed by the source files and the CPU, so an upgraded
    umap or another machine recompiles rather than loading stale code. A numba without the hook, or no writable
    cache location, leaves the figure as it was, only slower."""
    try:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher
    except ImportError:
        return 0
    enabled = 0
    for name in UMAP_JIT_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for obj in vars(module).values():
            if (isinstance(obj, Dispatcher) and isinstance(getattr(obj, "_cache", None), NullCache)
                    and not obj.overloads and getattr(obj.py_func, "__module__", None) == name):
                try:
                    obj.enable_caching()
                except RuntimeError:  # no writable cache location at all: compile in memory, as before
                    return enabled
                enabled += 1
    return enabled


def project_2d(x: np.ndarray, seed: int = 0, method: str = "umap") -> tuple[np.ndarray, str]:
    """(N, 2) coordinates and the method used ("umap", "pca" or "none" for fewer than two points)."""
    x = np.asarray(x, np.float32)
    if len(x) < 2:
        return np.zeros((len(x), 2), np.float32), "none"
    if method == "pca" or len(x) < MIN_UMAP_POINTS:
        from sklearn.decomposition import PCA

        k = min(2, x.shape[1], len(x))
        y = PCA(n_components=k, random_state=seed).fit_transform(x)
        return np.pad(y, ((0, 0), (0, 2 - k))).astype(np.float32), "pca"
    import umap
    from sklearn.metrics.pairwise import cosine_distances

    _cache_umap_kernels()
    # Cosine, like the tracklet distances. For small sets given as the full matrix: umap computes that matrix
    # anyway, but pair by pair through Python (slow: README, Measured); one BLAS product gives the same
    # neighbours. Distances of 2 (opposite vectors) disconnect, as umap's own cosine does. A fixed seed makes the
    # figure reproducible (single-threaded: n_jobs=1, which umap forces anyway under a seed, with a warning).
    exact = len(x) < EXACT_NEIGHBOURS_BELOW
    reducer = umap.UMAP(n_neighbors=min(15, len(x) - 1), min_dist=0.1, metric="precomputed" if exact else "cosine",
                        disconnection_distance=2.0, random_state=seed, n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="using precomputed metric", category=UserWarning)
        return reducer.fit_transform(cosine_distances(x).astype(np.float32) if exact else x).astype(np.float32), "umap"


def plot_embedding_clusters(
    embeddings: np.ndarray, identities: np.ndarray, path: str | Path, title: str = "", seed: int = 0, method: str = "umap"
) -> tuple[Path, str]:
    """Scatter of the 2-D projection, one colour per identity (the same colours as the videos)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reid_ray.viz.videos import colour_for

    xy, method = project_2d(embeddings, seed, method)
    identities = np.asarray(identities)
    fig, ax = plt.subplots(figsize=(7, 6))
    for ident in np.unique(identities):
        sel = identities == ident
        b, g, r = colour_for(int(ident))
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, color=(r / 255, g / 255, b / 255), label=f"id {int(ident)}")
    if len(identities) == 0:
        ax.text(0.5, 0.5, "no tracklets", ha="center", va="center", transform=ax.transAxes)
    elif len(np.unique(identities)) <= 20:
        ax.legend(fontsize=8, markerscale=2, loc="best")
    ax.set_title(f"{title} {len(identities)} frame embeddings, {method.upper()}".strip(), fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path, method
