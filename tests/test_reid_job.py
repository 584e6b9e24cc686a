"""The re-identification job end to end on a real local Ray with real weights, on one short synthetic video
with a cut (exact ground truth): public-detections path and CPU segmenter path, outputs, the one-box-per-
identity-per-frame constraint, IDF1 bounds, resumability, and error records for a broken video and a
detections file with a bad line. Bounds are measured values minus a margin (synthetic footage)."""
import json
from pathlib import Path
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from _paths import require_shared

from reid_ray.config import ReidJobConfig, load_config
from reid_ray.io import read_tables
from reid_ray.metrics.mot import mot_metrics
from reid_ray.mot_format import gt_to_public_detections, read_mot
from reid_ray.reid_job import run_reid_job
from reid_ray.schemas import ERROR
from reid_ray.reid.outputs import TRACKLET
from reid_ray.tracking.distances import distance_matrix, sharded_distance_matrix
from reid_ray.video.synthetic import SyntheticSpec, generate

pytestmark = pytest.mark.ray

OUTPUTS = ("tracklets.parquet", "identities.txt", "final_reid_output.mp4", "raw_tracklets_output.mp4",
           "cluster_hierarchy_dendrogram.png", "embedding_clusters_umap.png", "patch_maps.png", "report.json")
BAD_LINE = 5
# The public-detections run writes every identity format (reid_ray.tracking.exports); test_track_exports reads them.
ALL_FORMATS = "outputs.track_formats=[mot,coco_vis,yolo,cvat]"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reid_corpus")
    video = generate(SyntheticSpec(video_id="short", seed=5, n_frames=150, n_people=3, cut_every_s=8), folder / "src")
    vids = folder / "videos"
    vids.mkdir()
    shutil.copy(video.video_path, vids / "short.mp4")
    shutil.copy(video.video_path, vids / "badline.mp4")
    (vids / "broken.mp4").write_bytes(video.video_path.read_bytes()[:2000])  # cut off: fails to decode
    dets = folder / "dets"
    dets.mkdir()
    gt_to_public_detections(video.gt_path, dets / "short.txt")
    lines = (dets / "short.txt").read_text().splitlines()
    lines[BAD_LINE - 1] = "3,-1,12,abc,40,80,1"
    (dets / "badline.txt").write_text("\n".join(lines) + "\n")
    return vids, dets, video


def _cfg(*extra: str) -> ReidJobConfig:
    # PCA figures: UMAP's JIT compile costs each new actor tens of seconds; cpu_run draws the UMAP one.
    return load_config("configs/reid_local.yaml", [f"models_dir={require_shared('models').resolve()}",
                                                   "sources.default_license=synthetic", "embedding_plot=pca", *extra], ReidJobConfig)


@pytest.fixture(scope="module")
def det_run(ray_local, corpus, tmp_path_factory):
    vids, dets, _ = corpus
    out = tmp_path_factory.mktemp("reid_det")
    return out, run_reid_job(_cfg(ALL_FORMATS), str(vids), out, dets)


@pytest.fixture(scope="module")
def cpu_run(ray_local, corpus, tmp_path_factory):
    vids, _, _ = corpus
    out = tmp_path_factory.mktemp("reid_cpu")
    # shard_above=1: the CPU run takes the sharded (Ray tasks) distance path, the detections run the local one.
    # A second-association floor under the profile's 0.2: this short video has boxes at 0.1-0.2 that continue tracks.
    return out, run_reid_job(_cfg("distance.shard_above=1", "distance.block=3", "tracking.low_score_threshold=0.1", "embedding_plot=umap"),
                             str(vids / "short.mp4"), out)


def _check_outputs(out, video, min_idf1: float) -> dict:
    d = out / "short"
    for name in OUTPUTS:
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    table = pq.read_table(d / "tracklets.parquet")
    assert table.schema.equals(TRACKLET) and table.num_rows > 0
    pred = read_mot(d / "identities.txt")  # refuses an id twice in one frame
    assert not pred.duplicated(["frame", "id"]).any()
    assert (pred["frame"] >= 1).all() and (pred["class"] == -1).all()
    report = json.loads((d / "report.json").read_text())
    assert report["counts"]["n_shots"] == 2 and report["shots"][1][0] == 80  # the cut at 8 s, 10 fps
    assert 0 < report["outputs_share"] < 1  # pictures and videos: a share of the video's run, reported
    assert report["counts"]["n_identities"] == pred["id"].nunique()
    # identities.txt = the tracklets' detections plus the boxes filled into short gaps (own detector only)
    assert len(pred) == table.num_rows + report["counts"]["n_interpolated_boxes"]
    m = mot_metrics(read_mot(video.gt_path), pred)
    print(f"IDF1 {m['IDF1']:.3f} MOTA {m['MOTA']:.3f} HOTA {m['HOTA']:.3f} ids {m['pred_ids']}")
    assert m["IDF1"] >= min_idf1, m
    return report


