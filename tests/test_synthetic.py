"""Synthetic footage: exact, deterministic ground truth, and people a real detector (YOLOX-nano) finds."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from reid_ray.records import box_iou, rle_to_mask
from reid_ray.video.synthetic import (
    SyntheticSpec,
    SyntheticVideo,
    generate,
    generate_corpus,
    load_ground_truth,
    render,
)

YOLOX_NANO = Path(__file__).resolve().parents[2] / "shared" / "models" / "yolox_nano_coco.onnx"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> SyntheticVideo:
    """18 s with a cut every 6 s: three cameras, crossings, occluders, exits and re-entries."""
    spec = SyntheticSpec(video_id="syn_cuts", n_frames=180, cut_every_s=6.0, seed=0)
    return generate(spec, tmp_path_factory.mktemp("synthetic"))


def _read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


# ---------------------------------------------------------------------------------- files and format


def test_files_and_mp4_decodes_every_frame(video: SyntheticVideo) -> None:
    assert video.video_path.exists() and video.gt_path.exists() and video.masks_path.exists() and video.meta_path.exists()
    frames = _read_frames(video.video_path)
    assert len(frames) == video.spec.n_frames
    assert frames[0].shape == (video.spec.height, video.spec.width, 3)


def test_gt_txt_is_motchallenge(video: SyntheticVideo) -> None:
    rows = np.loadtxt(video.gt_path, delimiter=",", ndmin=2)
    assert rows.shape[1] == 9
    assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= video.spec.n_frames  # 1-based frames
    assert set(rows[:, 1].astype(int)) <= set(range(1, video.spec.n_people + 1))  # 1-based identities
    assert (rows[:, 6] == 1).all() and (rows[:, 7] == 1).all()
    assert ((rows[:, 8] > 0) & (rows[:, 8] <= 1)).all()
    assert (rows[:, 4] > 0).all() and (rows[:, 5] > 0).all()


def test_masks_agree_with_boxes(video: SyntheticVideo) -> None:
    gt_rows = {(int(r[0]) - 1, int(r[1])): r for r in np.loadtxt(video.gt_path, delimiter=",", ndmin=2)}
    lines = video.masks_path.read_text().splitlines()
    assert len(lines) == len(gt_rows)
    for line in lines[::7]:
        d = json.loads(line)
        mask = rle_to_mask(d["rle"])
        assert mask.shape == (video.spec.height, video.spec.width)
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        r = gt_rows[(d["frame"], d["id"])]
        assert (x1, y1, x2 - x1, y2 - y1) == tuple(r[2:6].astype(int))
        assert [x1, y1, x2, y2] == d["visible_box"]
        fx1, fy1, fx2, fy2 = d["full_box"]  # the amodal box holds the visible part
        assert fx1 <= x1 and fy1 <= y1 and fx2 >= x2 and fy2 >= y2


def test_load_ground_truth_matches_memory(video: SyntheticVideo) -> None:
    loaded = load_ground_truth(video.gt_dir.parent)
    assert loaded.n_frames == video.spec.n_frames and loaded.fps == video.spec.fps
    assert loaded.cuts == video.ground_truth.cuts == [60, 120]
    assert load_ground_truth(video.gt_dir).n_frames == loaded.n_frames
    for f in (0, 59, 60, 150):
        a, b = loaded.instances(f), video.ground_truth.instances(f)
        assert list(a.track_ids) == list(b.track_ids)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.masks, b.masks)
        assert a.masks.shape[1:] == (video.spec.height, video.spec.width)
        assert (a.scores == 1.0).all() and set(a.categories) <= {"person"}
        if len(a):  # box of each decoded mask is its box
            for box, m in zip(a.boxes, a.masks):
                ys, xs = np.nonzero(m)
                assert tuple(box) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


# ---------------------------------------------------------------------------------- determinism


def test_deterministic(tmp_path: Path) -> None:
    spec = SyntheticSpec(video_id="det", n_frames=30, seed=3)
    a = generate(spec, tmp_path / "a")
    b = generate(spec, tmp_path / "b")
    c = generate(spec.model_copy(update={"seed": 4}), tmp_path / "c")
    assert a.gt_path.read_bytes() == b.gt_path.read_bytes()
    assert a.masks_path.read_bytes() == b.masks_path.read_bytes()
    assert a.meta_path.read_bytes() == b.meta_path.read_bytes()
    assert a.gt_path.read_bytes() != c.gt_path.read_bytes()
    fa = [r.image for r in render(spec.model_copy(update={"n_frames": 5}))]
    fb = [r.image for r in render(spec.model_copy(update={"n_frames": 5}))]
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))


# ---------------------------------------------------------------------------------- scene content


def test_occlusion_lowers_visibility(video: SyntheticVideo) -> None:
    vis = np.loadtxt(video.gt_path, delimiter=",", ndmin=2)[:, 8]
    assert (vis < 0.9).any() and (vis == 1).any()
    # Hidden by someone else, not only by the frame edge or an occluder: find a pair whose full boxes overlap.
    crossings = 0
    for f in range(video.spec.n_frames):
        inst = video.ground_truth.instances(f)
        if len(inst) > 1:
            iou = box_iou(inst.extra["full_boxes"], inst.extra["full_boxes"])
            np.fill_diagonal(iou, 0)
            crossings += int((iou > 0.1).any() and (inst.extra["visibility"] < 1).any())
    assert crossings > 0


def test_identities_exit_and_reenter(video: SyntheticVideo) -> None:
    meta = json.loads(video.meta_path.read_text())
    walked_back = [
        (d["id"], e)
        for d in meta["identities"]
        for e in d["exits"]
        if e["reentry_frame"] is not None and not e["cut_between"]
    ]
    assert walked_back, "nobody walked out of the frame and came back within a shot"
    pid, e = walked_back[0]
    present = lambda f: pid in set(video.ground_truth.instances(f).track_ids.tolist())  # noqa: E731
    assert present(e["exit_frame"] - 1) and present(e["reentry_frame"])
    assert not any(present(f) for f in range(e["exit_frame"], e["reentry_frame"]))


def test_cuts_change_the_background(video: SyntheticVideo) -> None:
    frames = [f.astype(np.int16) for f in _read_frames(video.video_path)]
    diffs = np.array([np.abs(frames[i] - frames[i - 1]).mean() for i in range(1, len(frames))])
    cuts = json.loads(video.meta_path.read_text())["cuts"]
    at_cut = diffs[np.array(cuts) - 1]
    elsewhere = np.delete(diffs, np.array(cuts) - 1)
    # Measured on the raw frames of 8 seeds: 34-52 at cuts, at most 7.6 inside shots (people walking, noise).
    assert at_cut.min() > 20, at_cut
    assert elsewhere.max() < 10, elsewhere.max()


def test_appearances_differ(video: SyntheticVideo) -> None:
    apps = [d["appearance"] for d in json.loads(video.meta_path.read_text())["identities"]]
    assert len({a["shirt"] for a in apps}) == len(apps)
    assert len({a["pattern"] for a in apps}) == len(apps)
    assert len({a["trousers"] for a in apps}) == len(apps)


def test_corpus_manifest(tmp_path: Path) -> None:
    videos = generate_corpus(tmp_path, n_videos=2, seed=1, n_frames=10, n_people=3)
    with open(tmp_path / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["video_id"] for r in rows] == [v.video_id for v in videos]
    assert all(r["license"] == "synthetic" for r in rows)
    for r in rows:
        assert (tmp_path / r["uri"]).exists() and not Path(r["uri"]).is_absolute()
    looks = [[d["appearance"] for d in json.loads(v.meta_path.read_text())["identities"]] for v in videos]
    assert looks[0] != looks[1]


def test_cli(tmp_path: Path) -> None:
    from reid_ray.video.synthetic import main

    assert main(["--out", str(tmp_path), "--videos", "1", "--seconds", "1", "--seed", "2"]) == 0
    assert (tmp_path / "manifest.csv").exists()
    assert len(list(tmp_path.glob("*.mp4"))) == 1


# ---------------------------------------------------------------------------------- real detector


def _yolox():
    """The library's own YOLOX-nano detector, people only (score 0.35, NMS at IoU 0.45)."""
    pytest.importorskip("onnxruntime")
    if not YOLOX_NANO.exists():
        pytest.skip(f"YOLOX-nano weights not found at {YOLOX_NANO} (shared/models/yolox_nano_coco.onnx)")
    from reid_ray.models.yolox import YoloxDetector

    return YoloxDetector(YOLOX_NANO, {"person": ["person"]}, score_threshold=0.35, nms_iou=0.45, num_threads=2)


