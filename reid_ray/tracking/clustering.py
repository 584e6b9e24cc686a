"""Tracklets -> identities: agglomerative clustering that never puts two time-overlapping tracklets together.

One person cannot be in two places in one frame, so tracklets that share a frame form a *cannot-link* pair.
Plain average linkage does not honour such a pair given as a large distance: a cluster's average can stay
below the threshold while one member pair is huge (see ``tests/test_clustering.py``), and scipy and
scikit-learn both reject an infinite distance.

Both methods here run scipy's own ``linkage`` (C, nearest-neighbour chain, O(n^2) time on the condensed
matrix) after replacing each cannot-link distance with a penalty ``P = (top + 1) * n**2``, where ``top`` is the
larger of the threshold and the largest real distance. Why that enforces the constraint exactly:

* complete linkage: a merge of clusters A and B has the height of their farthest pair, so any merge holding a
  cannot-link pair has height P > top.
* average linkage (UPGMA): a merge of A and B has the height of the mean of the |A|·|B| member-pair distances.
  If one of them is P, the mean is at least P / (|A|·|B|) >= 4 P / n**2 = 4 (top + 1) > top, because
  |A| + |B| <= n. Every merge without a cannot-link pair averages real distances only, so its height is at
  most the largest real distance <= top.

So while any merge of two clusters without a cannot-link pair is left, it is closer than every blocked one,
and scipy's greedy order is exactly the constrained procedure "merge the closest pair of clusters that has no
cannot-link pair between them". Real heights are at most ``top``; blocked ones at least ``4 (top + 1)``. A cut at
any threshold <= top therefore never joins a cannot-link pair, and no hand-written agglomeration is needed.

The linkage matrix ``Z`` returned by ``cluster_hierarchy`` keeps scipy's layout. Its last rows, the blocked
merges (they only happen once no allowed merge is left), have height ``inf``. They are not identities. They
only close the tree so that ``scipy.cluster.hierarchy.dendrogram`` can draw it, and ``fcluster`` never crosses
them at a finite threshold. ``reid_ray.viz.dendrogram.plot_dendrogram`` draws them in grey above the real ones.

The threshold is inclusive (scipy's ``fcluster(criterion="distance")``: merges at height <= threshold are kept).
scikit-learn's ``distance_threshold`` is exclusive. The two differ only on exact ties.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.cluster.hierarchy import fcluster
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import num_obs_y, squareform

__all__ = ["LINKAGES", "cannot_link_violations", "cluster_hierarchy", "cluster_tracklets", "temporal_overlap"]

LINKAGES = ("average", "complete")

# --------------------------------------------------------------------------------------- time overlap


def temporal_overlap(spans: Sequence[tuple[int, int]] | Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """(n, n) bool, True where tracklets i != j share a frame.

    Each entry is either a ``[start, end)`` span (a tuple or list of two ints, or a row of an (n, 2) array) or an
    ``np.ndarray`` of the frames the tracklet holds (exact: gaps count, so two tracklets that interleave without
    sharing a frame do not overlap). Empty spans and empty frame sets overlap nothing. The diagonal is False.
    """
    if isinstance(spans, np.ndarray) and spans.ndim == 2 and spans.shape[1] == 2:
        return _span_overlap(spans[:, 0], spans[:, 1])
    n = len(spans)
    if n == 0:
        return np.zeros((0, 0), bool)
    if all(_is_span(s) for s in spans):
        se = np.asarray(spans, np.int64).reshape(n, 2)
        return _span_overlap(se[:, 0], se[:, 1])
    return _frame_overlap([_as_frames(s) for s in spans])


def _is_span(s: object) -> bool:
    return isinstance(s, (tuple, list)) and len(s) == 2


def _as_frames(s: object) -> np.ndarray:
    if _is_span(s):  # a span in a list that also holds frame sets
        return np.arange(int(s[0]), int(s[1]), dtype=np.int64)
    return np.unique(np.asarray(s, np.int64).reshape(-1))


def _span_overlap(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    start, end = np.asarray(start, np.int64), np.asarray(end, np.int64)
    nonempty = end > start
    out = (start[:, None] < end[None, :]) & (start[None, :] < end[:, None])
    out &= nonempty[:, None] & nonempty[None, :]
    np.fill_diagonal(out, False)
    return out


def _frame_overlap(frames: list[np.ndarray]) -> np.ndarray:
    """Exact overlap of frame sets: a sparse tracklet x frame incidence matrix times its transpose (scipy)."""
    n = len(frames)
    rows = np.repeat(np.arange(n), [len(f) for f in frames])
    allf = np.concatenate(frames) if n else np.zeros(0, np.int64)
    _, cols = np.unique(allf, return_inverse=True)
    inc = sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, cols.reshape(-1))), shape=(n, int(cols.max(initial=-1)) + 1))
    shared = (inc @ inc.T).tocoo()
    out = np.zeros((n, n), bool)
    out[shared.row, shared.col] = True
    np.fill_diagonal(out, False)
    return out


# ----------------------------------------------------------------------------------------- clustering


def cluster_tracklets(
    distances: np.ndarray, cannot_link: np.ndarray, threshold: float, linkage: str = "average"
) -> np.ndarray:
    """Identity label (0-based, contiguous) of each tracklet. See ``cluster_hierarchy``."""
    return cluster_hierarchy(distances, cannot_link, threshold, linkage)[0]


def cluster_hierarchy(
    distances: np.ndarray, cannot_link: np.ndarray, threshold: float, linkage: str = "average"
) -> tuple[np.ndarray, np.ndarray]:
    """Constrained agglomerative clustering: (labels, Z).

    ``distances``: (n, n) symmetric or condensed (n*(n-1)/2,), finite and >= 0. ``cannot_link``: (n, n) bool
    (either direction counts) or condensed bool, e.g. ``temporal_overlap(spans)``. ``linkage``: "average" or
    "complete". No returned cluster holds a cannot-link pair (see the module docstring for why). ``Z`` is a
    scipy linkage matrix whose blocked merges have height ``inf`` (for drawing only).
    """
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be finite and >= 0, got {threshold}")
    d, n = _condensed_distances(distances)
    cl = _condensed_cannot_link(cannot_link, n)
    if n < 2:
        return np.zeros(n, np.int64), np.zeros((0, 4))
    top = max(float(d.max(initial=0.0)), float(threshold))
    d[cl] = (top + 1.0) * n * n  # d is our own copy (see _condensed_distances)
    z = scipy_linkage(d, method=linkage)
    z[z[:, 2] > 2.0 * (top + 1.0), 2] = np.inf  # real <= top < 2 (top + 1) < 4 (top + 1) <= blocked
    labels = _relabel(fcluster(z, t=threshold, criterion="distance"))
    if cannot_link_violations(labels, cl):  # cheap guard (sum of cluster sizes squared) on the proof above
        raise RuntimeError("constrained clustering joined a cannot-link pair; please report this input")
    return labels, z


def cannot_link_violations(labels: np.ndarray, cannot_link: np.ndarray) -> int:
    """Number of cannot-link pairs that share a cluster (0 when the constraint holds)."""
    labels = np.asarray(labels).reshape(-1)
    cl = _square_bool(cannot_link, len(labels))
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return int(sum(cl[np.ix_(m, m)].sum() for m in np.split(order, bounds) if len(m) > 1) // 2)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """0-based labels in order of first appearance, so equal partitions give equal arrays."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse.reshape(-1)].astype(np.int64)


