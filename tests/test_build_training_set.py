"""jobs/build_training_set.py on real Ray with real weights (YOLOX detector, EfficientNet-Lite0 patches): views of
the long-video job's own tracklets, licences checked, a rerun that skips, a refused licence that takes a video out,
and jobs/train.py training on the output folder as it is."""
from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from _paths import require_shared

import jobs.build_training_set as build_job
import jobs.train as train_job
from reid_ray.config import TrainingSetJobConfig, load_config
from reid_ray.reid.tracker import VideoTracker
from reid_ray.train.data import read_samples
from reid_ray.video.synthetic import SyntheticSpec, generate


def _manifest(path, rows) -> str:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "uri", "license"])
        w.writerows(rows)
    return str(path)


@pytest.mark.ray
def test_training_set_from_unlabelled_video_feeds_train(ray_local, tmp_path, capsys):
    a = generate(SyntheticSpec(video_id="walk_a", seed=4, n_frames=40, n_people=2, cut_every_s=2), tmp_path / "v")
    b = generate(SyntheticSpec(video_id="walk_b", seed=5, n_frames=20, n_people=3), tmp_path / "v")
    (tmp_path / "v" / "theirs.mp4").write_bytes(a.video_path.read_bytes())
    out = tmp_path / "set"
    models = f"models_dir={require_shared('models').resolve()}"
    args = ["--config", "configs/reid_local.yaml", "--set", models, "--set", "embedder.backend=efficientnet_lite0",
            "--set", "mining.every_k=2", "--set", "sources.allowed_licenses=[synthetic]"]
    rows = [["walk_a", str(a.video_path), "synthetic"], ["walk_b", str(b.video_path), "synthetic"],
            ["not_ours", str(tmp_path / "v" / "theirs.mp4"), "all-rights-reserved"]]
    assert build_job.main([*args, "--videos", _manifest(tmp_path / "m.csv", rows), "--out", str(out)]) == 0

    report = json.loads((out / "report.json").read_text())
    assert report["videos"] == {"usable": 2, "refused": 1, "processed_this_run": 2}
    assert report["errors"]["by_stage_and_type"] == {"sources/license": 1}
    files = sorted(p.name for p in (out / "samples").iterdir())
    assert files == ["walk_a.parquet", "walk_b.parquet"]
    assert (out / "previews" / "walk_a.png").stat().st_size > 5000

    # The rows are every 2nd clean view of the tracklets the long-video job itself builds, keyed by video and shot.
    cfg = load_config("configs/reid_local.yaml", [models, "embedder.backend=efficientnet_lite0"], TrainingSetJobConfig)
    tracked = VideoTracker(cfg).track(str(a.video_path))
    shots, tracklets = tracked.shots, tracked.tracklets
    mined = pq.read_table(out / "samples" / "walk_a.parquet").to_pylist()
    by_id = {f"t{tk.tracklet_id}": tk for tk in tracklets}
    for r in mined:
        tk = by_id[r["tracklet_id"]]
        k = int(np.flatnonzero(tk.frames == r["frame"])[0])
        assert k % 2 == 0 and tk.clean[k] and r["shot_id"] == f"shot{tk.shot_id:03d}" and r["identity"] is None
        assert r["dim"] == 120 and r["n_patches"] > 0
    assert len(shots) == 2 and {r["shot_id"] for r in mined} == {"shot000", "shot001"}
    table = read_samples(out)  # the job's folder as it is
    assert len(table) == report["set"]["views"] == len(mined) + pq.read_metadata(out / "samples" / "walk_b.parquet").num_rows
    assert set(table.video_id) == {"walk_a", "walk_b"}

    # Rerun: nothing mined again. Then the licence of walk_b is refused: its views leave the set.
    before = (out / "samples" / "walk_a.parquet").stat().st_mtime_ns
    assert build_job.main([*args, "--videos", str(tmp_path / "m.csv"), "--out", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["this_run"]["by_status"] == {"skipped": 2}
    assert (out / "samples" / "walk_a.parquet").stat().st_mtime_ns == before
    rows[1][2] = "all-rights-reserved"
    assert build_job.main([*args, "--videos", _manifest(tmp_path / "m.csv", rows), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["walk_a.parquet"]
    assert not (out / "previews" / "walk_b.png").exists()

    # jobs/train.py reads the output folder directly (one epoch, one worker: the DDP test covers two).
    capsys.readouterr()
    code = train_job.main(["--data", str(out), "--out", str(tmp_path / "runs"), "--set", "epochs=1",
                           "--set", "scaling.num_workers=1", "--set", "sampler.P=4", "--set", "sampler.K=2",
                           "--set", "sampler.batches_per_epoch=2"])
    assert code == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["metrics"]["epoch"] == 0 and trained["head"].endswith("head.pt")


def test_no_training_view_at_all_is_an_error(tmp_path, capsys):
    rows = [["x", str(tmp_path / "x.mp4"), "all-rights-reserved"]]
    (tmp_path / "x.mp4").write_bytes(b"not a video")
    code = build_job.main(["--set", "sources.allowed_licenses=[synthetic]", "--videos", _manifest(tmp_path / "m.csv", rows),
                           "--out", str(tmp_path / "set")])
    assert code == build_job.NO_RESULTS_EXIT_CODE
    assert "no video gave a training view (1 refused" in capsys.readouterr().err
