"""Short gaps of an identity are filled linearly inside a shot, never across a cut, never beyond the limit."""
import numpy as np

from reid_ray.tracking.interpolate import fill_gaps, shot_index


def test_fills_short_gaps_inside_a_shot_only():
    frames = np.array([0, 1, 4, 5, 9, 10, 20])  # gaps: 2-3 (2 frames), 6-8 (3 frames, across the cut at 7), 11-19 (9)
    boxes = np.array([[0, 0, 10, 10, s] for s in (0.9, 0.9, 0.6, 0.6, 0.8, 0.8, 0.8)], np.float32)
    boxes[2:4, :4] += 30  # moved 30 px right and down between frames 1 and 4
    shots = shot_index([(0, 7), (7, 30)], 30)
    f, v = fill_gaps(frames, boxes, shots, max_gap=3)
    assert f.tolist() == [2, 3]
    np.testing.assert_allclose(v[:, :4], [[10, 10, 20, 20], [20, 20, 30, 30]])  # a third and two thirds of the way
    np.testing.assert_allclose(v[:, 4], [0.8, 0.7], rtol=1e-6)
    f, _ = fill_gaps(frames, boxes, shots, max_gap=9)
    assert f.tolist() == [2, 3, *range(11, 20)]  # the 9-frame gap now; still nothing across the cut
    assert not set(f) & set(frames.tolist())
    f, v = fill_gaps(frames, boxes, shots, max_gap=0)
    assert len(f) == 0 and v.shape == (0, 5)


def test_shot_index_marks_uncovered_frames():
    assert shot_index([(0, 2), (3, 5)], 6).tolist() == [0, 0, -1, 1, 1, -1]
