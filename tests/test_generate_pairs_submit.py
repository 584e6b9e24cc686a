"""`ray job submit --working-dir . -- python jobs/generate_pairs.py ...` for real against a local head with token
authentication: the job runs on that cluster and writes its outputs."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _paths import require_shared
from ray_helpers import RayHead, submit_job
from reid_ray.video.synthetic import generate_corpus

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]


def test_generate_pairs_through_ray_job_submit(ray_head: RayHead, tmp_path: Path) -> None:
    generate_corpus(tmp_path / "in", n_videos=1, seed=5, n_frames=120)
    out = tmp_path / "out"
    args = [
        "python", "jobs/generate_pairs.py", "--videos", str(tmp_path / "in/manifest.csv"), "--out", str(out), "--time-gap", "5",
        "--set", f"models_dir={require_shared('models').resolve()}",
        "--set", "clip_pairs.pairs_per_video=2", "--set", "sampling.frames_per_clip=3",
    ]
    status, logs = submit_job(ray_head, shlex.join(args), ROOT, timeout_s=420)
    assert status == "SUCCEEDED", logs[-4000:]
    assert "usable video(s)" in logs and "done in" in logs  # progress lines reach the job log
    report = json.loads((out / "report.json").read_text())
    assert report["videos"]["finished"] == 1 and report["errors"]["total"] == 0
    pairs = pq.read_table(next((out / "pairs").glob("*.parquet")))
    assert pairs.num_rows == sum(report["dataset_card"]["by_label"].values())
    assert len(list((out / "candidates").rglob("*.parquet"))) == 2  # one file per clip pair (both clips)
