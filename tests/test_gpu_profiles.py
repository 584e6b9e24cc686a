"""Both GPU profiles end to end through Ray Data on the CPU, with tiny SAM3 and DINOv3 built here (the real
classes, random weights: the path and the outputs are checked, never their quality)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from tiny_models import build_tiny_dinov3, build_tiny_sam3

from reid_ray.config import ReidJobConfig, load_config
from reid_ray.video.synthetic import SyntheticSpec, generate


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return build_tiny_sam3(tmp_path_factory.mktemp("tiny_sam3")), build_tiny_dinov3(tmp_path_factory.mktemp("tiny_dinov3"))


def _on_cpu(sam3: str, dino: str) -> list[str]:
    return [f"segmenter.model={sam3}", "segmenter.device=cpu", "segmenter.score_threshold=0.0", f"embedder.model={dino}",
            "embedder.device=cpu", "sources.default_license=synthetic"]


@pytest.mark.ray
def test_reid_gpu_profile_tracks_with_sam3_sessions_per_scene(ray_local, tiny_models, tmp_path):
    from reid_ray.reid_job import run_reid_job
    from reid_ray.reid.outputs import TRACKLET
    from reid_ray.tracking.tracklets import split_segments

    video = generate(SyntheticSpec(video_id="scene", seed=3, n_frames=24, n_people=2, width=224, height=160, cut_every_s=1.5), tmp_path / "v")
    cfg = load_config("configs/reid_gpu.yaml", [*_on_cpu(*tiny_models), "shots.max_shot_frames=8", "embedding_plot=pca",
                                                "resources.video.num_gpus=0", "resources.video.num_cpus=1",
                                                "outputs.track_formats=[mot,coco_vis,cvat]"], ReidJobConfig)
    assert cfg.segmenter.backend == "sam3" and cfg.distance.method == "chamfer"
    report = run_reid_job(cfg, str(video.video_path), tmp_path / "out")
    assert report["failure"] == "" and report["this_run"][0]["status"] == "ok", report["this_run"]
    out = tmp_path / "out" / "scene"
    for name in ("tracklets.parquet", "identities.txt", "final_reid_output.mp4", "raw_tracklets_output.mp4", "report.json",
                 "patch_maps.png"):  # DINO's patches inside SAM3's masks, drawn as the CPU backbones' are
        assert (out / name).stat().st_size > 0, name
    video_report = json.loads((out / "report.json").read_text())
    table = pq.read_table(out / "tracklets.parquet")
    assert table.schema.equals(TRACKLET) and table.num_rows > 0, video_report["counts"]
    assert {len(e) for e in table.column("embedding").to_pylist()} == {48}  # the tiny DINOv3's width
    # One SAM3 session per scene piece of at most 8 frames: no tracklet crosses a piece.
    pieces = split_segments([tuple(s) for s in video_report["shots"]], 8)
    frames = table.to_pandas().groupby("tracklet_id")["frame"].agg(["min", "max"])
    for lo, hi in frames.itertuples(index=False):
        assert any(start <= lo and hi < end for _, start, end in pieces), (lo, hi, pieces)
    assert video_report["counts"]["n_tracklets"] == len(frames) and video_report["distance"]["method"] == "chamfer"
    from test_track_exports import assert_masks_exported

    assert_masks_exported(out, 224, 160)  # SAM3's masks in the COCO video JSON and the CVAT XML


@pytest.mark.ray
def test_pairs_gpu_profile_tracks_each_clip_with_one_sam3_session(ray_local, tiny_models, tmp_path):
    from reid_ray.pairs_job import run_pairs_job
    from reid_ray.schemas import CANDIDATE, PAIR

    video = generate(SyntheticSpec(video_id="street", seed=4, n_frames=60, n_people=2, width=224, height=160), tmp_path / "v")
    cfg = load_config("configs/gpu.yaml", [*_on_cpu(*tiny_models), "clip_pairs.time_gap_s=2", "clip_pairs.clip_length_s=1",
                                           "clip_pairs.pairs_per_video=1", "sampling.frames_per_clip=3", "sampling.max_side_px=224",
                                           "resources.segment.num_gpus=0", "resources.segment.num_cpus=1", "resources.decode.num_cpus=0.5",
                                           # One prompt and no bridge: a random SAM3 tracks every query it makes, in every
                                           # frame (seven prompts and a 2 s gap took minutes on the CPU). Its random masks
                                           # fail every quality check: the checks are opened up, their behaviour is tested
                                           # elsewhere.
                                           "segmenter.categories={person: [person]}", "proposal.calibration.bridge_share=0",
                                           "quality.min_height_px=1", "quality.min_area_px=1", "quality.border_margin_px=0",
                                           "quality.max_overlap=1.0", "quality.min_sharpness=0", "quality.max_similarity_in_frame=1.0"])
    assert cfg.segmenter.backend == "sam3" and cfg.embedder.backend == "dino" and cfg.proposal.routing == "calibrated"
    report = run_pairs_job(cfg, str(video.video_path), tmp_path / "out")
    assert report["this_run"]["model_stages"]["counts"].get("clip_pairs_ok") == 1, report["this_run"]
    pairs = pq.read_table(tmp_path / "out" / "pairs" / "street.parquet")
    assert pairs.schema.equals(PAIR) and pairs.num_rows == report["dataset_card"]["pairs"] > 0
    for path in sorted((tmp_path / "out" / "candidates" / "street").glob("*.parquet")):
        cands = pq.read_table(path)
        assert cands.schema.equals(CANDIDATE)
        rows = cands.to_pylist()
        assert {len(r["embedding"]) for r in rows} == {48}
        # SAM3's own masks (at model size), and its object ids as the tracks: one id never on two boxes of a frame
        assert all(r["mask_height"] <= 224 and r["mask_width"] <= 224 for r in rows)
        seen = [(r["side"], r["frame"], r["track_id"]) for r in rows if r["track_id"] >= 0]
        assert len(seen) == len(set(seen))


def test_identity_video_fills_masks_and_outlines_boxes_without_one():
    from reid_ray.records import mask_to_rle
    from reid_ray.viz.videos import MASK_ALPHA, colour_for, draw_boxes

    frame = np.full((40, 60, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)  # at half the frame's size, as SAM3's model-size masks are
    mask[5:15, 5:10] = True
    drawn = draw_boxes(frame, [((10, 10, 20, 30), 7, "id 7", mask_to_rle(mask)), ((40, 5, 55, 35), 8, "id 8")])
    colour = np.asarray(colour_for(7), np.float32)
    expected = (100 * (1 - MASK_ALPHA) + colour * MASK_ALPHA).astype(np.uint8)
    assert (drawn[25, 15] == expected).all()  # inside the (upscaled) mask: blended in the identity's colour
    assert (drawn[35, 15] == 100).all() and (drawn[25, 5] == 100).all()  # outside it: untouched, no outline
    assert (drawn[20, 40] == colour_for(8)).all()  # no mask: the box is outlined
