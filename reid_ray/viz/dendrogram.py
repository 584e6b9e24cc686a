"""Dendrogram of tracklet clustering: where each tracklet joined, the cut that made identities, and which merges
the time-overlap constraint blocked (``inf`` heights in ``Z`` from ``reid_ray.tracking.clustering``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import dendrogram, fcluster, leaves_list

from reid_ray.viz.figures import save_figure

BLOCKED_COLOUR = "#c8c8c8"  # merges the constraint forbids: drawn to close the tree, never identities
ABOVE_COLOUR = "#555555"  # allowed merges above the threshold
SINGLETON_COLOUR = "#333333"
# tab10 without its grey (kept for blocked/above-threshold links); cycled in leaf order, so neighbours differ.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#a5a000")


def plot_dendrogram(
    Z: np.ndarray, labels: list[str], threshold: float, path: str | Path, max_leaves: int = 200, title: str | None = None
) -> Path:
    """Draw ``Z`` sideways (tracklet names on the left, readable), with clusters at ``threshold`` coloured and
    the threshold as a dashed line. Beyond ``max_leaves`` tracklets the tree is cut to its last ``max_leaves``
    nodes (scipy's ``truncate_mode="lastp"``), shown as "(k)" for k tracklets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Z = np.asarray(Z, np.float64)
    n = len(Z) + 1
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for a tree of {n} tracklets")
    if n < 2:
        raise ValueError("a dendrogram needs at least two tracklets")
    flat = fcluster(Z, t=threshold, criterion="distance")
    node_cluster = _node_clusters(Z, flat)
    z_draw, top = _drawable(Z, threshold)
    colours = _cluster_colours(flat, leaves_list(z_draw))
    shown = min(n, max_leaves)

    fig, ax = plt.subplots(figsize=(9.5, min(max(2.2 + 0.16 * shown, 3.5), 36)))
    info = dendrogram(
        z_draw,
        orientation="right",
        ax=ax,
        truncate_mode="lastp" if n > max_leaves else None,
        p=max_leaves,
        leaf_label_func=lambda i: labels[i] if i < n else f"({int(Z[i - n, 3])})",
        link_color_func=lambda i: _link_colour(i, n, Z, threshold, node_cluster, colours),
        leaf_font_size=9 if shown <= 60 else 7 if shown <= 120 else 6,
    )
    for tick, leaf in zip(ax.get_yticklabels(), info["leaves"]):
        tick.set_color(colours.get(node_cluster[leaf], SINGLETON_COLOUR))
    shown_note = f", cut to its top {max_leaves} nodes: (k) = k tracklets" if n > max_leaves else ""
    _decorate(ax, Z, threshold, top, int(flat.max()), title or f"{n} tracklets{shown_note}")
    return save_figure(fig, path)


def _node_clusters(Z: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Flat cluster of every node (leaves, then merges), -1 where a node spans several."""
    n = len(flat)
    out = np.concatenate([flat, np.full(len(Z), -1)])
    for i, (a, b) in enumerate(Z[:, :2].astype(int)):
        if out[a] == out[b] != -1:
            out[n + i] = out[a]
    return out


def _cluster_colours(flat: np.ndarray, leaf_order: np.ndarray) -> dict[int, str]:
    """A palette colour per cluster of two or more tracklets, cycled in drawing order; singletons stay dark."""
    ids, counts = np.unique(flat, return_counts=True)
    multi = set(ids[counts > 1].tolist())
    in_order = [c for c in dict.fromkeys(flat[leaf_order].tolist()) if c in multi]
    return {c: PALETTE[k % len(PALETTE)] for k, c in enumerate(in_order)}


def _drawable(Z: np.ndarray, threshold: float) -> tuple[np.ndarray, float]:
    """Z with blocked (inf) heights replaced by a rising band above the real tree, and the band's floor."""
    real = Z[np.isfinite(Z[:, 2]), 2]
    base = max(float(real.max(initial=0.0)), float(threshold), 1e-6)
    top = base * 1.1
    blocked = ~np.isfinite(Z[:, 2])
    z = Z.copy()
    z[blocked, 2] = top + base * 0.12 * np.linspace(0.2, 1.0, int(blocked.sum()))
    return z, top


def _link_colour(i: int, n: int, Z: np.ndarray, threshold: float, node_cluster: np.ndarray, colours: dict) -> str:
    h = Z[i - n, 2]
    if not np.isfinite(h):
        return BLOCKED_COLOUR
    if h <= threshold:
        return colours.get(node_cluster[i], SINGLETON_COLOUR)
    return ABOVE_COLOUR


def _decorate(ax, Z: np.ndarray, threshold: float, top: float, n_clusters: int, title: str) -> None:
    ax.axvline(threshold, color="#d62728", ls="--", lw=1.2, label=f"threshold {threshold:g}: {n_clusters} identities")
    n_blocked = int((~np.isfinite(Z[:, 2])).sum())
    if n_blocked:
        ax.axvspan(top, ax.get_xlim()[1], color="#f2f2f2", zorder=0)
        ax.plot([], [], color=BLOCKED_COLOUR, lw=2, label=f"{n_blocked} joins blocked by time overlap (not identities)")
        ticks = [t for t in ax.get_xticks() if 0 <= t <= top]
        ax.set_xticks(ticks)
    ax.set_xlim(left=0)
    ax.set_xlabel("linkage distance")
    ax.set_title(title, loc="left", fontsize=10, pad=20)  # room for the legend line under it
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False, borderaxespad=0.2)
