"""The Ray Data stages are plain callables: run probe -> decode -> segment -> route in this process,
without Ray, on generated footage with real weights, and check them against the ground truth."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from _paths import require_shared
from reid_ray.config import load_config
from reid_ray.calibration import calibrate
from reid_ray.io import bridges_path, calibration_samples_path, candidates_path, clip_pair_errors_path, pairs_path, video_errors_path
from reid_ray.metrics.pairs import identity_at
from reid_ray.stages.decode import DecodeClipPairs
from reid_ray.stages.finalize import RouteVideo, read_candidates
from reid_ray.stages.probe import ProbeStage
from reid_ray.pairs.proposal import calibration_samples
from reid_ray.stages.segment import SEGMENTED_FIELDS, ClipPairSegmentStage
from reid_ray.video.synthetic import SyntheticSpec, generate


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    video = generate(SyntheticSpec(video_id="direct", n_frames=120, n_people=3, seed=4), root)
    (root / "junk.mp4").write_text("no video")
    cfg = load_config("configs/local.yaml", [f"models_dir={require_shared('models').resolve()}", "clip_pairs.time_gap_s=4", "clip_pairs.pairs_per_video=1", "sampling.frames_per_clip=4", "proposal.calibration.bridge_share=1"])
    return root, video, cfg.model_dump_json()


def batch(rows: list[dict]) -> dict:
    return {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}


def rows(columns: dict) -> list[dict]:
    return [dict(zip(columns, vals)) for vals in zip(*columns.values())]


def test_probe_decode_segment_route_without_ray(setup):
    root, video, cfg_json = setup
    out = root / "out"
    videos = [
        {"video_id": "direct", "uri": str(video.video_path), "license": "synthetic", "metadata": "{}"},
        {"video_id": "junk", "uri": str(root / "junk.mp4"), "license": "synthetic", "metadata": "{}"},
    ]
    clip_pairs = ProbeStage(cfg_json, str(out))(batch(videos))
    assert clip_pairs["video_id"] == ["direct"]
    err = pq.read_table(video_errors_path(out, "probe", "junk")).to_pylist()[0]
    assert err["error_type"] == "decode" and err["video_id"] == "junk"

    decoded = DecodeClipPairs(cfg_json, str(out))(batch(rows(clip_pairs)))
    assert decoded["error_type"] == [""] and decoded["frame_height"][0] <= 960
    stage = ClipPairSegmentStage(cfg_json, str(out))
    statuses = stage(batch(rows(decoded)))
    assert set(statuses) == set(SEGMENTED_FIELDS) and statuses["status"] == ["ok"]
    gt = video.ground_truth
    cp = statuses["clip_pair_id"][0]
    for side in "ab":
        cands = [r for r in pq.read_table(candidates_path(out, "direct", cp)).to_pylist() if r["side"] == side]
        people = [r for r in cands if r["category"] == "person" and r["keep"]]
        assert people and all(len(r["embedding"]) == 512 for r in people)  # people: OSNet (embedder.by_category)
        assert all(len(r["embedding"]) == 120 for r in cands if r["category"] != "person")  # the rest: EfficientNet
        matched = [identity_at(gt, r["frame"], r["bbox"]) for r in people]
        assert sum(m is not None for m in matched) / len(matched) >= 0.8  # kept candidates are real people
        # one track never holds two identities on kept views
        by_track: dict[int, set] = {}
        for r, m in zip(people, matched):
            if m is not None:
                by_track.setdefault(r["track_id"], set()).add(m)
        assert sum(len(v) > 1 for v in by_track.values()) <= 1
    bridges = pq.read_table(bridges_path(out, "direct", cp)).to_pylist()
    for b in bridges:  # each bridge runs through a real person on both clips' sampled frames
        assert identity_at(gt, b["frame"], b["bbox"]) is not None
    assert all({b["side"] for b in bridges if b["bridge_id"] == k} == {"a", "b"} for k in {b["bridge_id"] for b in bridges})
    assert stage(batch(rows(decoded)))["status"] == ["skipped"]

    samples = pq.read_table(calibration_samples_path(out, "direct", cp)).to_pylist()  # written by the segment stage
    assert statuses["n_certain_pairs"][0] == sum(s["kind"] not in ("proposal", "static") for s in samples) > 0
    # Computed from the rows in memory, they equal what the files as written give (routing reads those files).
    from_files = calibration_samples(rows(clip_pairs), read_candidates(out, "direct", [cp]), stage.cfg.proposal,
                                     {cp: pq.read_table(bridges_path(out, "direct", cp)).to_pylist()})
    assert [{k: v for k, v in s.items() if k != "video_id"} for s in samples] == from_files
    assert ProbeStage(cfg_json, str(out))(batch(videos[:1]))["clip_pair_id"] == []  # finished: not done again
    by_kind: dict[str, list] = {}
    for s in samples:
        by_kind.setdefault(s["kind"], []).append(s["distance"])
    calibration = calibrate({"person": by_kind}, stage.cfg.proposal.calibration)
    route = RouteVideo(cfg_json, str(out), calibration.to_json(), calibration.fingerprint())
    routed = route.route("direct")
    pairs = pq.read_table(pairs_path(out, "direct")).to_pylist()
    assert routed["status"] == "routed" and routed["n_unfinished"] == 0
    assert len(pairs) == routed["n_pairs"] and sum(p["kind"] == "match" for p in pairs) == len(by_kind.get("proposal", []))
    assert route.route("direct")["status"] == "up_to_date"
    assert route.route("junk")["status"] == "not_probed"


def test_a_missing_candidate_file_is_an_error_record_not_a_skip(setup):
    """On a cluster without shared storage a node cannot see another's files: that must be loud."""
    root, video, cfg_json = setup
    out = root / "out_missing"
    clip_pairs = ProbeStage(cfg_json, str(out))(batch([{"video_id": "direct", "uri": str(video.video_path), "license": "synthetic", "metadata": "{}"}]))
    statuses = ClipPairSegmentStage(cfg_json, str(out))(batch(rows(DecodeClipPairs(cfg_json, str(out))(batch(rows(clip_pairs))))))
    cp = statuses["clip_pair_id"][0]
    assert statuses["status"] == ["ok"] and calibration_samples_path(out, "direct", cp).exists()
    candidates_path(out, "direct", cp).unlink()  # as if written to another node's disk
    calibration = calibrate({"person": {"positive": np.linspace(0.05, 0.2, 50).tolist(), "negative": np.linspace(0.3, 0.6, 50).tolist()}}, load_config("configs/local.yaml").proposal.calibration)
    routed = RouteVideo(cfg_json, str(out), calibration.to_json(), calibration.fingerprint()).route("direct")
    assert routed["status"] == "error"
    err = pq.read_table(video_errors_path(out, "route", "direct")).to_pylist()[0]
    assert err["error_type"] == "MissingOutputError"
    assert "missing" in err["message"] and "shared filesystem or s3://" in err["message"]
    assert not pairs_path(out, "direct").exists()  # no pairs file: the video is not finished, nothing skipped silently