def _condensed_distances(distances: np.ndarray) -> tuple[np.ndarray, int]:
    """A fresh float64 condensed copy and n, checked: square input symmetric, values finite and >= 0.
    An empty condensed vector is read as one tracklet (pass a (0, 0) matrix for none)."""
    a = np.asarray(distances, np.float64)
    if a.ndim == 2:
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"distances must be square or condensed, got shape {a.shape}")
        n = a.shape[0]
        if not np.allclose(a, a.T, equal_nan=True):
            raise ValueError("distances must be symmetric")
        a = squareform(a, checks=False) if n > 1 else np.zeros(0)
    elif a.ndim == 1:
        n = num_obs_y(a) if len(a) else 1  # raises on a length that is no n*(n-1)/2
        a = a.copy()
    else:
        raise ValueError(f"distances must be square or condensed, got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError("distances must be finite and >= 0 (give impossible pairs through cannot_link)")
    return a, n


def _condensed_cannot_link(cannot_link: np.ndarray, n: int) -> np.ndarray:
    c = np.asarray(cannot_link, bool)
    if c.ndim == 2:
        if c.shape != (n, n):
            raise ValueError(f"cannot_link has shape {c.shape}, distances are for {n} tracklets")
        return squareform(c | c.T, checks=False) if n > 1 else np.zeros(0, bool)
    if c.ndim == 1 and len(c) == n * (n - 1) // 2:
        return c
    raise ValueError(f"cannot_link has shape {c.shape}, distances are for {n} tracklets")


def _square_bool(cannot_link: np.ndarray, n: int) -> np.ndarray:
    c = np.asarray(cannot_link, bool)
    if c.ndim == 1:
        return squareform(c, checks=False) if len(c) else np.zeros((n, n), bool)
    return c | c.T


def cluster_with_anchors(
    distances: np.ndarray,
    cannot_link: np.ndarray,
    anchor: np.ndarray,
    threshold: float,
    linkage: str = "average",
    max_attach_distance: float = 1.0,
    attach_order: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the trusted tracklets, then attach the others one by one: (labels, Z of the anchors).

    ``anchor``: (n,) bool, the tracklets whose distances can be trusted (here: only clean views). Their
    constrained hierarchy decides the identities; each other tracklet (in ``attach_order``, e.g. longest
    first) joins the identity holding its nearest member (single-link) among those with no cannot-link
    member, including tracklets attached before it, if that distance is at most ``max_attach_distance``,
    else starts an identity of its own. Occluded tracklets carry two people's looks: inside the hierarchy
    they bridge identities, so they join after it (README, Measured: IDF1 with and without).
    """
    d = np.asarray(distances, np.float64)
    n = len(d)
    anchor = np.asarray(anchor, bool)
    cl = _square_bool(np.asarray(cannot_link), n) if n else np.zeros((0, 0), bool)
    ia = np.flatnonzero(anchor)
    if len(ia) == 0 or len(ia) == n:
        return cluster_hierarchy(d, cl, threshold, linkage)
    labels = -np.ones(n, np.int64)
    labels[ia], z = cluster_hierarchy(d[np.ix_(ia, ia)], cl[np.ix_(ia, ia)], threshold, linkage)
    next_label = int(labels.max()) + 1
    for i in attach_order if attach_order is not None else np.flatnonzero(~anchor):
        best, best_d = -1, max_attach_distance
        for c in np.unique(labels[labels >= 0]):
            members = np.flatnonzero(labels == c)
            if cl[i, members].any():
                continue
            dc = float(d[i, members].min())
            if dc <= best_d:
                best, best_d = int(c), dc
        if best < 0:
            best, next_label = next_label, next_label + 1
        labels[i] = best
    if cannot_link_violations(labels, cl):
        raise RuntimeError("attaching joined a cannot-link pair; please report this input")
    return _relabel(labels), z
