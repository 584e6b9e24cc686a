"""Association within a clip, the quality filter and pair proposal/routing on constructed inputs."""
import numpy as np
import pyarrow as pa

from reid_ray.config import ProposalConfig, QualityConfig
from reid_ray.records import Instances
from reid_ray.schemas import CANDIDATE
from reid_ray.pairs.proposal import propose_video
from reid_ray.pairs.quality import assess
from reid_ray.tracking.associate import link_frames


def test_tracks_survive_a_missed_detection_and_split_on_a_look_change():
    from reid_ray.tracking.associate import split_on_appearance

    boxes = [np.array([[10, 10, 30, 70]], np.float32), np.zeros((0, 4), np.float32), np.array([[26, 10, 46, 70]], np.float32)]
    cats = [np.array(["person"], object), np.zeros(0, object), np.array(["person"], object)]
    ids = link_frames(boxes, cats, [None] * 3)
    assert ids[0][0] == ids[2][0]
    e = np.eye(3, dtype=np.float32)
    same_id = [np.array([0]), np.array([0]), np.array([0])]
    split = split_on_appearance(same_id, [e[[0]], e[[0]], e[[1]]], 0.8)
    assert split[0][0] == split[1][0] != split[2][0]
    unusable_skipped = split_on_appearance(same_id, [e[[0]], e[[2]], e[[0]]], 0.8, [np.array([True]), np.array([False]), np.array([True])])
    assert len({int(x[0]) for x in unusable_skipped}) == 1


def test_link_frames_follows_moving_boxes_and_keeps_categories_apart():
    boxes = [np.array([[10, 10, 30, 70], [100, 10, 120, 70]], np.float32)]
    for k in range(1, 4):
        boxes.append(boxes[0] + np.array([[8 * k, 0, 8 * k, 0], [-8 * k, 0, -8 * k, 0]], np.float32))
    cats = [np.array(["person", "person"], object)] * 4
    ids = link_frames(boxes, cats, [None] * 4)
    assert all((i == ids[0]).all() for i in ids)
    ids2 = link_frames(boxes[:2], [cats[0], np.array(["product", "person"], object)], [None, None])
    assert ids2[1][0] not in ids2[0]


def test_quality_reasons():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    frame[:, 250:] = 128  # flat region: no sharpness
    inst = Instances.from_arrays(
        [[0, 50, 40, 150], [100, 40, 140, 160], [110, 50, 150, 170], [200, 40, 240, 45], [255, 40, 290, 160]],
        [1] * 5, ["person"] * 5,
    ).with_masks((200, 300))
    emb = np.eye(5, dtype=np.float32)
    rep = assess(frame, inst, emb, QualityConfig(min_height_px=32, min_area_px=300))
    assert "cut_by_border" in rep.reasons[0]
    assert "occluded" in rep.reasons[1] and "occluded" in rep.reasons[2]
    assert "too_small" in rep.reasons[3]
    assert "blurry" in rep.reasons[4]
    same = np.ones((5, 8), np.float32) / np.sqrt(8)
    assert all("not_distinct" in r for r in assess(frame, inst, same, QualityConfig()).reasons)


def _cand(cp, side, track, frame, emb, category="person", keep=True, bbox=None, score=0.9):
    x = 60.0 * track + 2.0 * frame  # tracks side by side, walking
    return {
        "candidate_id": f"{cp}_{side}_{track}_{frame}", "clip_pair_id": cp, "side": side, "track_id": track,
        "video_id": "v", "license": "synthetic", "category": category, "score": score, "frame": frame,
        "t_s": frame / 10, "bbox": bbox or [x, 10.0, x + 40.0, 120.0], "mask_rle": "", "mask_height": 0, "mask_width": 0,
        "keypoints": [], "sharpness": 100.0, "max_overlap": 0.0, "max_similarity_in_frame": 0.0, "keep": keep,
        "reject_reason": "", "embedding": list(emb),
    }


def test_proposal_routes_by_confidence_and_derives_certain_negatives():
    e = np.eye(4, dtype=np.float32)
    noisy = lambda v, s: (v + s * e[3]) / np.linalg.norm(v + s * e[3])  # noqa: E731
    cp = {"clip_pair_id": "cp", "gap_s": 10.0, "license": "synthetic"}
    rows = []
    for f in (0, 5):  # clip A: persons 0 and 1 together, and a product
        rows += [_cand("cp", "a", 0, f, e[0]), _cand("cp", "a", 1, f, e[1]), _cand("cp", "a", 2, f, e[2], "product")]
    for f in (100, 105):  # clip B: person 0 again (distance 0), person 1 changed (cosine 0.8: distance 0.205)
        rows += [_cand("cp", "b", 0, f, e[0]), _cand("cp", "b", 1, f, noisy(e[1], 0.75))]
    rows += [_cand("cp", "b", 5, 100, e[2], "product")]  # seen once: not a track
    table = pa.Table.from_pylist(rows, schema=CANDIDATE)
    cfg = ProposalConfig(routing="thresholds", accept_threshold=0.9, reject_threshold=0.5, min_track_frames=2)
    pairs = propose_video([cp], table, cfg)
    by_kind = {}
    for p in pairs:
        by_kind.setdefault(p["kind"], []).append(p)
    labels = sorted((p["a_track_id"], p["b_track_id"], p["label"]) for p in by_kind["match"])
    assert labels == [(0, 0, "identical"), (1, 1, "pending_review")]
    hard = {(p["a_track_id"], p["b_track_id"]) for p in by_kind["hard_negative"]}
    assert hard == {(0, 1), (1, 0)} and all(p["label"] == "same_category_different_instance" for p in by_kind["hard_negative"])
    assert {(p["a_track_id"], p["b_track_id"]) for p in by_kind["unrelated"]} <= {(2, 0), (2, 1)}
    assert len({p["pair_id"] for p in pairs}) == len(pairs)
    assert pairs == propose_video([cp], table, cfg)
