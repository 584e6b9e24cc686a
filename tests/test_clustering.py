"""Tracklet clustering under cannot-link (time-overlap) constraints, checked against a slow obvious reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform
from sklearn.cluster import AgglomerativeClustering

from reid_ray.tracking.clustering import (
    cannot_link_violations,
    cluster_hierarchy,
    cluster_tracklets,
    temporal_overlap,
)

# ------------------------------------------------------------------------------------------ helpers


def _canonical(labels) -> np.ndarray:
    """Labels renumbered by first appearance, so equal partitions compare equal."""
    _, first, inv = np.unique(np.asarray(labels), return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inv.reshape(-1)]


def _reference(d: np.ndarray, cl: np.ndarray, threshold: float, method: str) -> tuple[np.ndarray, list[float]]:
    """Constrained agglomeration the slow, obvious way (O(n^4)): repeatedly merge the closest pair of clusters
    (mean or max of member distances) that has no cannot-link pair, until none is left. Returns the labels of the
    merges at height <= threshold (heights never decrease, so they are a prefix) and every merge height."""
    n = len(d)
    clusters = [[i] for i in range(n)]
    merges: list[tuple[float, list[int]]] = []
    while True:
        best = None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                ia, ib = np.ix_(clusters[a], clusters[b])
                if cl[ia, ib].any():
                    continue
                h = d[ia, ib].mean() if method == "average" else d[ia, ib].max()
                if best is None or h < best[0]:
                    best = (h, a, b)
        if best is None:
            break
        h, a, b = best
        merged = clusters[a] + clusters[b]
        merges.append((float(h), merged))
        clusters = [c for k, c in enumerate(clusters) if k not in (a, b)] + [merged]
    labels = np.arange(n)
    for h, members in merges:
        if h <= threshold:
            labels[members] = labels[members[0]]
    return _canonical(labels), [h for h, _ in merges]


def _random_instance(n: int, seed: int, density: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = squareform(rng.random(n * (n - 1) // 2))
    cl = squareform(rng.random(n * (n - 1) // 2) < density)
    return d, cl


def _tracklets(n: int, seed: int, n_people: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings around a few identities, distances in [0, 1], spans where about 10% of pairs overlap."""
    rng = np.random.default_rng(seed)
    people = rng.integers(n_people, size=n)
    emb = rng.normal(size=(n_people, 16))[people] + 0.6 * rng.normal(size=(n, 16))
    dist = squareform(pdist(emb, "cosine") / 2)
    start = rng.integers(0, 10_000, n)
    spans = np.stack([start, start + rng.integers(300, 700, n)], 1)
    return dist, temporal_overlap(spans), people


# ------------------------------------------------------------------------------------- time overlap


def test_temporal_overlap_of_spans_is_half_open():
    ov = temporal_overlap([(0, 5), (4, 8), (8, 9), (3, 3)])
    want = np.zeros((4, 4), bool)
    want[0, 1] = want[1, 0] = True  # (4, 8) starts inside (0, 5); (8, 9) starts where (4, 8) ends; (3, 3) is empty
    assert (ov == want).all()
    assert (temporal_overlap(np.array([[0, 5], [4, 8], [8, 9], [3, 3]])) == want).all()
    assert temporal_overlap([]).shape == (0, 0)


def test_temporal_overlap_of_frame_sets_is_exact():
    interleaved = [np.array([0, 2, 4]), np.array([1, 3, 5]), np.array([4, 10]), np.array([], int)]
    ov = temporal_overlap(interleaved)
    assert not ov[0, 1]  # their spans cross, but they never share a frame
    assert ov[0, 2] and ov[2, 0] and not ov[1, 2] and not ov[3].any() and not ov.diagonal().any()
    mixed = temporal_overlap([np.array([0, 2, 4]), (3, 5)])  # spans and frame sets together
    assert mixed[0, 1] and mixed[1, 0]


# --------------------------------------------------------------- why plain average linkage is not enough


