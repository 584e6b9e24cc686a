"""The pair job with --out on S3 (a real S3 API server on loopback), submitted with `ray job submit` to a real local
head: every output lands in the bucket, none on local disk, and a rerun on the same prefix resumes there (nothing
redone, nothing doubled)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest

from _paths import require_shared
from ray_helpers import RayHead, submit_job
from reid_ray.config import ReviewConfig
from reid_ray.review.gold import gold_answer
from reid_ray.video.synthetic import SyntheticSpec, generate

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ray


def _objects(client, bucket: str, prefix: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update({o["Key"][len(prefix):]: o["ETag"] for o in page.get("Contents", [])})
    return keys


def _args(out: str, videos: Path, endpoint: str) -> list[str]:
    return [
        sys.executable, "jobs/generate_pairs.py", "--videos", str(videos), "--out", out,
        "--set", f"models_dir={require_shared('models').resolve()}", "--set", f"sources.s3_endpoint_url={endpoint}",
        "--set", "clip_pairs.pairs_per_video=2", "--set", "clip_pairs.time_gap_s=3", "--set", "sampling.frames_per_clip=3",
    ]


def _run(out: str, videos: Path, endpoint: str, cwd: Path) -> subprocess.CompletedProcess:
    args = _args(out, videos, endpoint)
    args[1] = str(ROOT / args[1])
    env = {**os.environ, "RAY_ADDRESS": ""}  # its own local Ray, like a user's first run
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_submitted_job_writes_everything_to_s3_and_a_local_rerun_resumes_there(ray_head: RayHead, s3_server, tmp_path):
    """The README's way to run at scale: `ray job submit` to a cluster (a real local head with token auth), --out on
    S3; then a rerun from a laptop on the same prefix resumes there."""
    video = generate(SyntheticSpec(video_id="s3cam", n_frames=150, n_people=3, seed=8), tmp_path / "videos")
    manifest = tmp_path / "videos" / "manifest.csv"
    manifest.write_text(f"video_id,uri,license\ns3cam,{video.video_path},synthetic\n")
    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket="pairs-out")
    workdir = tmp_path / "cwd"  # nothing may land here (a relative --out would)
    workdir.mkdir()

    # The cluster's processes get the credentials as a job would on AWS: through the job's runtime environment.
    credentials = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION",
                                              "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "NO_PROXY", "no_proxy")}
    status, logs = submit_job(ray_head, shlex.join(["python", *_args("s3://pairs-out/runs/one", manifest, s3_server)[1:]]), ROOT,
                              timeout_s=420, runtime_env={"env_vars": credentials})
    assert status == "SUCCEEDED", logs[-4000:]
    assert "usable video(s)" in logs and "done in" in logs  # progress lines reach the job log
    objects = _objects(client, "pairs-out", "runs/one/")
    for key in ("_run.json", "report.json", "calibration.json", "calibration.png", "clip_pairs/s3cam.parquet", "pairs/s3cam.parquet",
                "review/tasks.json", "review/records.jsonl", "review/labeling_config.xml"):
        assert key in objects, sorted(objects)
    assert sum(k.startswith("candidates/s3cam/") for k in objects) == 2  # one file per clip pair (both clips)
    assert sum(k.startswith("calibration/s3cam/") for k in objects) == 2
    assert any(k.startswith("_stats/segment/") for k in objects)
    assert list(workdir.iterdir()) == []

    local = tmp_path / "pairs.parquet"
    local.write_bytes(client.get_object(Bucket="pairs-out", Key="runs/one/pairs/s3cam.parquet")["Body"].read())
    pairs = pq.read_table(local).to_pylist()
    report = json.loads(client.get_object(Bucket="pairs-out", Key="runs/one/report.json")["Body"].read())
    assert report["videos"]["finished"] == 1 and report["errors"]["total"] == 0
    assert pairs and report["dataset_card"]["pairs"] == len(pairs)
    pending = [p for p in pairs if p["label"] == "pending_review"]
    assert all(f"review/{p['pair_id']}.png" in objects for p in pending)
    tasks = json.loads(client.get_object(Bucket="pairs-out", Key="runs/one/review/tasks.json")["Body"].read())
    gold = [p for p in pairs if gold_answer(p, ReviewConfig())]  # gold questions go to review beside the pending pairs
    assert sorted(t["data"]["pair_id"] for t in tasks) == sorted(p["pair_id"] for p in pending + gold)
    assert all(f"review/{t['data']['pair_id']}.png" in objects for t in tasks)
    assert ("review/gold.jsonl" in objects) == bool(gold)

    again = _run("s3://pairs-out/runs/one", manifest, s3_server, workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads(client.get_object(Bucket="pairs-out", Key="runs/one/report.json")["Body"].read())
    assert report["this_run"]["model_stages"]["counts"].get("clip_pairs_ok", 0) == 0  # nothing decoded again
    assert report["this_run"]["routing"].get("videos_up_to_date") == 1
    after = _objects(client, "pairs-out", "runs/one/")
    assert after["pairs/s3cam.parquet"] == objects["pairs/s3cam.parquet"]  # not rewritten
    assert {k for k in after if not k.startswith("_stats/")} == {k for k in objects if not k.startswith("_stats/")}


def test_a_missing_bucket_is_a_clear_error(s3_server, tmp_path):
    video = generate(SyntheticSpec(video_id="cam", n_frames=60, n_people=1, seed=2), tmp_path / "videos")
    result = _run("s3://no-such-bucket/run", video.video_path, s3_server, tmp_path)
    assert result.returncode == 2 and "no-such-bucket does not exist" in result.stderr
    assert "Traceback" not in result.stderr
