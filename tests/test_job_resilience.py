"""Faults and reruns of the pair job. Faults during a run: a worker node lost on a 3-node cluster (``ray.cluster_utils.Cluster``: real raylets on
this machine), the driver killed (SIGKILL) and interrupted (Ctrl-C) then rerun on the same --out. Each ends with
exactly a clean run's pairs: same ids and labels, none doubled, none lost. And reruns whose manifest changed under
the same ids (a licence revoked, an id pointed at another file) do not keep results of what is no longer there.

The job runs with the benchmark backends (configs/bench_scale.yaml: synthetic ground truth instead of networks), so
that a run takes seconds; every other part of it (Ray Data actors, files, markers, calibration, routing) is the real
one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reid_ray.video.synthetic import SyntheticSpec, generate

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ray
N_VIDEOS = 6
OVERRIDES = ["clip_pairs.pairs_per_video=8", "resources.num_cpus=2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fault_corpus")
    video = generate(SyntheticSpec(video_id="source", width=640, height=200, fps=10.0, n_frames=300, n_people=4, seed=3), folder)
    lines = ["video_id,uri,license"]
    for i in range(N_VIDEOS):  # each id is its own ground-truth scene; the job refuses one uri listed twice
        link = folder / f"cam{i}.mp4"
        os.link(video.video_path, link)
        lines.append(f"cam{i},{link},synthetic")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


def job(manifest: Path, out: Path, *extra: str) -> list[str]:
    sets = [a for o in [*OVERRIDES, *extra] for a in ("--set", o)]
    return [sys.executable, str(ROOT / "jobs" / "generate_pairs.py"), "--config", str(ROOT / "configs" / "bench_scale.yaml"),
            "--videos", str(manifest), "--out", str(out), *sets]


def run_job(manifest: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(job(manifest, out, *extra), capture_output=True, text=True, timeout=600, env=env or clean_env())
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, **extra}


def pair_rows(out: Path) -> list[tuple]:
    rows = [r for p in sorted((out / "pairs").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    ids = [r["pair_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a pair id written twice"
    return sorted((r["pair_id"], r["label"], r["a_candidate_id"], r["b_candidate_id"]) for r in rows)


@pytest.fixture(scope="module")
def clean(corpus, tmp_path_factory) -> list[tuple]:
    out = tmp_path_factory.mktemp("clean") / "out"
    run_job(corpus, out)
    rows = pair_rows(out)
    assert len(rows) > 100
    return rows


def wait_for_progress(out: Path, proc: subprocess.Popen, at_least: int, timeout_s: float = 300) -> None:
    """Until ``at_least`` clip pairs have finished their model work (their markers are written)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(list((out / "calibration").rglob("*.parquet"))) >= at_least:
            return
        if proc.poll() is not None:
            pytest.fail(f"the job ended before the fault: {proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    pytest.fail("the job made no progress")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_driver_killed_mid_run_then_rerun_equals_a_clean_run(corpus, clean, tmp_path, sig):
    out = tmp_path / "out"
    proc = subprocess.Popen(job(corpus, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
                            start_new_session=sig == signal.SIGKILL)
    wait_for_progress(out, proc, at_least=N_VIDEOS * 8 // 3)
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started, as a machine loss would
    else:
        proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    finished = len(list((out / "calibration").rglob("*.parquet")))
    assert finished < N_VIDEOS * 8, "the fault came after the work: nothing was tested"
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted; rerun with the same --out to resume" in stderr
        assert "Traceback" not in stderr
    run_job(corpus, out)
    assert pair_rows(out) == clean
    report = json.loads((out / "report.json").read_text())
    assert report["this_run"]["model_stages"]["counts"].get("clip_pairs_ok", 0) <= N_VIDEOS * 8 - finished  # resumed


def test_worker_node_lost_mid_run_equals_a_clean_run(corpus, clean, tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    try:
        doomed = cluster.add_node(num_cpus=2)
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        out = tmp_path / "out"
        env = clean_env(RAY_ADDRESS=cluster.address)
        proc = subprocess.Popen(job(corpus, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        wait_for_progress(out, proc, at_least=N_VIDEOS * 8 // 4)
        cluster.remove_node(doomed, allow_graceful=False)  # its raylet and every worker on it die
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-4000:]
        assert pair_rows(out) == clean
    finally:
        cluster.shutdown()


def test_a_revoked_licence_or_a_repointed_id_does_not_keep_old_pairs(corpus, tmp_path):
    out = tmp_path / "out"
    run_job(corpus, out)
    old_key = pq.read_table(out / "clip_pairs" / "cam1.parquet").column("source_key")[0].as_py()
    other = tmp_path / "other.mp4"
    other.write_bytes((corpus.parent / "cam1.mp4").read_bytes())  # same bytes, another file: another source
    lines = corpus.read_text().splitlines()
    lines = [l.replace("cam0.mp4,synthetic", "cam0.mp4,proprietary") for l in lines]  # licence revoked
    lines = [f"cam1,{other},synthetic" if l.startswith("cam1,") else l for l in lines]
    changed = tmp_path / "manifest.csv"
    changed.write_text("\n".join(lines) + "\n")

    run_job(changed, out)
    report = json.loads((out / "report.json").read_text())
    assert not (out / "pairs" / "cam0.parquet").exists() and not (out / "calibration" / "cam0").exists()
    assert pq.read_table(out / "clip_pairs" / "cam1.parquet").column("source_key")[0].as_py() != old_key
    assert report["this_run"]["model_stages"]["counts"]["clip_pairs_ok"] == 8  # cam1 redone, nothing else
    rows = [r for p in (out / "pairs").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert {r["a_video_id"] for r in rows} == {f"cam{i}" for i in range(1, N_VIDEOS)}
    assert report["dataset_card"]["pairs"] == len(rows)  # the card counts what is in the dataset, nothing else


def test_any_video_id_gets_its_own_safe_files(corpus, tmp_path):
    """Ids are free text: too long for a file name, slashes, scripts a sanitiser folds together, the job's own names."""
    ids = ["x" * 300, "视频", "видео", "a/b", "a\\b", "errors"]
    lines = ["video_id,uri,license"] + [f'"{vid}",{corpus.parent / f"cam{i}.mp4"},synthetic' for i, vid in enumerate(ids)]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run_job(manifest, out, "clip_pairs.pairs_per_video=3")
    files = sorted((out / "pairs").glob("*.parquet"))
    assert len(files) == len(ids) and all(len(f.name.encode()) <= 110 for f in files)
    by_file = {f.name: {r["a_video_id"] for r in pq.read_table(f).to_pylist()} for f in files}
    assert sorted(v for vids in by_file.values() for v in vids) == sorted(ids)  # one video per file, exact ids
    assert (out / "errors").is_dir() and json.loads((out / "report.json").read_text())["videos"]["finished"] == len(ids)


def test_a_run_where_every_source_is_refused_fails_and_replaces_old_refusals(corpus, tmp_path):
    folder = corpus.parent
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"video_id,uri,license\ncam0,{folder / 'cam0.mp4'},proprietary\n")
    out = tmp_path / "out"
    failed = subprocess.run(job(manifest, out, "clip_pairs.pairs_per_video=2"), capture_output=True, text=True, timeout=600, env=clean_env())
    assert failed.returncode == 1 and "no usable video" in failed.stderr and "1 refused" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert pq.read_table(out / "errors" / "sources.parquet").num_rows == 1
    manifest.write_text(f"video_id,uri,license\ncam0,{folder / 'cam0.mp4'},synthetic\n")  # licence fixed
    run_job(manifest, out, "clip_pairs.pairs_per_video=2")
    assert not (out / "errors" / "sources.parquet").exists()  # the old refusal is not kept
