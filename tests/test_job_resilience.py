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
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reid_ray.io import clip_pairs_path, pairs_path, video_dir_name
from reid_ray.video.synthetic import SyntheticSpec, generate

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ray
# Ids are free text: too long for a file name, scripts a sanitiser folds together, slashes, the job's own names.
IDS = ["x" * 300, "视频", "видео", "a/b", "a\\b", "errors"]
N_VIDEOS = len(IDS)
SLOW = "segmenter.simulated_seconds_per_frame=0.02"  # model time per frame (outputs unchanged): faults land mid-run
# Batches of 2 clip pairs: a fault finds few in flight (with 16 a batch's clip pairs finish together).
OVERRIDES = ["clip_pairs.pairs_per_video=8", "resources.num_cpus=2", "resources.decode.batch_size=2",
             "resources.segment.batch_size=2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fault_corpus")
    video = generate(SyntheticSpec(video_id="source", width=640, height=200, fps=10.0, n_frames=300, n_people=4, seed=3), folder)
    for i in range(N_VIDEOS):  # each id is its own ground-truth scene; the job refuses one uri listed twice
        os.link(video.video_path, folder / f"cam{i}.mp4")
    return manifest_with(folder, folder)


def manifest_with(videos: Path, folder: Path, license_of: dict[str, str] | None = None, uri_of: dict[str, Path] | None = None) -> Path:
    """``folder``/manifest.csv: IDS over the clips in ``videos`` (cam<i>.mp4), some licences or uris changed."""
    license_of, uri_of = license_of or {}, uri_of or {}
    lines = ["video_id,uri,license"] + [f'"{vid}",{uri_of.get(vid, videos / f"cam{i}.mp4")},{license_of.get(vid, "synthetic")}'
                                        for i, vid in enumerate(IDS)]
    path = folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


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
def clean_out(corpus, tmp_path_factory) -> Path:
    """One uninterrupted run; tests compare with it or start from a copy of it."""
    out = tmp_path_factory.mktemp("clean") / "out"
    run_job(corpus, out)
    return out


@pytest.fixture(scope="module")
def clean(clean_out) -> list[tuple]:
    rows = pair_rows(clean_out)
    assert len(rows) > 100
    return rows


def wait_for_progress(out: Path, proc: subprocess.Popen, at_least: int, timeout_s: float = 300) -> None:
    """Until ``at_least`` clip pairs have finished their model work (their markers are written)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if finished_clip_pairs(out) >= at_least:
            return
        if proc.poll() is not None:
            pytest.fail(f"the job ended before the fault: {proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    pytest.fail("the job made no progress")


def finished_clip_pairs(out: Path) -> int:
    return len(list((out / "calibration").rglob("*.parquet")))


def test_all_refused_then_driver_killed_then_interrupted_then_rerun_equals_a_clean_run(corpus, clean, tmp_path):
    """On one --out: a run whose every source is refused (exit 1, why on the console); SIGKILL mid-run; a rerun
    interrupted with Ctrl-C; a rerun to the end. The end is a clean run's pairs, and no stale refusal is kept."""
    out, total = tmp_path / "out", N_VIDEOS * 8
    refused = subprocess.run(job(manifest_with(corpus.parent, tmp_path, {v: "proprietary" for v in IDS}), out),
                             capture_output=True, text=True, timeout=600, env=clean_env())
    assert refused.returncode == 1 and "no usable video" in refused.stderr and f"{N_VIDEOS} refused" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert pq.read_table(out / "errors" / "sources.parquet").num_rows == N_VIDEOS

    killed = subprocess.Popen(job(corpus, out, SLOW), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=clean_env(), start_new_session=True)
    wait_for_progress(out, killed, at_least=total // 4)
    os.killpg(killed.pid, signal.SIGKILL)  # the driver and the local Ray it started, as a machine loss would
    killed.communicate(timeout=120)
    after_kill = finished_clip_pairs(out)
    assert after_kill < total, "the kill came after the work: nothing was tested"

    interrupted = subprocess.Popen(job(corpus, out, SLOW), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=clean_env())
    wait_for_progress(out, interrupted, at_least=after_kill + total // 8)
    interrupted.send_signal(signal.SIGINT)
    _, stderr = interrupted.communicate(timeout=120)
    after_interrupt = finished_clip_pairs(out)
    assert after_interrupt < total, "the Ctrl-C came after the work: nothing was tested"
    assert interrupted.returncode == 130 and "interrupted; rerun with the same --out to resume" in stderr
    assert "Traceback" not in stderr

    run_job(corpus, out)
    assert pair_rows(out) == clean
    report = json.loads((out / "report.json").read_text())
    assert report["this_run"]["model_stages"]["counts"].get("clip_pairs_ok", 0) <= total - after_interrupt  # resumed
    assert not (out / "errors" / "sources.parquet").exists()  # the first run's refusals are not kept


def test_worker_node_lost_mid_run_equals_a_clean_run(corpus, clean, tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    try:
        doomed = cluster.add_node(num_cpus=2)
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        out = tmp_path / "out"
        env = clean_env(RAY_ADDRESS=cluster.address)
        proc = subprocess.Popen(job(corpus, out, SLOW), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        wait_for_progress(out, proc, at_least=N_VIDEOS * 8 // 4)
        cluster.remove_node(doomed, allow_graceful=False)  # its raylet and every worker on it die
        assert finished_clip_pairs(out) < N_VIDEOS * 8, "the node died after the work: nothing was tested"
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-4000:]
        assert pair_rows(out) == clean
    finally:
        cluster.shutdown()


def test_a_revoked_licence_or_a_repointed_id_does_not_keep_old_pairs(corpus, clean_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(clean_out, out)  # a finished run of the same manifest and files
    revoked, repointed = IDS[0], IDS[1]
    old_key = pq.read_table(clip_pairs_path(out, repointed)).column("source_key")[0].as_py()
    other = tmp_path / "other.mp4"
    other.write_bytes((corpus.parent / "cam1.mp4").read_bytes())  # same bytes, another file: another source
    run_job(manifest_with(corpus.parent, tmp_path, {revoked: "proprietary"}, {repointed: other}), out)

    report = json.loads((out / "report.json").read_text())
    assert not pairs_path(out, revoked).exists() and not (out / "calibration" / video_dir_name(revoked)).exists()
    assert pq.read_table(clip_pairs_path(out, repointed)).column("source_key")[0].as_py() != old_key
    assert report["this_run"]["model_stages"]["counts"]["clip_pairs_ok"] == 8  # the repointed id redone, nothing else
    rows = [r for p in (out / "pairs").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert {r["a_video_id"] for r in rows} == set(IDS[1:])
    assert report["dataset_card"]["pairs"] == len(rows)  # the card counts what is in the dataset, nothing else
    assert pq.read_table(out / "errors" / "sources.parquet").column("video_id").to_pylist() == [revoked]


def test_any_video_id_gets_its_own_safe_files(clean_out):
    """The clean run's ids: one bounded, distinct file per video, each holding exactly its id."""
    files = sorted((clean_out / "pairs").glob("*.parquet"))
    assert len(files) == len(IDS) and all(len(f.name.encode()) <= 110 for f in files)
    by_file = {f.name: {r["a_video_id"] for r in pq.read_table(f).to_pylist()} for f in files}
    assert sorted(v for vids in by_file.values() for v in vids) == sorted(IDS)  # one video per file, exact ids
    report = json.loads((clean_out / "report.json").read_text())
    assert (clean_out / "errors").is_dir() and report["videos"]["finished"] == len(IDS)
