"""Tracklet distances: hand-computed Chamfer-q (the seed's), power-Chamfer-p and percentile values, the fast kernel against the per-pair
reference, and the Ray-sharded matrix against the unsharded one."""
from __future__ import annotations

import numpy as np
import pytest

from reid_ray.config import TrackletDistanceConfig
from reid_ray.tracking.distances import (
    distance_matrix,
    frame_angle_distances,
    sharded_distance_matrix,
    tracklet_distance,
)


def _unit(deg: float) -> list[float]:
    return [np.cos(np.radians(deg)), np.sin(np.radians(deg))]


# A: frames at 0 and 90 degrees; B: frames at 0, 45 and 180 degrees. D = angle / 180 degrees:
#        B0    B45   B180
#  A0    0     0.25  1
#  A90   0.5   0.25  0.5
# Row minima r = (0, 0.25), column minima c = (0, 0.25, 0.5).
A = np.array([_unit(0), _unit(90)])
B = np.array([_unit(0), _unit(45), _unit(180)])


def test_hand_computed_frame_distances():
    expected = np.array([[0, 0.25, 1], [0.5, 0.25, 0.5]])
    np.testing.assert_allclose(frame_angle_distances(A, B), expected, atol=1e-12)


@pytest.mark.parametrize("q, expected", [(10, 0.0), (30, 0.05), (50, 0.25), (90, 0.4), (100, 0.5)])
def test_seed_chamfer_hand_computed(q, expected):
    # pooled nearest-neighbour distances r + c = (0, 0.25) + (0, 0.25, 0.5), sorted (0, 0, 0.25, 0.25, 0.5):
    # position q/100 * 4, linear interpolation (q=30: 1.2 -> 0 + 0.2 * 0.25)
    assert tracklet_distance(A, B, "chamfer", q=q) == pytest.approx(expected, abs=1e-12)


def test_seed_chamfer_ignores_bad_frames_power_chamfer_does_not():
    # The same person in 9 good frames and 1 bad one (another direction): the seed's Chamfer-10 looks at the
    # best-matched frames and stays at 0; the power mean is pulled up by the one bad frame.
    good = np.array([_unit(0)] * 9)
    with_bad = np.array([_unit(0)] * 9 + [_unit(120)])
    assert tracklet_distance(good, with_bad) == pytest.approx(0.0, abs=1e-7)  # defaults: chamfer, q=10
    assert tracklet_distance(good, with_bad, "power_chamfer", p=10) > 0.25


def test_power_chamfer_p1_is_classic_chamfer():
    # 0.5 * (mean(0, 0.25) + mean(0, 0.25, 0.5)) = 0.5 * (0.125 + 0.25)
    assert tracklet_distance(A, B, "power_chamfer", p=1) == pytest.approx(0.1875, abs=1e-12)
    d = frame_angle_distances(A, B)
    classic = 0.5 * (d.min(axis=1).mean() + d.min(axis=0).mean())
    assert tracklet_distance(A, B, "power_chamfer", p=1) == pytest.approx(classic, abs=1e-12)


def test_power_chamfer_p10_hand_computed():
    # M10(0, 0.25) = (0.25**10 / 2) ** 0.1 = 0.25 * 2**-0.1
    # M10(0, 0.25, 0.5) = ((0.25**10 + 0.5**10) / 3) ** 0.1 = 0.5 * ((2**-10 + 1) / 3) ** 0.1
    expected = 0.5 * (0.25 * 2**-0.1 + 0.5 * ((1 + 2**-10) / 3) ** 0.1)  # = 0.228641...
    got = tracklet_distance(A, B, "power_chamfer")  # p=10 by default
    assert got == pytest.approx(expected, abs=1e-12)
    assert got > tracklet_distance(A, B, "power_chamfer", p=1)  # the worst-matched frames weigh more


@pytest.mark.parametrize("q, expected", [(10, 0.125), (50, 0.375), (90, 0.75), (0, 0.0), (100, 1.0)])
def test_percentile_hand_computed(q, expected):
    # sorted D = (0, 0.25, 0.25, 0.5, 0.5, 1); position q/100 * 5, linear interpolation
    assert tracklet_distance(A, B, "percentile", q=q) == pytest.approx(expected, abs=1e-12)


def test_unnormalised_input_and_clipping():
    a = np.full((2, 3), 1 / np.sqrt(3)) * [[1.0], [7.0]]  # same direction, different norms: D = 0, never NaN
    assert np.all(np.isfinite(frame_angle_distances(a, a)))
    np.testing.assert_allclose(frame_angle_distances(a, a), 0.0, atol=1e-7)


