"""Curriculum picture: the similarity of proposed matches per time gap (larger gap, harder pairs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reid_ray.viz.figures import save_figure


def plot_curriculum(per_gap: dict[float, dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gaps = sorted(per_gap)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    data = [per_gap[g]["match_similarities"] or [np.nan] for g in gaps]
    ax1.boxplot(data, tick_labels=[f"{g:g}" for g in gaps], showmeans=True)
    ax1.set_xlabel("time gap (s)")
    ax1.set_ylabel("similarity of proposed matches (1 - track distance)")
    ax1.set_title("Similarity of proposed matches per gap")
    labels = ["identical", "pending_review", "same_category_different_instance", "unrelated"]
    bottom = np.zeros(len(gaps))
    for label in labels:
        counts = np.array([per_gap[g]["by_label"].get(label, 0) for g in gaps], float)
        ax2.bar([f"{g:g}" for g in gaps], counts, bottom=bottom, label=label)
        bottom += counts
    ax2.set_xlabel("time gap (s)")
    ax2.set_ylabel("pairs")
    ax2.set_title("Pairs per gap and label")
    ax2.legend(fontsize=8)
    return save_figure(fig, path)
