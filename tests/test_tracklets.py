"""Tracklets never cross a shot boundary or a departure from the frame; public detections parse or fail by line."""
import numpy as np
import pytest

from reid_ray.records import Instances
from reid_ray.config import TrackingConfig
from reid_ray.tracking.associate import AssociationParams
from reid_ray.tracking.tracklets import build_tracklets, split_segments

SHAPE = (100, 200)
MAX_SHOT_FRAMES = 100
# Every rule off but those a test turns on; each value a test relies on is pinned here, not taken from the defaults.
PLAIN = dict(min_iou=0.3, min_similarity=0.5, appearance_weight=0.5, appearance_momentum=0.0, max_missed=2, min_tracklet_frames=1,
             border_px=2.0, split_similarity=None, max_overlap=0.0, split_at_occlusions=False, occluded_by="any", max_height_jump=None)


def _rules(**changes) -> TrackingConfig:
    return TrackingConfig(**{**PLAIN, **changes})


# Appearance-blind crossing tests: a wide centre-shift gate lets geometry alone decide, which is what swaps at a crossing.
WIDE = AssociationParams(min_iou=0.1, max_centre_shift=2.0)


def _one(box) -> Instances:
    return Instances.from_arrays([box], [0.9], ["person"]) if box is not None else Instances.empty()


def test_split_segments_even_pieces():
    assert split_segments([(0, 10), (10, 35)], 10) == [(0, 0, 10), (1, 10, 18), (1, 18, 27), (1, 27, 35)]


def test_tracklet_ends_at_cut_and_at_exit():
    still = [50, 20, 80, 90]
    at_edge = [0, 20, 30, 90]
    # frames 0-5 still; cut at 6; 6-9 at the left edge, 10-11 gone, 12-15 back at the edge
    boxes = [still] * 6 + [at_edge] * 4 + [None] * 2 + [at_edge] * 4
    dets = [_one(b) for b in boxes]
    tks = build_tracklets(dets, [(0, 6), (6, 16)], SHAPE, _rules(min_tracklet_frames=2), MAX_SHOT_FRAMES)
    assert [(t.shot_id, t.frames[0], t.frames[-1]) for t in tks] == [(0, 0, 5), (1, 6, 9), (1, 12, 15)]
    assert not tks[1].clean.any() and tks[0].clean.all()  # edge views are not clean


def test_missed_in_the_middle_continues():
    boxes = [[50, 20, 80, 90]] * 4 + [None] * 2 + [[52, 20, 82, 90]] * 4
    tks = build_tracklets([_one(b) for b in boxes], [(0, 10)], SHAPE, _rules(min_tracklet_frames=2), MAX_SHOT_FRAMES)
    assert len(tks) == 1 and len(tks[0]) == 8


def test_two_people_crossing_swap_boxes_only_inside_occluded_tracklets():
    """A walks right, B walks left; while their boxes overlap IoU tracking follows the wrong box. With
    ``split_at_occlusions`` the overlapped stretch is its own tracklet, so every clean tracklet is one person."""
    frames, truth = [], []
    for f in range(20):
        a = [20 + 8 * f, 20, 50 + 8 * f, 90]
        b = [170 - 8 * f, 20, 200 - 8 * f, 90] if f < 9 else [175 - 8 * f, 20, 205 - 8 * f, 90]
        frames.append(Instances.from_arrays([a, b], [0.9, 0.9], ["person", "person"]))
        truth.append([0, 1])
    def purity(tks):
        return [len({truth[f][i] for f, i in zip(t.frames, t.det_index)}) == 1 for t in tks]
    plain = build_tracklets(frames, [(0, 20)], SHAPE, _rules(), MAX_SHOT_FRAMES, association=WIDE)
    cut = build_tracklets(frames, [(0, 20)], SHAPE, _rules(split_at_occlusions=True), MAX_SHOT_FRAMES, association=WIDE)
    assert all(t.clean.all() or not t.clean.any() for t in cut)
    assert all(p for t, p in zip(cut, purity(cut)) if t.clean.all())
    assert not any(purity(plain)) and len(cut) > len(plain)  # without the cut, both tracklets hold both people
    assert sum(len(t) for t in cut) == sum(len(t) for t in plain) == 40  # nothing lost, only cut


def test_front_person_of_a_crossing_keeps_one_tracklet_and_the_one_behind_is_cut():
    """A (feet lower: nearer the camera) walks right in front of B. With ``occluded_by="nearer"`` only B's views are
    hidden from the tracker, so A stays one pure tracklet; its strict ``clean`` flags still mark the overlap,
    where B's pixels sit inside A's box."""
    frames, truth, embs = [], [], []
    for f in range(20):
        a = [20 + 7 * f, 20, 50 + 7 * f, 95]
        b = [170 - 7 * f, 15, 198 - 7 * f, 80]
        frames.append(Instances.from_arrays([a, b], [0.9, 0.9], ["person", "person"]))
        truth.append([0, 1])
        overlap = max(0, min(a[2], b[2]) - max(a[0], b[0])) > 0
        look_b = np.array([0.8, 0.6]) if overlap else np.array([0.0, 1.0])  # B's crop half shows A
        embs.append(np.stack([np.array([1.0, 0.0]), look_b]).astype(np.float32))
    gate = AssociationParams(min_iou=0.1, max_centre_shift=2.0, min_similarity=0.5)
    tks = build_tracklets(frames, [(0, 20)], SHAPE, _rules(split_at_occlusions=True, occluded_by="nearer"), MAX_SHOT_FRAMES,
                          embeddings=embs, association=gate)
    holders = [t for t in tks if any(truth[f][i] == 0 for f, i in zip(t.frames, t.det_index))]
    assert len(holders) == 1 and len(holders[0]) == 20
    assert {truth[f][i] for f, i in zip(holders[0].frames, holders[0].det_index)} == {0}
    assert 0 < holders[0].clean.sum() < 20  # overlapped views excluded from distances all the same
    behind = build_tracklets(frames, [(0, 20)], SHAPE, _rules(split_at_occlusions=True, occluded_by="any"), MAX_SHOT_FRAMES,
                             embeddings=embs, association=gate)
    assert len(behind) > len(tks)  # with any overlap counted, A's track is cut too


