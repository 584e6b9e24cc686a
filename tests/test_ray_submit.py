"""`ray job submit` for real against a local token-authenticated head (fixture ``ray_head``)."""
from __future__ import annotations

import ast
import json
import time
import urllib.error
from pathlib import Path

import pytest

from ray_helpers import HEAD_MARKER, RayHead, jobs_api, ray_cli, submit_job

pytestmark = pytest.mark.ray

JOB = """\
import os
import ray

ray.init()
print("RESOURCES", ray.cluster_resources())
files = sorted(os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk(".") for f in fs)
print("FILES", files)
"""


def _tagged(logs: str, tag: str) -> object:
    line = next(l for l in logs.splitlines() if l.startswith(tag + " "))
    return ast.literal_eval(line[len(tag) + 1 :])


def _working_dir(root: Path) -> Path:
    """job.py plus one file for each way Ray 2.60 lets a working_dir upload skip paths."""
    wd = root / "wd"
    (wd / "data").mkdir(parents=True)
    (wd / "job.py").write_text(JOB)
    (wd / "data" / "keep.txt").write_text("kept")
    (wd / "data" / "by_gitignore.bin").write_bytes(b"x")
    (wd / "data" / "by_rayignore.bin").write_bytes(b"x")
    (wd / "by_excludes").mkdir()
    (wd / "by_excludes" / "big.bin").write_bytes(b"x")
    (wd / ".gitignore").write_text("*.bin\n!data/by_rayignore.bin\n!by_excludes/**\n")  # honoured by default
    (wd / ".rayignore").write_text("data/by_rayignore.bin\n")
    return wd


def test_submit_runs_on_the_cluster(ray_head: RayHead, tmp_path: Path) -> None:
    wd = _working_dir(tmp_path)
    t0 = time.monotonic()
    status, logs = submit_job(ray_head, "python job.py", wd, timeout_s=180, runtime_env={"excludes": ["by_excludes/"]})
    print(f"submit + run: {time.monotonic() - t0:.1f}s")
    assert status == "SUCCEEDED", logs
    resources = _tagged(logs, "RESOURCES")
    assert resources.get(HEAD_MARKER) == 1.0 and resources["CPU"] == 2.0  # the fixture's head, not a new local Ray
    files = _tagged(logs, "FILES")
    assert "job.py" in files and "data/keep.txt" in files
    assert not {"data/by_gitignore.bin", "data/by_rayignore.bin", "by_excludes/big.bin"} & set(files), files


def test_failing_entrypoint_reports_failed(ray_head: RayHead, tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("raise SystemExit('boom from the job')\n")
    status, logs = submit_job(ray_head, "python boom.py", tmp_path, timeout_s=120)
    assert status == "FAILED"
    assert "boom from the job" in logs


def test_submit_without_token_auth_is_refused(ray_head: RayHead, tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("print('should never run')\n")
    env = ray_head.client_env()
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN"):
        env.pop(var, None)
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on either
    done = ray_cli(["job", "submit", "--working-dir", str(tmp_path), "--no-wait", "--", "python", "job.py"], env)
    assert done.returncode != 0
    assert "Authentication required" in done.stdout + done.stderr


def test_wrong_token_is_refused(ray_head: RayHead) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        jobs_api(ray_head, "/api/jobs/", token="0" * 64)
    assert err.value.code == 403
    jobs = jobs_api(ray_head, "/api/jobs/")  # the right token still works
    assert isinstance(jobs, list), json.dumps(jobs)[:200]