def _two_groups_one_conflict(big: float) -> tuple[np.ndarray, np.ndarray]:
    """Two tight groups of 20 (0.01 inside), 0.1 apart, with one cannot-link pair across them set to ``big``."""
    n = 40
    d = np.full((n, n), 0.1)
    d[:20, :20] = d[20:, 20:] = 0.01
    np.fill_diagonal(d, 0)
    cl = np.zeros((n, n), bool)
    cl[0, 20] = cl[20, 0] = True
    d_big = d.copy()
    d_big[cl] = big
    return d_big, cl


def test_plain_average_linkage_joins_a_cannot_link_pair_given_as_a_large_distance():
    # 200 times the threshold is not enough: the groups' average is (399 * 0.1 + 100) / 400 = 0.35 < 0.5.
    d, cl = _two_groups_one_conflict(big=100.0)
    sk = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average", distance_threshold=0.5)
    assert cannot_link_violations(sk.fit(d).labels_, cl) == 1
    sp = fcluster(linkage(squareform(d), "average"), 0.5, "distance")
    assert cannot_link_violations(sp, cl) == 1
    # An infinite distance is refused outright by both.
    d_inf, _ = _two_groups_one_conflict(big=np.inf)
    with pytest.raises(ValueError):
        sk.fit(d_inf)
    with pytest.raises(ValueError):
        linkage(squareform(d_inf, checks=False), "average")


@pytest.mark.parametrize("method", ["average", "complete"])
def test_constrained_clustering_keeps_the_conflicting_groups_apart(method):
    d, cl = _two_groups_one_conflict(big=0.1)
    labels, z = cluster_hierarchy(d, cl, 0.5, method)
    assert (labels == np.repeat([0, 1], 20)).all()
    assert np.isinf(z[-1, 2]) and np.isfinite(z[:-1, 2]).all()  # one blocked merge, drawn at the top only
    # Plain complete linkage with the pair at any finite value above the threshold also holds (max, not mean).
    d1, _ = _two_groups_one_conflict(big=0.51)
    assert cannot_link_violations(fcluster(linkage(squareform(d1), "complete"), 0.5, "distance"), cl) == 0


# ------------------------------------------------------------------------------------------ properties


@settings(max_examples=120, deadline=None, database=None)  # no .hypothesis folder in the repo
@given(
    n=st.integers(2, 11),
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.0, 0.6),
    threshold=st.floats(0.05, 1.0),
    method=st.sampled_from(["average", "complete"]),
)
def test_matches_the_obvious_constrained_procedure(n, seed, density, threshold, method):
    d, cl = _random_instance(n, seed, density)
    labels, z = cluster_hierarchy(d, cl, threshold, method)
    want, heights = _reference(d, cl, threshold, method)
    assert cannot_link_violations(labels, cl) == 0
    assert (labels == want).all()
    finite = np.isfinite(z[:, 2])
    np.testing.assert_allclose(z[finite, 2], heights, rtol=1e-9, atol=1e-12)  # same merges, same order
    assert finite[: len(heights)].all() and not finite[len(heights):].any()  # blocked merges only at the top


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["average", "complete"])
def test_without_cannot_links_it_is_scipy_linkage_and_fcluster(seed, method):
    dist, _, _ = _tracklets(120, seed)
    none = np.zeros(dist.shape, bool)
    got = cluster_tracklets(dist, none, 0.3, method)
    want = fcluster(linkage(squareform(dist), method), 0.3, "distance")
    assert (got == _canonical(want)).all()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["average", "complete"])
def test_no_cluster_holds_tracklets_that_overlap_in_time(seed, method):
    dist, overlap, _ = _tracklets(300, seed)
    labels = cluster_tracklets(dist, overlap, 0.3, method)
    assert cannot_link_violations(labels, overlap) == 0
    condensed = squareform(overlap, checks=False)
    assert (cluster_tracklets(squareform(dist), condensed, 0.3, method) == labels).all()  # condensed inputs
    if method == "average":  # the constraint is doing work: plain average linkage does join overlapping ones
        assert cannot_link_violations(fcluster(linkage(squareform(dist), method), 0.3, "distance"), overlap) > 0