def test_a_clip_pair_whose_video_became_unreadable_is_recorded_and_retried(setup, tmp_path):
    root, video, cfg_json = setup
    out = tmp_path / "out"
    moved = tmp_path / "direct.mp4"
    moved.write_bytes(video.video_path.read_bytes())
    source = {"video_id": "direct", "uri": str(moved), "license": "synthetic", "metadata": "{}"}
    clip_pairs = ProbeStage(cfg_json, str(out))(batch([source]))
    moved.rename(tmp_path / "away.mp4")  # briefly unreadable between probe and decode
    decoded = DecodeClipPairs(cfg_json, str(out))(batch(rows(clip_pairs)))
    assert decoded["error_type"][0] != ""
    statuses = ClipPairSegmentStage(cfg_json, str(out))(batch(rows(decoded)))
    assert statuses["status"] == ["error"]
    assert pq.read_table(clip_pair_errors_path(out, "segment", "direct", statuses["clip_pair_id"][0])).num_rows == 1
    assert not calibration_samples_path(out, "direct", statuses["clip_pair_id"][0]).exists()  # not finished
    (tmp_path / "away.mp4").rename(moved)
    again = ProbeStage(cfg_json, str(out))(batch([source]))
    assert again["clip_pair_id"] == clip_pairs["clip_pair_id"]  # not finished: offered again
    statuses = ClipPairSegmentStage(cfg_json, str(out))(batch(rows(DecodeClipPairs(cfg_json, str(out))(batch(rows(again))))))
    assert statuses["status"] == ["ok"]
    assert not clip_pair_errors_path(out, "segment", "direct", statuses["clip_pair_id"][0]).exists()  # stale record gone


