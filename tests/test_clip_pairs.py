"""Clip-pair selection: seeded, deterministic, never past the end, gap ranges, shot constraints."""
import pytest

from reid_ray.config import ClipPairsConfig
from reid_ray.pairs.clip_pairs import ClipSelectionError, sample_frames, select_clip_pairs

VIDEO = {"video_id": "v1", "uri": "/x.mp4", "license": "synthetic"}


def test_deterministic_and_inside_the_video():
    cfg = ClipPairsConfig(time_gap_s=10, clip_length_s=2, pairs_per_video=5, seed=3)
    a = select_clip_pairs(VIDEO, 25.0, 25 * 30, cfg)
    b = select_clip_pairs(VIDEO, 25.0, 25 * 30, cfg)
    assert a == b and len(a) == 5
    for r in a:
        assert r["b_start_frame"] - r["a_start_frame"] == 250
        assert r["a_end_frame"] - r["a_start_frame"] == 50
        assert r["b_end_frame"] <= 750 and r["a_start_frame"] >= 0
        assert r["gap_s"] == pytest.approx(10.0)
    other = select_clip_pairs({**VIDEO, "video_id": "v2"}, 25.0, 750, cfg)
    assert [r["a_start_frame"] for r in other] != [r["a_start_frame"] for r in a]


def test_gap_range_is_respected():
    cfg = ClipPairsConfig(time_gap_s=(2.0, 6.0), clip_length_s=1, pairs_per_video=20)
    rows = select_clip_pairs(VIDEO, 10.0, 600, cfg)
    gaps = [r["gap_s"] for r in rows]
    assert min(gaps) >= 2.0 and max(gaps) <= 6.0 and len(set(gaps)) > 3


def test_too_short_video_is_a_clear_error():
    with pytest.raises(ClipSelectionError, match="no clip pair fits"):
        select_clip_pairs(VIDEO, 10.0, 50, ClipPairsConfig(time_gap_s=10))


def test_shot_constraints():
    shots = [(0, 100), (100, 200), (200, 300)]
    same = select_clip_pairs(VIDEO, 10.0, 300, ClipPairsConfig(time_gap_s=3, clip_length_s=1, pairs_per_video=6, shot_constraint="same_shot"), shots)
    assert same and all(r["a_shot"] == r["b_shot"] and not r["across_cut"] for r in same)
    across = select_clip_pairs(VIDEO, 10.0, 300, ClipPairsConfig(time_gap_s=5, clip_length_s=1, pairs_per_video=6, shot_constraint="across_cut"), shots)
    assert across and all(r["a_shot"] != r["b_shot"] and r["across_cut"] for r in across)
    for r in same + across:  # each clip lies inside one shot
        for s in "ab":
            lo, hi = shots[r[f"{s}_shot"]]
            assert lo <= r[f"{s}_start_frame"] and r[f"{s}_end_frame"] <= hi


def test_sample_frames_spread_over_clip():
    assert sample_frames(10, 60, 6) == [10, 20, 30, 39, 49, 59]
    assert sample_frames(0, 3, 6) == [0, 1, 2]