def test_small_and_bad_inputs():
    assert cluster_tracklets(np.zeros((0, 0)), np.zeros((0, 0), bool), 0.5).shape == (0,)
    assert (cluster_tracklets(np.zeros((1, 1)), np.zeros((1, 1), bool), 0.5) == [0]).all()
    two = np.array([[0, 0.1], [0.1, 0]])
    assert (cluster_tracklets(two, np.zeros((2, 2), bool), 0.5) == [0, 0]).all()
    assert (cluster_tracklets(two, np.array([[0, 1], [0, 0]], bool), 0.5) == [0, 1]).all()  # one direction is enough
    with pytest.raises(ValueError, match="symmetric"):
        cluster_tracklets(np.array([[0, 0.1], [0.2, 0]]), np.zeros((2, 2), bool), 0.5)
    with pytest.raises(ValueError, match="finite"):
        cluster_tracklets(np.array([[0, np.nan], [np.nan, 0]]), np.zeros((2, 2), bool), 0.5)
    with pytest.raises(ValueError, match="linkage"):
        cluster_tracklets(two, np.zeros((2, 2), bool), 0.5, "single")
    with pytest.raises(ValueError, match="cannot_link"):
        cluster_tracklets(two, np.zeros((3, 3), bool), 0.5)


# --------------------------------------------------------------------------------------------- drawing


@pytest.mark.parametrize("n, max_leaves", [(14, 200), (40, 12)])
def test_dendrogram_draws_blocked_merges_and_truncates(tmp_path, n, max_leaves):
    from matplotlib.image import imread

    from reid_ray.viz.dendrogram import plot_dendrogram

    dist, overlap, _ = _tracklets(n, seed=1, n_people=3)
    _, z = cluster_hierarchy(dist, overlap, 0.3)
    assert np.isinf(z[:, 2]).any()  # this instance has blocked merges to draw
    path = plot_dendrogram(z, [f"t{i}" for i in range(n)], 0.3, tmp_path / "d.png", max_leaves=max_leaves)
    img = imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 500
    with pytest.raises(ValueError, match="labels"):
        plot_dendrogram(z, ["x"], 0.3, tmp_path / "e.png")


def test_occluded_tracklets_attach_after_the_clean_ones_cluster():
    """Clean tracklets 0 and 1 are two people (distance 0.5). Occluded 2-4 show both at once (0.18 from A,
    0.2 from B, alike each other): in the plain hierarchy they bridge A and B into one identity; attached
    after the clean ones cluster, they join A. Occluded 5 shares frames with both, so it stands alone."""
    from reid_ray.tracking.clustering import cluster_with_anchors

    d = np.full((6, 6), 0.9)
    np.fill_diagonal(d, 0)
    pairs = [(0, 1, 0.5), (2, 3, 0.05), (2, 4, 0.05), (3, 4, 0.05), (5, 0, 0.1), (5, 1, 0.1)]
    pairs += [(k, 0, 0.18) for k in (2, 3, 4)] + [(k, 1, 0.2) for k in (2, 3, 4)]
    for a, b, v in pairs:
        d[a, b] = d[b, a] = v
    cl = np.zeros((6, 6), bool)
    cl[5, 0] = cl[5, 1] = True
    plain, _ = cluster_hierarchy(d, cl, 0.3)
    assert plain[0] == plain[1]  # the bridge: two people become one
    anchor = np.array([True, True, False, False, False, False])
    labels, z = cluster_with_anchors(d, cl, anchor, 0.3)
    assert labels[0] != labels[1] and (labels[2:5] == labels[0]).all()
    assert labels[5] not in labels[:5] and cannot_link_violations(labels, cl) == 0
    assert len(z) == 1  # the hierarchy is over the 2 clean tracklets only
    far, _ = cluster_with_anchors(d, cl, anchor, 0.3, max_attach_distance=0.15)
    assert far[2] not in far[:2]  # nothing close enough: an identity of its own