def test_one_walking_out_and_another_walking_in_at_the_same_edge_are_cut_apart():
    """A leaves through the right edge as B enters there: no gap, so the exit rule cannot see it and IoU links
    them. B then walks slowly behind C, who stands in front. The edge stretch is a tracklet of its own, so the
    hidden stretch after it holds B alone (without the edge state it would hold A's exit as well)."""
    frames, who = [], []
    for f in range(19):
        boxes, names = [], []
        if f < 8:  # A walks right and out (at the edge from frame 5)
            boxes.append([120 + 10 * f, 20, min(150 + 10 * f, 199), 90]); names.append("A")
        else:  # B comes in at the edge, then walks left behind C
            x = 170 - 3 * (f - 8)
            boxes.append([x, 25, min(x + 30, 199), 95]); names.append("B")
            boxes.append([140, 30, 175, 98]); names.append("C")
        frames.append(Instances.from_arrays(boxes, [0.9] * len(boxes), ["person"] * len(boxes)))
        who.append(names)
    tks = build_tracklets(frames, [(0, 19)], SHAPE, _rules(split_at_occlusions=True, occluded_by="nearer"), MAX_SHOT_FRAMES,
                          association=WIDE)
    at_edge = lambda t: all(b[2] >= 199 - 2 for b in t.boxes)  # noqa: E731
    linked = [t for t in tks if {"A", "B"} <= {who[f][i] for f, i in zip(t.frames, t.det_index)}]
    assert linked and all(at_edge(t) for t in linked)  # the tracker did join them, only at the edge
    for t in tks:
        if not at_edge(t):
            assert len({who[f][i] for f, i in zip(t.frames, t.det_index)}) == 1
    assert sum(len(t) for t in tks) == sum(len(w) for w in who)


def test_low_score_boxes_only_continue_tracks():
    """ByteTrack's second association: a person whose score dips (partly hidden) keeps one tracklet through the
    dip; a low-score box on its own (a false detection) starts nothing and hides nobody."""
    person = lambda f: [40 + 2 * f, 20, 70 + 2 * f, 90]  # noqa: E731
    stray = [120, 20, 150, 90]
    frames, secondary = [], []
    for f in range(12):
        dips = 4 <= f < 8  # frames 4-7: longer than max_missed, so without the low boxes the track would break
        boxes = [person(f), stray] if f in (2, 9) else [person(f)]
        scores = [0.2 if dips else 0.9] + ([0.2] if f in (2, 9) else [])
        frames.append(Instances.from_arrays(boxes, scores, ["person"] * len(boxes)))
        secondary.append(np.array(scores) < 0.35)
    rules = _rules(split_at_occlusions=True)
    two_stage = build_tracklets(frames, [(0, 12)], SHAPE, rules, MAX_SHOT_FRAMES, secondary=secondary)
    assert [(t.frames[0], t.frames[-1], len(t)) for t in two_stage] == [(0, 11, 12)]
    assert two_stage[0].clean.all()  # the unclaimed stray box neither became a tracklet nor hid anyone
    # Without the second association, every box counts alike: the stray boxes become tracklets of their own.
    one_stage = build_tracklets(frames, [(0, 12)], SHAPE, rules, MAX_SHOT_FRAMES)
    assert len(one_stage) == 3


def test_low_score_box_never_takes_a_track_a_confident_box_took():
    """The confident box is matched first; the low-score duplicate over it is left unclaimed."""
    track = [Instances.from_arrays([[40, 20, 70, 90]], [0.9], ["person"])] * 3
    dup = Instances.from_arrays([[40, 20, 70, 90], [42, 22, 71, 88]], [0.9, 0.3], ["person", "person"])
    frames = track + [dup] + track
    secondary = [f.scores < 0.35 for f in frames]
    tks = build_tracklets(frames, [(0, 7)], SHAPE, _rules(), MAX_SHOT_FRAMES, secondary=secondary)
    assert len(tks) == 1 and len(tks[0]) == 7 and (tks[0].det_index == 0).all()


def test_box_that_moves_onto_a_taller_person_is_cut_at_the_height_jump():
    """One box for two overlapping people: the detector's box slides from A (height 70) onto B (height 95, nearer)
    with no gap and no second box, so IoU tracking links them. ``max_height_jump`` cuts there; A's own small frame-to-
    frame changes (3 %) are not cut."""
    a = [[40 + 2 * f, 20, 70 + 2 * f, 90 + (f % 2) * 2] for f in range(8)]
    b = [[56 + 2 * f, 10, 88 + 2 * f, 105] for f in range(8, 16)]
    frames = [Instances.from_arrays([box], [0.9], ["person"]) for box in a + b]
    assert len(build_tracklets(frames, [(0, 16)], SHAPE, _rules(), MAX_SHOT_FRAMES)) == 1
    cut = build_tracklets(frames, [(0, 16)], SHAPE, _rules(max_height_jump=1.15), MAX_SHOT_FRAMES)
    assert [(t.frames[0], t.frames[-1]) for t in cut] == [(0, 7), (8, 15)]