def _fraction_inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)): share of each box of ``a`` covered by each box of ``b``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    area = np.maximum((a[:, 2:] - a[:, :2]).prod(-1), 1e-9)
    return (rb - lt).clip(0).prod(-1) / area[:, None]


def test_yolox_nano_finds_the_people(video: SyntheticVideo) -> None:
    yolox = _yolox()
    W, H = video.spec.width, video.spec.height
    hits = targets = false_pos = background = 0
    frames = _read_frames(video.video_path)  # what the pipeline sees: the encoded video
    for f, img in enumerate(frames):
        dets = yolox.detect(img[:, :, ::-1]).boxes  # the detector takes RGB
        inst = video.ground_truth.instances(f)
        b = inst.boxes
        inside = (b[:, 0] > 0) & (b[:, 1] > 0) & (b[:, 2] < W) & (b[:, 3] < H)
        wanted = (inst.extra["visibility"] >= 0.8) & inside
        iou = box_iou(b, dets)
        targets += int(wanted.sum())
        if len(dets):
            hits += int((iou[wanted].max(1, initial=0) >= 0.5).sum())
            # A false positive overlaps no person at all, neither the visible nor the (clipped) full box.
            full = np.clip(inst.extra["full_boxes"], 0, [W, H, W, H])
            best = np.maximum(iou.max(0, initial=0), box_iou(full, dets).max(0, initial=0))
            false_pos += int((best < 0.3).sum())
            # Of those, the ones lying mostly on no person at all (not a half-body duplicate of someone).
            background += int((_fraction_inside(dets, full).max(1, initial=0) < 0.5).sum())
    recall = hits / max(targets, 1)
    fp_per_100 = 100 * false_pos / len(frames)
    print(f"\nYOLOX-nano on synthetic footage: recall {recall:.3f} ({hits}/{targets} people with visibility >= 0.8), "
          f"{fp_per_100:.1f} false positives per 100 frames ({100 * background / len(frames):.1f} on background)")
    assert targets > 100
    assert recall >= 0.85
    assert fp_per_100 <= 5