def test_public_detections_path(det_run, corpus):
    out, report = det_run
    video_report = _check_outputs(out, corpus[2], min_idf1=0.9)  # measured 0.99 (OSNet profile)
    assert video_report["counts"]["n_interpolated_boxes"] == 0  # given boxes are taken as they are
    assert video_report["counts"]["n_low_score_boxes"] == 0
    assert {s["video_id"]: s["status"] for s in report["this_run"]} == {"short": "ok", "badline": "error", "broken": "error"}


def test_public_detections_path_writes_every_track_format(det_run, corpus):
    from test_track_exports import assert_exports_match_mot

    assert_exports_match_mot(det_run[0] / "short", corpus[2].spec.width, corpus[2].spec.height)


def test_error_records(det_run):
    out, _ = det_run
    errors = {e["video_id"]: e for e in read_tables(list((out / "errors").glob("*.parquet")), ERROR).to_pylist()}
    assert errors["badline"]["error_type"] == "detections" and f"badline.txt:{BAD_LINE}:" in errors["badline"]["message"]
    assert errors["broken"]["error_type"] == "decode"
    assert "short" not in errors and not (out / "badline" / "report.json").exists()


def test_rerun_skips_finished(det_run, corpus):
    out, _ = det_run
    vids, dets, _ = corpus
    stamp = (out / "short" / "report.json").stat().st_mtime_ns
    report = run_reid_job(_cfg(ALL_FORMATS), str(vids), out, dets)
    assert report["videos"]["processed_this_run"] == 2  # only the two failed videos are retried
    assert (out / "short" / "report.json").stat().st_mtime_ns == stamp


def test_cpu_path(cpu_run, corpus):
    out, _ = cpu_run
    report = _check_outputs(out, corpus[2], min_idf1=0.8)  # measured 0.89
    assert report["distance"]["sharded"] is True
    assert report["counts"]["n_interpolated_boxes"] > 0  # the detector misses a few frames that get filled
    assert report["counts"]["n_low_score_boxes"] > 0  # partly hidden people kept by the second association


def test_sharded_matrix_matches_local_on_real_tracklets(cpu_run):
    out, _ = cpu_run
    t = pq.read_table(out / "short" / "tracklets.parquet").to_pandas()
    embs = [np.stack(g.embedding.to_numpy()).astype(np.float32) for _, g in t.groupby("tracklet_id")]
    assert len(embs) >= 4
    np.testing.assert_allclose(sharded_distance_matrix(embs, block=3), distance_matrix(embs), atol=1e-6)


def test_trained_head_checkpoint_changes_identity_embeddings_not_tracklets(det_run, corpus, tmp_path):
    """`embedder.head: <checkpoint>` in the long-video job (random weights: the plumbing, not quality). The head's
    embeddings reach tracklets.parquet and the clustering; the tracklets are those of the mean-pooling run, since
    frame-to-frame association compares the backbone's mean-pooled features whatever the head."""
    import torch

    from reid_ray.models.set_heads import build_head, save_head
    from reid_ray.stages.reid_video import ReidVideoStage

    vids, dets, _ = corpus
    torch.manual_seed(0)
    spec = {"kind": "transformer", "in_dim": 512, "out_dim": 32, "d_model": 32, "layers": 1, "heads": 2, "residual_mean": False}
    ckpt = save_head(tmp_path / "head.pt", build_head(spec), spec)
    stage = ReidVideoStage(_cfg(f"embedder.head={ckpt}", "distance.shard_above=1000000").model_dump_json(), str(tmp_path / "out"), str(dets))
    summary = stage.process({"video_id": "short", "uri": str(vids / "short.mp4"), "license": "synthetic"})
    assert summary["status"] == "ok", summary["message"]
    cols = ["shot_id", "tracklet_id", "frame", "bbox"]
    mean = pq.read_table(det_run[0] / "short" / "tracklets.parquet").to_pandas()
    head = pq.read_table(tmp_path / "out" / "short" / "tracklets.parquet").to_pandas()
    assert len(mean.embedding[0]) == 512 and len(head.embedding[0]) == 32
    assert np.allclose(np.linalg.norm(np.stack(head.embedding.to_numpy()), axis=1), 1, atol=1e-4)
    assert mean[cols].astype(str).equals(head[cols].astype(str))


