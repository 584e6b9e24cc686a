"""MOTChallenge files (reid_ray.mot_format): tracks and public detections read with the line at fault named, the
job's identities written so that both readers read the same boxes back."""
from __future__ import annotations

import math

import numpy as np
import pytest

from reid_ray.mot_format import (
    MOT_COLUMNS,
    DetectionsFormatError,
    MotFormatError,
    gt_to_public_detections,
    read_mot,
    read_public_detections,
    to_mot,
    write_mot,
)
from reid_ray.tracking.exports import VideoTracks

# ----------------------------------------------------------------------------------------------- tracks


def test_read_mot_takes_6_to_10_columns_and_skips_blank_and_comment_lines(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("# comment\n1,1,10,20,30,40\n\n2,1,11,20,30,40,0.9,1,0.5\n3, 2, 1, 2, 3, 4, 1, -1, -1, -1\n")
    df = read_mot(p)
    assert list(df.columns) == list(MOT_COLUMNS) and len(df) == 3
    assert df["frame"].tolist() == [1, 2, 3] and df["id"].dtype == np.int64
    assert df["conf"].tolist() == [1.0, 0.9, 1.0]  # no conf column: counted
    assert math.isnan(df["visibility"][0]) and df["visibility"][1] == 0.5
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert len(read_mot(empty)) == 0


@pytest.mark.parametrize(
    "bad, message",
    [
        ("1,1,10,20,30\n", "expected 6 to 10"),
        ("1,1,10,20,30,40,1,1,1,1,1\n", "expected 6 to 10"),
        ("1,1,x,20,30,40\n", "not a number"),
        ("0,1,10,20,30,40\n", "1-based"),
        ("1,1.5,10,20,30,40\n", "id must be an integer"),
        ("1,1,10,20,-3,40\n", "negative"),
        ("1,7,5,5,1,1\n", "id 7 appears twice in frame 1 \\(first on line 1\\)"),
    ],
)
def test_read_mot_names_the_bad_line(tmp_path, bad, message):
    p = tmp_path / "bad.txt"
    p.write_text("1,7,0,0,1,1\n\n" + bad)  # the bad row is on line 3 (line numbers count blank lines)
    with pytest.raises(MotFormatError, match=message) as err:
        read_mot(p)
    assert f"{p}:3:" in str(err.value)


# ----------------------------------------------------------------------------------------------- public detections


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


# ----------------------------------------------------------------------------------------------- writing


def test_written_identities_read_back_as_their_boxes(tmp_path):
    """0-based frames and pixels in, 1-based rows out; read_mot and read_public_detections give the boxes back."""
    tracks = VideoTracks("v", 64, 48, 25.0, 3, np.array([0, 2, 0]), np.array([1, 1, 2]),
                         np.array([[10, 20, 40, 60], [11, 21, 41, 61], [0, 0, 5.5, 8.25]]), np.array([0.9, 0.8, 0.5]))
    assert to_mot(tracks).splitlines()[0] == "1,1,11.00,21.00,30.00,40.00,0.9000,-1,-1,-1"
    path = write_mot(tracks, tmp_path / "out" / "identities.txt")
    df = read_mot(path)
    assert list(df[["frame", "id"]].itertuples(index=False, name=None)) == [(1, 1), (1, 2), (3, 1)]
    np.testing.assert_allclose(df[["x", "y", "w", "h"]].to_numpy()[2], [12, 22, 30, 40])
    dets = read_public_detections(path, 3)
    assert [len(d) for d in dets] == [2, 0, 1]
    np.testing.assert_allclose(dets[0].boxes, [[10, 20, 40, 60], [0, 0, 5.5, 8.25]])
    np.testing.assert_allclose(dets[0].scores, [0.9, 0.5])


def test_gt_to_public_detections_drops_ids_and_keeps_values(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text("1,7,10,20,30,40,1,1,0.5\n2,9,11.5,20,30,40,1,1,1\n")
    gt_to_public_detections(gt, tmp_path / "det.txt")
    assert (tmp_path / "det.txt").read_text() == "1,-1,10,20,30,40,1,-1,-1,-1\n2,-1,11.5,20,30,40,1,-1,-1,-1\n"
    assert [len(d) for d in read_public_detections(tmp_path / "det.txt", 2)] == [1, 1]