def test_segment_stage_uses_a_trained_head_checkpoint(setup, tmp_path):
    """`embedder.head: <checkpoint>` swaps mean pooling for the trained set head (random weights here:
    this checks the plumbing, not quality)."""
    import json

    import torch

    from reid_ray.models.set_heads import build_head, save_head
    from reid_ray.pairs.clip_pairs import select_clip_pairs
    from reid_ray.pairs.frames import unpack_frames
    from reid_ray.pairs.candidates import clip_rows

    root, video, cfg_json = setup
    torch.manual_seed(0)
    spec = {"kind": "transformer", "in_dim": 512, "out_dim": 32}  # over the people's OSNet patches
    ckpt = save_head(tmp_path / "head.pt", build_head(spec), spec)
    cfg = json.loads(cfg_json)
    cfg["embedder"]["by_category"]["person"]["head"] = str(ckpt)
    stage = ClipPairSegmentStage(json.dumps(cfg), str(tmp_path / "out"))
    clip_pair = select_clip_pairs({"video_id": "direct", "uri": str(video.video_path), "license": "synthetic"}, 10.0, 120, stage.cfg.clip_pairs)[0]
    decoded = DecodeClipPairs(json.dumps(cfg), str(tmp_path / "out")).process(clip_pair)
    rows, _ = stage.finder.clip_candidates(clip_rows(clip_pair)[0], unpack_frames(decoded), float(decoded["scale"]))
    emb = np.array([r["embedding"] for r in rows if r["category"] == "person"])
    assert emb.shape[1] == 32 and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)


@pytest.mark.parametrize("backend, drawn", [("yolov8_seg", True), ("sam3", True), ("yolox", False)])
def test_review_packets_draw_the_masks_of_every_segmenter_that_gives_real_ones(tmp_path, backend, drawn):
    """Whether a packet shows the candidates' masks is the segmenter's own answer (``real_masks``), not its name:
    YOLOv8-seg's masks are drawn as SAM3's are; YOLOX's box masks are not."""
    from reid_ray.records import mask_to_rle
    from reid_ray.stages.finalize import render_review_packets

    video = generate(SyntheticSpec(video_id="packets", n_frames=12, n_people=1, seed=2), tmp_path)
    frame = next(f for f in range(12) if len(video.ground_truth.instances(f)))
    person = video.ground_truth.instances(frame)
    rle = mask_to_rle(person.masks[0])
    box = [float(v) for v in person.boxes[0]]
    pair = {"pair_id": "p0", "label": "pending_review", "gap_s": 0.0, "category": "person", "a_frame": frame, "b_frame": frame,
            "a_bbox": box, "b_bbox": box, "a_candidate_id": "ca", "b_candidate_id": "cb"}
    candidates = {c: {"mask_rle": rle["counts"], "mask_height": rle["size"][0], "mask_width": rle["size"][1]} for c in ("ca", "cb")}

    def magenta(over: list[str]) -> int:
        import cv2

        cfg = load_config("configs/local.yaml", over)
        render_review_packets([pair], candidates, str(video.video_path), cfg, tmp_path / "_".join(over or ["plain"]))
        png = cv2.imread(str(next((tmp_path / "_".join(over or ["plain"])).glob("*.png"))))[:, :, ::-1].astype(int)
        return int(((png[..., 0] > 180) & (png[..., 2] > 180) & (png[..., 1] < 90)).sum())  # the mask's contour colour

    with_backend, without = magenta([f"segmenter.backend={backend}"]), magenta([])  # local.yaml: YOLOX
    assert (with_backend > without + 20) == drawn, (with_backend, without)
