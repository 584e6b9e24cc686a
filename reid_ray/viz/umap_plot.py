"""Every frame embedding of every tracklet in 2-D (umap-learn), coloured by identity: tight, separate clouds
mean the features tell these people apart; one identity split over distant clouds shows where clustering had
to bridge a change of look. Below ``MIN_UMAP_POINTS`` UMAP's neighbourhood graph is meaningless: PCA."""
from __future__ import annotations

from pathlib import Path

import numpy as np

MIN_UMAP_POINTS = 15


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

    # Cosine, like the tracklet distances; a fixed seed makes the figure reproducible (single-threaded).
    reducer = umap.UMAP(n_neighbors=min(15, len(x) - 1), min_dist=0.1, metric="cosine", random_state=seed)
    return reducer.fit_transform(x).astype(np.float32), "umap"


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