def test_walkthrough_notebook_runs_on_a_result(det_run, corpus):
    """The notebook a user opens first: executed here with nbclient on a real result."""
    import os

    import nbformat
    from nbclient import NotebookClient

    out, _ = det_run
    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks/reid_walkthrough.ipynb", as_version=4)
    os.environ["REID_RESULT_DIR"] = str(out / "short")
    os.environ["REID_VIDEO"] = str(corpus[0] / "short.mp4")
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(out)}}).execute()
    finally:
        os.environ.pop("REID_RESULT_DIR", None)
        os.environ.pop("REID_VIDEO", None)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # the figures and the crops


# ---------------------------------------------------------------------------------- awkward ids, no results, Ctrl-C

AWKWARD_IDS = ("v" * 300, "errors", "report.json")  # too long for a file name; the job's own folder and report


@pytest.fixture(scope="module")
def awkward_run(ray_local, tmp_path_factory):
    """A tiny video three times, under ids that cannot be file names as they are, with public detections."""
    from reid_ray.names import safe_name

    folder = tmp_path_factory.mktemp("reid_awkward")
    video = generate(SyntheticSpec(video_id="tiny", seed=1, n_frames=12, n_people=2), folder / "src")
    dets = folder / "dets"
    dets.mkdir()
    rows = ["video_id,uri,license"]
    for n, vid in enumerate(AWKWARD_IDS):
        shutil.copy(video.video_path, folder / f"copy{n}.mp4")
        gt_to_public_detections(video.gt_path, dets / f"{safe_name(vid)}.txt")  # detections files go by the name
        rows.append(f"{vid},copy{n}.mp4,synthetic")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = folder / "out"
    return folder, out, run_reid_job(_cfg(), str(folder / "manifest.csv"), out, dets)


def test_awkward_ids_get_safe_folders_and_keep_their_exact_value(awkward_run):
    from reid_ray.names import safe_name

    _, out, report = awkward_run
    assert report["failure"] == "" and report["videos"]["finished"] == len(AWKWARD_IDS), report["this_run"]
    assert json.loads((out / "report.json").read_text())["job"] == "reid_videos"  # the job's report, not a video's
    assert (out / "errors").is_dir() and not list((out / "errors").glob("*.parquet"))
    for vid in AWKWARD_IDS:
        d = out / safe_name(vid)
        assert d.name != vid and len(d.name) <= 100 and report["video_dirs"][vid] == d.name
        assert json.loads((d / "report.json").read_text())["video_id"] == vid
        assert set(pq.read_table(d / "tracklets.parquet", columns=["video_id"]).column(0).to_pylist()) == {vid}


def test_awkward_ids_rerun_skips_finished(awkward_run):
    folder, out, _ = awkward_run
    report = run_reid_job(_cfg(), str(folder / "manifest.csv"), out, folder / "dets")
    assert report["videos"]["processed_this_run"] == 0 and report["videos"]["finished"] == len(AWKWARD_IDS)


def test_every_video_failing_exits_1_and_says_why(ray_local, corpus, tmp_path, capsys):
    from test_job_inputs import load_job

    vids, dets, _ = corpus
    argv = ["--videos", str(vids / "broken.mp4"), "--out", str(tmp_path / "out"), "--detections", str(dets),
            "--set", f"models_dir={require_shared('models').resolve()}", "--set", "sources.default_license=synthetic"]
    assert load_job("reid_videos").main(argv) == 1
    err = capsys.readouterr().err
    assert "all 1 source(s) refused or failed (0 refused, 1 failed)" in err and "broken:" in err, err