def _tracklets(seed: int, n: int, dim: int = 128, max_len: int = 9) -> list[np.ndarray]:
    """Random unit-norm tracklets of varied lengths, clustered around a few identities (so that small
    distances occur too), float32 like the embedder's output."""
    rng = np.random.default_rng(seed)
    ids = rng.normal(size=(4, dim))
    out = []
    for _ in range(n):
        x = ids[rng.integers(4)] + 0.7 * rng.normal(size=(rng.integers(1, max_len + 1), dim))
        out.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    return out


def _reference(tracklets, **kw) -> np.ndarray:
    n = len(tracklets)
    ref = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                ref[i, j] = tracklet_distance(tracklets[i], tracklets[j], **kw)
    return ref


@pytest.mark.parametrize(
    "kw",
    [
        {"method": "chamfer", "q": 10},
        {"method": "chamfer", "q": 65},
        {"method": "power_chamfer", "p": 10},
        {"method": "power_chamfer", "p": 1},
        {"method": "percentile", "q": 10},
        {"method": "percentile", "q": 90},
    ],
)
def test_kernel_matches_reference(kw):
    tr = _tracklets(0, 14)
    got = distance_matrix(tr, **kw)
    np.testing.assert_allclose(got, _reference(tr, **kw), atol=1e-5, rtol=0)
    # many small tiles give the same matrix
    np.testing.assert_allclose(distance_matrix(tr, **kw, tile_frames=10), got, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["chamfer", "power_chamfer", "percentile"])
def test_symmetric_zero_diagonal_and_slices(method):
    tr = _tracklets(1, 12)
    full = distance_matrix(tr, method)
    assert np.array_equal(full, full.T)
    assert np.all(np.diag(full) == 0)
    assert np.all(full[~np.eye(len(tr), dtype=bool)] > 0)
    part = distance_matrix(tr, method, rows=slice(0, 5), cols=slice(3, 12))  # overlaps the diagonal
    np.testing.assert_allclose(part, full[0:5, 3:12], atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["chamfer", "percentile"])
def test_percentiles_mixed_lengths(method):
    # one long tracklet among short ones, not in length order: tiles group similar lengths (little padding)
    rng = np.random.default_rng(4)
    tr = [rng.normal(size=(n, 64)).astype(np.float32) for n in (1, 1, 60, 1, 3, 1, 2, 7)]
    for q in (30, 80):
        got = distance_matrix(tr, method, q=q, tile_frames=8)
        np.testing.assert_allclose(got, _reference(tr, method=method, q=q), atol=1e-5, rtol=0)


def test_config_and_bad_arguments():
    cfg = TrackletDistanceConfig(method="percentile", q=25)
    tr = _tracklets(2, 4)
    assert distance_matrix(tr, **cfg.model_dump())[0, 1] == pytest.approx(tracklet_distance(tr[0], tr[1], **cfg.model_dump()), abs=1e-5)
    with pytest.raises(ValueError):
        TrackletDistanceConfig(method="power_chamfer", p=0)
    # 'chamfer' with a p is a profile from before 'chamfer' became the seed's percentile: refused, not ignored
    with pytest.raises(ValueError, match="power_chamfer"):
        TrackletDistanceConfig(method="chamfer", p=3)
    with pytest.raises(ValueError, match="q"):
        TrackletDistanceConfig(method="power_chamfer", q=25)
    for made in (TrackletDistanceConfig(method="power_chamfer", p=3), TrackletDistanceConfig(q=5)):  # a dump loads again
        assert TrackletDistanceConfig.model_validate_json(made.model_dump_json()) == made
    with pytest.raises(ValueError):
        distance_matrix(tr, "median")
    with pytest.raises(ValueError):
        tracklet_distance(tr[0], np.zeros((0, 128)))


@pytest.mark.ray
@pytest.mark.parametrize("kw", [{"method": "chamfer", "q": 10}, {"method": "power_chamfer", "p": 10}, {"method": "percentile", "q": 10}])
def test_sharded_equals_unsharded(ray_local, kw):
    tr = _tracklets(3, 23)
    expected = distance_matrix(tr, **kw)
    got = sharded_distance_matrix(tr, block=5, **kw)  # 5 blocks -> 15 tasks, a ragged last block
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    assert np.array_equal(got, got.T) and np.all(np.diag(got) == 0)
