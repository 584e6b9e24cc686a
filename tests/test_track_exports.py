"""Identity exports (reid_ray.tracking.exports): each format written, then read back with its ecosystem's reader and
compared with what was written in.

Readers: MOTChallenge with the project's own ``read_mot``; COCO video (YouTube-VIS) JSON with ``json`` and
pycocotools (RLE decoding, and the frames flattened into pycocotools' ``COCO`` API); CVAT for video 1.1 XML with the
standard library's ElementTree, turned into CVAT's shape points the way CVAT's own importer does, masks decoded with
``cvat_sdk.masks.decode_mask`` (CVAT's SDK). Datumaro, the reader CVAT itself builds on, does not install cleanly
beside this project (datumaro 1.13 pins pandas~=2.3, pyarrow and opencv below the versions here), and its YOLO
importer refuses a sixth column (the track id); YOLO labels are parsed as plain text, as Ultralytics' are. (In an
environment of its own, Datumaro 1.13.12's CVAT importer read the box tracks of ``_tracks(with_masks=False)``
back as written, and failed on masks inside tracks, as it does on CVAT's own video exports with masks.)
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from reid_ray.mot_format import read_mot
from reid_ray.records import Instances, mask_to_rle
from reid_ray.tracking.exports import (
    COCO_VIS_FILE,
    CVAT_FILE,
    MOT_FILE,
    TRACK_FORMATS,
    WRITERS,
    YOLO_DIR,
    VideoTracks,
    cvat_mask_rle,
    write_track_exports,
)
from reid_ray.tracking.tracklets import Tracklet
from reid_ray.video.decode import VideoInfo

W, H, N_FRAMES = 40, 30, 10
# identity -> (class, frames). 1 leaves at frame 3 and comes back; 2 is away at frame 7 (no one is there) and stays
# to the last frame; 3 is another class.
PLAN = {1: ("person", [0, 1, 2, 4, 5]), 2: ("person", [1, 2, 3, 4, 5, 6, 8, 9]), 3: ("car", [2, 3])}
NO_MASK = {(1, 5)}  # a box with no mask (as the job's interpolated boxes)


def _blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random rectangle-ish blob with a few holes, never empty."""
    m = np.zeros((h, w), bool)
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    m[y0:y0 + rng.integers(2, h // 2), x0:x0 + rng.integers(2, w // 2)] = True
    m &= rng.random((h, w)) > 0.2
    m[y0, x0] = True
    return m


def _tracks(with_masks: bool = True, seed: int = 0) -> tuple[VideoTracks, dict]:
    """Tracks whose masks are at half the video's size (as the segmenter's are at model size), and the expected
    rows: (frame, identity) -> (class, x1 y1 x2 y2, score, full-size mask or None)."""
    rng = np.random.default_rng(seed)
    rows, expected = [], {}
    for ident, (cls, frames) in PLAN.items():
        for f in frames:
            x1, y1 = rng.uniform(0, W / 2), rng.uniform(0, H / 2)
            box = np.array([x1, y1, x1 + rng.uniform(2, W / 2), y1 + rng.uniform(2, H / 2)])
            small = _blob(rng, H // 2, W // 2) if with_masks and (ident, f) not in NO_MASK else None
            full = None if small is None else np.kron(small, np.ones((2, 2), bool))  # nearest-neighbour upscaling
            score = float(rng.uniform(0.3, 1))
            rows.append((f, ident, box, score, cls, None if small is None else mask_to_rle(small)))
            expected[(f, ident)] = (cls, box, score, full)
    rng.shuffle(rows)  # any input order
    f, i, b, s, c, m = zip(*rows)
    return VideoTracks("clip/α", W, H, 25.0, N_FRAMES, f, i, b, s, c, m if with_masks else None), expected


# ------------------------------------------------------------------------------------------------ readers


def _read_coco_vis(path: Path) -> tuple[dict, dict]:
    """(the JSON, (frame, identity) -> (class, x1 y1 x2 y2, mask or None)) from YouTube-VIS per-frame lists."""
    d = json.loads(path.read_text())
    names = {c["id"]: c["name"] for c in d["categories"]}
    rows = {}
    for a in d["annotations"]:
        for f, (seg, bbox) in enumerate(zip(a["segmentations"], a["bboxes"])):
            if bbox is None:
                assert seg is None and a["areas"][f] is None
                continue
            x, y, w, h = bbox
            mask = None if seg is None else mask_utils.decode(seg).astype(bool)
            rows[(f, a["id"])] = (names[a["category_id"]], np.array([x, y, x + w, y + h]), mask)
    return d, rows


def _as_coco_frames(d: dict) -> COCO:
    """The video as COCO images, one per frame, loaded by pycocotools' own API."""
    video = d["videos"][0]
    images = [{"id": f + 1, "file_name": name, "width": video["width"], "height": video["height"]}
              for f, name in enumerate(video["file_names"])]
    anns = []
    for a in d["annotations"]:
        for f, bbox in enumerate(a["bboxes"]):
            if bbox is not None:
                seg = a["segmentations"][f]
                x, y, w, h = bbox
                anns.append({"id": len(anns) + 1, "image_id": f + 1, "category_id": a["category_id"], "iscrowd": 0,
                             "bbox": bbox, "area": a["areas"][f], "track_id": a["id"],
                             "segmentation": seg if seg is not None else [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": d["categories"]}
    coco.createIndex()
    return coco


def _read_yolo(folder: Path, width: int, height: int) -> dict:
    """(frame, identity) -> (class, x1 y1 x2 y2) from ``labels/<frame>.txt`` rows ``class cx cy w h id``."""
    names = [line for line in (folder / "classes.txt").read_text().splitlines()]
    data = yaml.safe_load((folder / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(names)) and data["nc"] == len(names)
    rows = {}
    for path in sorted((folder / "labels").glob("*.txt")):
        for line in path.read_text().splitlines():
            c, cx, cy, w, h, ident = line.split()
            cx, cy, w, h = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
            key = (int(path.stem), int(ident))
            assert key not in rows
            rows[key] = (names[int(c)], np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
    return rows


def _read_cvat(path: Path) -> tuple[ET.Element, dict, set, dict]:
    """(root, (frame, track id) -> (label, x1 y1 x2 y2) of boxes inside the frame, {(track id, frame)} of outside
    keyframes, (frame, group id) -> mask) of CVAT for video 1.1."""
    from cvat_sdk.masks import decode_mask

    root = ET.parse(path).getroot()
    task = root.find("meta/task")
    width, height = int(task.find("original_size/width").text), int(task.find("original_size/height").text)
    boxes, outside, masks = {}, set(), {}
    for track in root.iter("track"):
        tid, label = int(track.get("id")), track.get("label")
        for box in track.iter("box"):
            f = int(box.get("frame"))
            if box.get("outside") == "1":
                outside.add((tid, f))
            else:
                boxes[(f, tid)] = (label, np.array([float(box.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")]))
        for m in track.iter("mask"):
            if m.get("outside") == "1":
                continue
            left, top, w, h = (int(m.get(k)) for k in ("left", "top", "width", "height"))
            # the points CVAT's importer builds from these attributes: runs, then left, top, right, bottom (inclusive)
            points = [*map(int, m.get("rle").split(",")), left, top, left + w - 1, top + h - 1]
            masks[(int(m.get("frame")), int(track.get("group_id")))] = decode_mask(points, image_width=width, image_height=height)
    return root, boxes, outside, masks


def _close(a: np.ndarray, b: np.ndarray, tol: float = 0.006) -> bool:
    return bool(np.allclose(a, b, atol=tol))


# ------------------------------------------------------------------------------------------------ formats


def test_every_format_has_a_writer():
    assert set(WRITERS) == set(TRACK_FORMATS) == {"mot", "coco_vis", "yolo", "cvat"}


def test_mot_reads_back_with_the_projects_reader(tmp_path):
    tracks, expected = _tracks()
    write_track_exports(tmp_path, ["mot"], tracks)
    mot = read_mot(tmp_path / MOT_FILE)
    assert len(mot) == len(expected) and list(mot[["frame", "id"]].itertuples(index=False)) == sorted(
        (f + 1, i) for f, i in expected)  # ordered by frame, then id
    for r in mot.itertuples(index=False):
        _, box, score, _ = expected[(r.frame - 1, r.id)]
        assert _close(np.array([r.x - 1, r.y - 1, r.x - 1 + r.w, r.y - 1 + r.h]), box, 0.011) and abs(r.conf - score) < 1e-4


def test_coco_vis_masks_decode_with_pycocotools_at_the_videos_size(tmp_path):
    tracks, expected = _tracks()
    write_track_exports(tmp_path, ["coco_vis"], tracks)
    d, rows = _read_coco_vis(tmp_path / COCO_VIS_FILE)
    video = d["videos"][0]
    assert (video["width"], video["height"], video["length"], len(video["file_names"])) == (W, H, N_FRAMES, N_FRAMES)
    assert video["name"] == "clip/α" and video["file_names"][3] == "000003.jpg"
    assert {c["name"] for c in d["categories"]} == {"person", "car"}
    assert {a["id"] for a in d["annotations"]} == set(PLAN)  # one annotation per identity, its id the identity
    assert all(len(a[k]) == N_FRAMES for a in d["annotations"] for k in ("segmentations", "bboxes", "areas"))
    assert rows.keys() == expected.keys()
    for key, (cls, box, mask) in rows.items():
        want_cls, want_box, _, want_mask = expected[key]
        assert cls == want_cls and _close(box, want_box, 0.011)  # x, y, w, h to 0.01 each
        if want_mask is None:
            assert mask is None, key
        else:
            assert mask.shape == (H, W) and np.array_equal(mask, want_mask), key
    coco = _as_coco_frames(d)  # pycocotools' own index and mask decoding over the same annotations
    for f in range(N_FRAMES):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[f + 1]))
        assert sorted(a["track_id"] for a in anns) == sorted(i for g, i in expected if g == f)
        for a in anns:
            want_mask = expected[(f, a["track_id"])][3]
            if want_mask is not None:
                assert np.array_equal(coco.annToMask(a).astype(bool), want_mask) and a["area"] == want_mask.sum()


def test_coco_vis_without_masks_has_boxes_and_null_segmentations(tmp_path):
    tracks, expected = _tracks(with_masks=False)
    write_track_exports(tmp_path, ["coco_vis"], tracks)
    d, rows = _read_coco_vis(tmp_path / COCO_VIS_FILE)
    assert all(s is None for a in d["annotations"] for s in a["segmentations"])
    assert rows.keys() == expected.keys() and all(_close(rows[k][1], expected[k][1], 0.011) for k in rows)
    for a in d["annotations"]:
        for f, (bbox, area) in enumerate(zip(a["bboxes"], a["areas"])):
            assert (bbox is None) == (area is None)
            if area is not None:  # the box's area where there is no mask
                x1, y1, x2, y2 = expected[(f, a["id"])][1]
                assert abs(area - (x2 - x1) * (y2 - y1)) < 0.006


def test_yolo_labels_carry_class_box_and_track_id(tmp_path):
    tracks, expected = _tracks()
    write_track_exports(tmp_path, ["yolo"], tracks)
    rows = _read_yolo(tmp_path / YOLO_DIR, W, H)
    assert rows.keys() == expected.keys()
    for key, (cls, box) in rows.items():
        assert cls == expected[key][0] and _close(box, expected[key][1], 1e-4), key
    # frames with nobody in them have no file (YOLO: an image without labels is background)
    assert sorted(p.stem for p in (tmp_path / YOLO_DIR / "labels").iterdir()) == [f"{f:06d}" for f in range(N_FRAMES) if f != 7]


def test_cvat_video_tracks_boxes_outside_and_masks(tmp_path):
    tracks, expected = _tracks()
    write_track_exports(tmp_path, ["cvat"], tracks)
    root, boxes, outside, masks = _read_cvat(tmp_path / CVAT_FILE)
    assert root.tag == "annotations" and root.find("version").text == "1.1"
    task = root.find("meta/task")
    assert (task.find("mode").text, task.find("size").text, task.find("stop_frame").text) == ("interpolation", "10", "9")
    assert {e.text for e in task.iter("name")} >= {"clip/α", "person", "car"}
    assert boxes.keys() == expected.keys()  # identity box tracks: the track id is the identity
    for key, (label, box) in boxes.items():
        assert label == expected[key][0] and _close(box, expected[key][1]), key
    # an outside keyframe on the frame after each run of an identity's frames, none past the video's end
    want_outside = {(i, f + 1) for f, i in expected if (f + 1, i) not in expected and f + 1 < N_FRAMES}
    assert outside == want_outside == {(1, 3), (1, 6), (2, 7), (3, 4)}
    assert masks.keys() == {k for k, v in expected.items() if v[3] is not None}
    for key, mask in masks.items():
        assert np.array_equal(mask, expected[key][3]), key
    ids = [int(t.get("id")) for t in root.iter("track")]
    assert len(ids) == len(set(ids)) == len(PLAN) + len(masks)  # one track per identity, one per mask


def test_cvat_mask_encoding_equals_cvat_sdks():
    from cvat_sdk.masks import encode_mask

    rng = np.random.default_rng(3)
    for k in range(30):
        mask = _blob(rng, 17, 23)
        if k % 3 == 0:  # the tight box's first pixel set: CVAT's runs then start with 0
            ys, xs = np.nonzero(mask)
            mask[ys.min(), xs.min()] = True
        runs, left, top, w, h = cvat_mask_rle(mask)
        assert [*runs, left, top, left + w - 1, top + h - 1] == encode_mask(mask)
    assert cvat_mask_rle(np.zeros((4, 5), bool)) is None


def test_formats_together_agree_and_rewrites_are_idempotent(tmp_path):
    tracks, expected = _tracks()
    written = write_track_exports(tmp_path, ["yolo", "cvat", "mot", "coco_vis", "yolo"], tracks)
    assert written == {"yolo": YOLO_DIR, "cvat": CVAT_FILE, "mot": MOT_FILE, "coco_vis": COCO_VIS_FILE}

    def snapshot() -> dict:
        return {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    first = snapshot()
    write_track_exports(tmp_path, list(TRACK_FORMATS), tracks)
    assert snapshot() == first  # same input, same bytes
    assert not [p for p in first if p.name.startswith(".")]  # no temporary file left behind
    # Fewer rows (frame 3 dropped): no stale YOLO frame, the other files rewritten whole.
    keep = tracks.frames != 3
    fewer = VideoTracks(tracks.video_id, W, H, tracks.fps, N_FRAMES, tracks.frames[keep], tracks.identities[keep],
                        tracks.boxes[keep], tracks.scores[keep], tracks.categories[keep],
                        tuple(m for m, k in zip(tracks.masks, keep) if k))
    write_track_exports(tmp_path, list(TRACK_FORMATS), fewer)
    assert not (tmp_path / YOLO_DIR / "labels" / "000003.txt").exists()
    assert not any(f == 3 for f, _ in _read_yolo(tmp_path / YOLO_DIR, W, H))
    assert not any(f == 3 for f, _ in _read_cvat(tmp_path / CVAT_FILE)[1])
    assert 4 not in read_mot(tmp_path / MOT_FILE)["frame"].values  # MOTChallenge frames are 1-based


def test_tracks_refuse_an_identity_twice_in_a_frame_and_frames_past_the_end():
    with pytest.raises(ValueError, match="twice"):
        VideoTracks("v", W, H, 25.0, N_FRAMES, [2, 2], [1, 1], np.zeros((2, 4)), [1, 1])
    with pytest.raises(ValueError, match="frames"):
        VideoTracks("v", W, H, 25.0, N_FRAMES, [N_FRAMES], [1], np.zeros((1, 4)), [1])


def test_from_tracklets_takes_the_segmenters_masks_and_the_filled_boxes():
    """The job's adapter: tracklets' detections with the segmenter's RLE from ``Instances.extra`` (model size, half
    the video here), and the interpolated boxes without masks."""
    rng = np.random.default_rng(1)
    small = [_blob(rng, H // 2, W // 2) for _ in range(3)]
    detections = [Instances.empty() for _ in range(N_FRAMES)]
    for f, m in zip((0, 1, 2), small):
        inst = Instances.from_arrays([[0, 0, 5, 5], [1, 1, 9, 9]], [0.9, 0.8], ["person", "person"])
        rles = np.empty(2, object)
        rles[:] = [mask_to_rle(np.zeros_like(m))["counts"], mask_to_rle(m)["counts"]]  # as the stage keeps them
        detections[f] = Instances(inst.boxes, inst.scores, inst.categories,
                                  extra={"mask_rle": rles, "mask_size": np.tile(m.shape, (2, 1))})
    tk = Tracklet(7, 0, np.array([0, 1, 2]), np.tile([1.0, 1, 9, 9], (3, 1)).astype(np.float32),
                  np.array([0.8, 0.7, 0.6], np.float32), np.array([1, 1, 1]), np.ones(3, bool))
    filled = [(4, np.array([5, 6]), np.array([[2, 2, 8, 8, 0.5], [3, 3, 9, 9, 0.4]], np.float32))]
    info = VideoInfo(fps=12.5, n_frames=N_FRAMES, width=W, height=H, duration_s=0.8)
    tracks = VideoTracks.from_tracklets("v", info, [tk], np.array([4]), filled, detections)
    assert list(tracks.frames) == [0, 1, 2, 5, 6] and set(tracks.identities) == {4} and tracks.fps == 12.5
    assert tracks.masks[3] is None and tracks.masks[4] is None
    full = tracks.at_video_size()
    for k, m in enumerate(small):
        rle = {"size": full.masks[k]["size"], "counts": full.masks[k]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), np.kron(m, np.ones((2, 2), bool)))
    assert VideoTracks.from_tracklets("v", info, [tk], np.array([4]), filled).masks is None  # boxes only


def test_formats_flag_overrides_the_profile():
    from test_job_inputs import load_job

    from reid_ray.config import ConfigError, ReidJobConfig, load_config

    job = load_job("reid_videos")
    args = job.parse_args(["--videos", "v", "--formats", "yolo, mot,cvat", "--set", "outputs.track_formats=[coco_vis]"])
    cfg = load_config("configs/reid_local.yaml", job.overrides(args), ReidJobConfig)
    assert cfg.outputs.track_formats == ["mot", "yolo", "cvat"]  # the flag wins; one order whatever the listing
    assert load_config("configs/reid_local.yaml", [], ReidJobConfig).outputs.track_formats == ["mot"]
    with pytest.raises(ConfigError, match="track_formats"):
        bad = job.parse_args(["--videos", "v", "--formats", "coco"])
        load_config("configs/reid_local.yaml", job.overrides(bad), ReidJobConfig)


# ------------------------------------------------------------------------------------------------ the job


def assert_exports_match_mot(video_dir: Path, width: int, height: int) -> None:
    """The job's own outputs (tests/test_reid_job.py's public-detections run writes every format): each format read
    back holds the rows of identities.txt, identity for identity and box for box."""
    report = json.loads((video_dir / "report.json").read_text())
    assert report["track_exports"] == {"mot": MOT_FILE, "coco_vis": COCO_VIS_FILE, "yolo": YOLO_DIR, "cvat": CVAT_FILE}
    mot = read_mot(video_dir / MOT_FILE)
    assert len(mot) > 20 and mot["id"].nunique() >= 2
    want = {(int(r.frame) - 1, int(r.id)): np.array([r.x - 1, r.y - 1, r.x - 1 + r.w, r.y - 1 + r.h]) for r in mot.itertuples()}
    coco = _read_coco_vis(video_dir / COCO_VIS_FILE)[1]
    _, cvat, outside, masks = _read_cvat(video_dir / CVAT_FILE)
    for name, rows in (("coco_vis", coco), ("yolo", _read_yolo(video_dir / YOLO_DIR, width, height)), ("cvat", cvat)):
        assert rows.keys() == want.keys(), name
        assert all(_close(rows[k][1], want[k], 0.011) for k in want), name
        assert {v[0] for v in rows.values()} == {"person"}, name
    assert all(v[2] is None for v in coco.values()) and not masks  # public detections: boxes only
    n = report["counts"]["n_frames"]  # CVAT: each run of an identity's frames closed by an outside keyframe
    assert outside == {(i, f + 1) for f, i in want if (f + 1, i) not in want and f + 1 < n} and outside


def assert_masks_exported(video_dir: Path, width: int, height: int) -> None:
    """A run of a profile with masks (tests/test_gpu_profiles.py, tiny SAM3): every identity row of identities.txt
    has its mask in the COCO video JSON, inside its box, and the same mask in the CVAT XML."""
    mot = read_mot(video_dir / MOT_FILE)
    want = {(int(r.frame) - 1, int(r.id)): np.array([r.x - 1, r.y - 1, r.x - 1 + r.w, r.y - 1 + r.h]) for r in mot.itertuples()}
    coco = _read_coco_vis(video_dir / COCO_VIS_FILE)[1]
    _, cvat, _, cvat_masks = _read_cvat(video_dir / CVAT_FILE)
    assert len(want) and coco.keys() == cvat.keys() == want.keys() == cvat_masks.keys()
    for key, (_, box, mask) in coco.items():
        assert mask is not None and mask.shape == (height, width) and mask.any(), key
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = want[key]  # SAM3's box is its mask's: the mask lies inside it
        assert xs.min() >= x1 - 1 and ys.min() >= y1 - 1 and xs.max() <= x2 + 1 and ys.max() <= y2 + 1, key
        assert np.array_equal(mask, cvat_masks[key]), key