def test_ctrl_c_exits_130_with_a_one_line_message(corpus, tmp_path):
    """The job in its own process (its own local Ray), interrupted once it has started: no traceback, and the
    --out it leaves is one the same configuration resumes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from reid_ray.run_state import RUN_STATE, check_run_state

    root = Path(__file__).resolve().parents[1]
    vids, _, _ = corpus
    out = tmp_path / "out"
    sets = [f"models_dir={require_shared('models').resolve()}", "sources.default_license=synthetic", "resources.num_cpus=1"]
    cmd = [sys.executable, str(root / "jobs/reid_videos.py"), "--videos", str(vids / "short.mp4"), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
    proc = subprocess.Popen(cmd + [a for s in sets for a in ("--set", s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=root)
    try:
        deadline = time.monotonic() + 120
        while not (out / RUN_STATE).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        time.sleep(2.0)  # into model loading or the Ray pipeline: the segmenter path takes far longer than this
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted; rerun with the same --out to resume" in stderr
    assert "Traceback" not in stderr + stdout and "KeyboardInterrupt" not in stderr, stderr
    cfg = _cfg("resources.num_cpus=1", "embedding_plot=umap")  # as the job ran it: the profile's defaults
    assert check_run_state(out, cfg.fingerprint(), {})["fingerprint"] == cfg.fingerprint()  # resumable


def test_the_embedding_figure_plots_a_bounded_sample_with_every_tracklet():
    from reid_ray.reid.outputs import plot_sample

    lengths = [5000, 3, 1, 200]
    shown = plot_sample(lengths, 2000)
    assert sum(len(k) for k in shown) <= 2000 and all(len(k) >= 1 for k in shown)
    assert all(k.max() < n and len(np.unique(k)) == len(k) for k, n in zip(shown, lengths))
    assert len(shown[0]) > 10 * len(shown[3]) > 0  # in proportion to length
    assert [len(k) for k in plot_sample([5, 3], 2000)] == [5, 3]  # small videos: every view


def test_a_masked_segmenter_keeps_its_masks_on_frames_over_max_side_px(tmp_path):
    """YOLOv8-seg (real masks, read from ../shared) on CAVIAR frames at twice their size, over tracking.max_side_px:
    the person comes back in source pixels with the segmenter's own mask resized, not a box, and that mask is what
    the embedder pools. No Ray: the tracker is called directly."""
    pytest.importorskip("ai_edge_litert")
    import cv2

    from reid_ray.reid.tracker import VideoTracker
    from reid_ray.video.decode import read_frames

    frames = [cv2.resize(f, (768, 576), interpolation=cv2.INTER_CUBIC)
              for f in read_frames(require_shared("video/caviar/OneLeaveShopReenter1front.mpg"), [150, 160])]
    cfg = _cfg("segmenter.backend=yolov8_seg", "tracking.max_side_px=384")
    tracker = VideoTracker(cfg)

    inst = tracker.detect(frames[1])
    people = inst.select(np.flatnonzero(inst.categories == "person"))
    assert len(people) >= 1 and people.masks is not None and people.masks.shape[1:] == (576, 768)
    boxes = people.box_masks((576, 768))
    for mask, box in zip(people.masks, boxes):
        assert 0.3 < mask.sum() / box.sum() < 0.9  # a body, not its box
        assert (mask & ~box).sum() < 0.05 * mask.sum()  # inside its box (up to the rounding of the resize)
    small = tracker.segmenter.segment([cv2.resize(frames[1], (384, 288), interpolation=cv2.INTER_AREA)])[0]
    np.testing.assert_allclose(inst.boxes, small.boxes * 2, rtol=1e-6)

    # Through the tracker's scan of a video: the embedder is handed those masks, not box masks.
    video = tmp_path / "big.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (768, 576))
    for f in frames:
        writer.write(f[:, :, ::-1])
    writer.release()
    seen = []
    pool = tracker.embedder.patch_sets
    tracker.embedder.patch_sets = lambda frame, masked: seen.append(masked) or pool(frame, masked)
    tracker.scan(str(video), None)
    masked = [m for s in seen for m, c, b in zip(s.masks, s.core_masks((576, 768)), s.box_masks((576, 768)))
              if not (m == c).all() and not (m == b).all()]
    assert seen and len(masked) == sum(len(s) for s in seen), "every person embedded inside its own mask"
