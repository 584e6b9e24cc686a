"""Pictures of what a set head sees: its attention over the patches inside a person's mask, drawn over the crop,
and the patch embeddings projected to three PCA components shown as colours (parts of a body that the
backbone tells apart get different colours). One row per person, crops side by side."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reid_ray.models.patches import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    cells_inside,
    instance_crops,
)
from reid_ray.records import Instances


def _grid_of(values: np.ndarray, inside: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Per-patch values (n, c) back on the (gh, gw, c) grid; cells outside the mask are NaN."""
    out = np.full((inside.size, values.shape[1]), np.nan, np.float32)
    out[inside] = values
    return out.reshape(*grid_hw, values.shape[1])


def plot_patch_maps(
    frames: Sequence[np.ndarray],
    instances: Sequence[Instances],
    embedder,
    heads: dict[str, object],
    path: str | Path,
    title: str = "",
) -> Path:
    """``frames[i]`` (RGB) with one person ``instances[i]``; ``heads``: name -> ``TrainedHead`` (its
    ``attention``). Columns: crop, PCA of the patches, one attention map per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for frame, inst in zip(frames, instances):
        masked = inst.with_masks(frame.shape[:2], "core") if inst.masks is None else inst
        crops, masks = instance_crops(frame, masked, embedder.crop_hw)
        fmap = embedder.feature_maps(crops)[0]
        gh, gw = fmap.shape[1:]
        inside = cells_inside(masks[0], (gh, gw))
        patches = fmap.reshape(fmap.shape[0], -1).T[inside]
        rgb = (crops[0].transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN).clip(0, 1)
        rows.append((rgb, patches, inside, (gh, gw)))
    # One PCA basis for all crops, so one colour means one kind of patch across people.
    allp = np.concatenate([p for _, p, _, _ in rows])
    centre = allp.mean(0)
    _, _, vt = np.linalg.svd(allp - centre, full_matrices=False)
    proj_all = (allp - centre) @ vt[:3].T
    lo, hi = np.percentile(proj_all, 2, 0), np.percentile(proj_all, 98, 0)

    n_cols = 2 + len(heads)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.8 * n_cols, 3.2 * len(rows)), squeeze=False)
    for r, (rgb, patches, inside, grid) in enumerate(rows):
        h, w = rgb.shape[:2]
        extent = (0, w, h, 0)
        axes[r, 0].imshow(rgb)
        pca = ((patches - centre) @ vt[:3].T - lo) / np.maximum(hi - lo, 1e-6)
        axes[r, 1].imshow(rgb, alpha=0.35)
        axes[r, 1].imshow(np.nan_to_num(_grid_of(pca.clip(0, 1), inside, grid), nan=1.0), extent=extent, alpha=0.8,
                          interpolation="nearest")
        for c, (name, head) in enumerate(heads.items(), start=2):
            _, weights = head.attention([patches])
            grid_w = _grid_of(weights[0][:, None], inside, grid)[..., 0]
            axes[r, c].imshow(rgb)
            axes[r, c].imshow(np.ma.masked_invalid(grid_w), extent=extent, cmap="inferno", alpha=0.6,
                              interpolation="nearest")
            if r == 0:
                axes[r, c].set_title(f"{name} head\nattention", fontsize=8)
        if r == 0:
            axes[r, 0].set_title("crop", fontsize=8)
            axes[r, 1].set_title("patch PCA\n(3 comps = RGB)", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
