"""Tracks followed across a clip pair's gap: certain same-individual pairs at the gap's own scale."""
import numpy as np
import pyarrow as pa
import pytest

from reid_ray.calibration import calibrate
from reid_ray.config import CalibrationConfig, ProposalConfig
from reid_ray.schemas import CANDIDATE
from reid_ray.pairs.proposal import build_tracks, certain_pairs
from reid_ray.tracking.associate import AssociationParams
from reid_ray.tracking.bridge import bridged_track_pairs, find_bridges, is_bridged


def _walk(frames, x0, dx, y=20.0):
    return {f: np.array([x0 + dx * (f - frames[0]), y, x0 + dx * (f - frames[0]) + 30, y + 80], np.float32) for f in frames}


def test_an_untouched_walker_is_a_bridge_and_people_who_cross_are_not():
    frames = list(range(0, 60, 2))
    a_sampled, b_sampled = [0, 4, 8], [50, 54, 58]
    walker = _walk(frames, 10, 2)  # alone at the top
    left, right = _walk(frames, 100, 3, y=200), _walk(frames, 280, -3, y=200)  # meet half way, overlap, go on
    boxes = [np.stack([walker[f], left[f], right[f]]) for f in frames]
    cats = [np.array(["person"] * 3, object)] * len(frames)
    rows = find_bridges(frames, boxes, cats, a_sampled, b_sampled, AssociationParams())
    assert {r["bridge_id"] for r in rows} == {rows[0]["bridge_id"]}  # only the walker
    assert sorted(r["frame"] for r in rows) == a_sampled + b_sampled
    assert all(abs(r["bbox"][1] - 20) < 1e-3 for r in rows)


def _cand(cp, side, track, frame, emb, bbox):
    return {
        "candidate_id": f"{cp}_{side}_{track}_{frame}", "clip_pair_id": cp, "side": side, "track_id": track,
        "video_id": "v", "license": "synthetic", "category": "person", "score": 0.9, "frame": frame,
        "t_s": frame / 10, "bbox": list(bbox), "mask_rle": "", "mask_height": 0, "mask_width": 0,
        "keypoints": [], "sharpness": 100.0, "max_overlap": 0.0, "max_similarity_in_frame": 0.0, "keep": True,
        "reject_reason": "", "embedding": list(emb),
    }


def test_a_bridge_joins_the_two_tracks_it_runs_through():
    e = np.eye(4, dtype=np.float32)
    walker, other = _walk(list(range(60)), 10, 2), _walk(list(range(60)), 300, -1, y=150)
    rows = []
    for side, frames, tid in (("a", (0, 4), 3), ("b", (50, 54), 7)):  # the same walker has track 3 in A, 7 in B
        for f in frames:
            rows.append(_cand("cp", side, tid, f, e[0], walker[f]))
            rows.append(_cand("cp", side, tid + 1, f, e[1], other[f]))
    tracks = build_tracks(pa.Table.from_pylist(rows, schema=CANDIDATE), ProposalConfig())
    ta, tb = [t for t in tracks if t.side == "a"], [t for t in tracks if t.side == "b"]
    bridge = [{"bridge_id": 0, "side": s, "frame": f, "bbox": list(walker[f])} for s, fs in (("a", (0, 4)), ("b", (50, 54))) for f in fs]
    joined = bridged_track_pairs(bridge, ta, tb)
    assert [(ta[i].track_id, tb[j].track_id) for i, j in joined] == [(3, 7)]
    kinds = [r["kind"] for r in certain_pairs(tracks, ProposalConfig(), bridge)]
    assert kinds.count("bridge_positive") == 1 and kinds.count("negative") == 2  # within each clip: (3, 4), (7, 8)
    assert bridged_track_pairs(bridge + [{**r, "bridge_id": 1} for r in bridge], ta, tb) == []  # two bridges, one track: ambiguous


def test_tracks_followed_across_the_gap_place_the_same_individual_distances():
    within = {"positive": list(np.linspace(0.05, 0.15, 30)), "negative": list(np.linspace(0.35, 0.45, 30)), "proposal": [0.1, 0.2]}
    cfg = CalibrationConfig(min_bridged=8)
    cal = calibrate({"person": {**within, "bridge_positive": list(np.linspace(0.1, 0.2, 9))}}, cfg).for_category("person")
    assert cal.shift == pytest.approx(0.05, abs=1e-9) and cal.n_bridged == 9
    assert cal.model.log_likelihood_ratio(0.25) > calibrate({"person": within}, cfg).for_category("person").model.log_likelihood_ratio(0.25)
    few = calibrate({"person": {**within, "bridge_positive": [0.3] * 7}}, cfg).for_category("person")
    assert few.shift == 0 and few.n_bridged == 7  # too few to place it
    far = calibrate({"person": {**within, "bridge_positive": [0.9] * 9}}, cfg).for_category("person")
    assert far.shift == pytest.approx(far.mu_diff - far.mu_same)  # never past the 'different' median


def test_a_stable_share_of_clip_pairs_is_bridged():
    ids = [f"video__{i:07d}_{i + 75:07d}" for i in range(2000)]
    share = np.mean([is_bridged(i, 0.5) for i in ids])
    assert 0.45 < share < 0.55 and [is_bridged(i, 0.5) for i in ids] == [is_bridged(i, 0.5) for i in ids]
    assert not any(is_bridged(i, 0.0) for i in ids) and all(is_bridged(i, 1.0) for i in ids)
