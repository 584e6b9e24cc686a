"""The benchmark-only backend (``bench_ground_truth``) through the real decode and segment stage callables, no Ray:
its candidates are the synthetic scene's ground truth, and ``ground_truth_only`` agrees with ``render``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from reid_ray.config import load_config
from reid_ray.io import SUBDIRS, candidates_path
from reid_ray.models.bench_ground_truth import MIN_IN_FRAME, scene_seed, scene_spec
from reid_ray.records import box_iou
from reid_ray.pairs.clip_pairs import select_clip_pairs
from reid_ray.stages.decode import DecodeClipPairs
from reid_ray.stages.segment import ClipPairSegmentStage
from reid_ray.video.synthetic import SyntheticSpec, generate, ground_truth_only, render

ROOT = Path(__file__).resolve().parents[1]


def test_ground_truth_only_follows_render():
    """Same people in the frame on every frame, boxes close to the drawn figures', without drawing."""
    spec = SyntheticSpec(video_id="gt_only", width=320, height=180, n_frames=60, n_people=5, occluders=False)
    fast = list(ground_truth_only(spec))
    ious = []
    for f, drawn in enumerate(render(spec)):
        approx = {r.id: r for r in fast[f]}
        # An identity whose only pixels in frame are a hand's anti-aliased edge may differ: ids in frame agree
        # wherever the figure is more than a sliver inside.
        assert {r.id for r in drawn.rows if r.visibility > 0.05} <= set(approx), f
        ious += [float(box_iou(np.array([r.full_box]), np.array([approx[r.id].full_box]))[0, 0]) for r in drawn.rows if r.visibility > 0.99]
    assert len(ious) > 50 and np.median(ious) > 0.8 and min(ious) > 0.6


@pytest.fixture(scope="module")
def bench_video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_src")
    return generate(SyntheticSpec(video_id="src", width=320, height=180, fps=10, n_frames=120, n_people=2), folder)


def test_segment_stage_candidates_are_the_scene_ground_truth(tmp_path, bench_video):
    cfg = load_config(ROOT / "configs" / "bench_scale.yaml", ["proposal.calibration.bridge_share=0"])
    out = tmp_path / "out"
    for d in SUBDIRS:
        (out / d).mkdir(parents=True)
    video = {"video_id": "bench_test_video", "uri": str(bench_video.video_path), "license": "synthetic"}
    clip_pair = select_clip_pairs(video, 10.0, 120, cfg.clip_pairs)[0]
    kwargs = {"cfg_json": cfg.model_dump_json(), "out_dir": str(out)}
    decoded = DecodeClipPairs(**kwargs).process(clip_pair)
    assert decoded["error_type"] == "" and decoded["frame_width"] <= 64  # placeholders, nothing decoded at size
    status = ClipPairSegmentStage(**kwargs).process(decoded)
    assert status["status"] == "ok", status["message"]

    # The scene this video id stands for, followed independently of the backend.
    truth = list(ground_truth_only(scene_spec(scene_seed("bench_test_video"), 320, 180, 10.0, n_frames=120)))
    n_checked = 0
    for side in "ab":
        rows = [r for r in pq.read_table(candidates_path(out, "bench_test_video", clip_pair["clip_pair_id"])).to_pylist() if r["side"] == side]
        assert rows, side
        track_identity: dict[int, list[int]] = {}
        identity = []
        for r in rows:
            gt = [b for b in truth[r["frame"]] if b.in_frame_share >= MIN_IN_FRAME]
            boxes = np.array([np.clip(b.full_box, 0, [320, 180, 320, 180]) for b in gt])
            iou = box_iou(np.array([r["bbox"]]), boxes)[0]
            k = int(iou.argmax())
            assert iou[k] > 0.99, (r["frame"], r["bbox"], boxes)  # the ground-truth box, in source pixels
            track_identity.setdefault(r["track_id"], []).append(gt[k].id)
            identity.append(gt[k].id)
            n_checked += 1
        # Every frame's people are all there, once each.
        for frame in {r["frame"] for r in rows}:
            expected = sum(b.in_frame_share >= MIN_IN_FRAME for b in truth[frame])
            assert sum(r["frame"] == frame for r in rows) == expected
        # IoU linking on ground-truth boxes mostly follows identities (people who cross may swap, as on real
        # footage): nearly every view is its track's majority identity.
        pure = sum(max(ids.count(i) for i in set(ids)) for ids in track_identity.values())
        assert pure >= 0.85 * len(rows), track_identity
        # Views of one identity embed close together, views of different identities farther apart.
        emb = np.array([r["embedding"] for r in rows])
        ident = np.array(identity)
        sim = emb @ emb.T
        same = ident[:, None] == ident[None, :]
        np.fill_diagonal(same, False)
        if same.any() and (~same).any():
            assert np.median(sim[same]) > 0.85 > np.median(sim[~same & ~np.eye(len(rows), dtype=bool)])
    assert n_checked >= 8
