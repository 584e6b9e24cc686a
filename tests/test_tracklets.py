"""Tracklets never cross a shot boundary or a departure from the frame; public detections parse or fail by line."""
import numpy as np
import pytest

from reid_ray.records import Instances
from reid_ray.tracking.associate import AssociationParams
from reid_ray.tracking.public_detections import DetectionsFormatError, read_public_detections
from reid_ray.tracking.tracklets import build_tracklets, split_segments

SHAPE = (100, 200)


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
    tks = build_tracklets(dets, [(0, 6), (6, 16)], SHAPE, AssociationParams(), max_missed=2, min_frames=2, max_shot_frames=100)
    assert [(t.shot_id, t.frames[0], t.frames[-1]) for t in tks] == [(0, 0, 5), (1, 6, 9), (1, 12, 15)]
    assert not tks[1].clean.any() and tks[0].clean.all()  # edge views are not clean


def test_missed_in_the_middle_continues():
    boxes = [[50, 20, 80, 90]] * 4 + [None] * 2 + [[52, 20, 82, 90]] * 4
    tks = build_tracklets([_one(b) for b in boxes], [(0, 10)], SHAPE, AssociationParams(), 2, 2, 100)
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
    # Appearance-blind association: geometry alone decides, which is what swaps at a crossing.
    args = ([(0, 20)], SHAPE, AssociationParams(min_iou=0.1, max_centre_shift=2.0), 2, 1, 100)
    plain = build_tracklets(frames, *args)
    cut = build_tracklets(frames, *args, split_at_occlusions=True)
    assert all(t.clean.all() or not t.clean.any() for t in cut)
    assert all(p for t, p in zip(cut, purity(cut)) if t.clean.all())
    assert not any(purity(plain)) and len(cut) > len(plain)  # without the cut, both tracklets hold both people
    assert sum(len(t) for t in cut) == sum(len(t) for t in plain) == 40  # nothing lost, only cut


def test_public_detections(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("1,-1,11,21,30,40,0.8,-1,-1,-1\n\n3,-1,1,1,10,10,0.5\n")
    dets = read_public_detections(p, 4)
    assert [len(d) for d in dets] == [1, 0, 1, 0]
    np.testing.assert_allclose(dets[0].boxes[0], [10, 20, 40, 60])  # 1-based -> 0-based pixels
    p.write_text("1,-1,11,21,30,40,0.8\n2,-1,11,21,-3,40,0.8\n")
    with pytest.raises(DetectionsFormatError, match=r"v.txt:2: box width"):
        read_public_detections(p, 4)
    p.write_text("9,-1,11,21,30,40,0.8\n")
    with pytest.raises(DetectionsFormatError, match=r"v.txt:1: frame 9 is past"):
        read_public_detections(p, 4)
