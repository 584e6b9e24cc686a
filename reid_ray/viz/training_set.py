"""The training set's sample picture, as the seed shows its data: one row of views per tracklet (positives of
each other), rows of one scene together (hard negatives of each other)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reid_ray.viz.figures import save_figure


def plot_training_views(preview: Sequence[tuple[str, str, list[np.ndarray]]], path: str | Path, title: str) -> Path | None:
    """``preview``: (shot id, tracklet id, RGB crops) per tracklet; None when there is nothing to show."""
    import matplotlib.pyplot as plt

    rows = [(shot, tid, crops) for shot, tid, crops in preview if crops]
    if not rows:
        return None
    cols = max(len(c) for *_, c in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.3 * cols + 1.2, 2.2 * len(rows) + 0.6), squeeze=False)
    for r, (shot, tid, crops) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(crops):
                ax.imshow(crops[c])
        axes[r][0].set_ylabel(f"{shot}\n{tid}", rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{title}\nrow: one tracklet, its views are positives; rows of one shot: hard negatives of each other",
                 fontsize=9)
    return save_figure(fig, path)
