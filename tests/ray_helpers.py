"""A private, token-authenticated Ray head for tests, and `ray job submit` against it.

The head runs as ``ray start --head --block`` in its own session, with its own temp dir, ports and token,
so it never touches (or is touched by) a cluster a test starts in-process with ``ray.init()``, nor
``~/.ray/auth_token``. It is stopped by signalling that session, never with ``ray stop`` (which kills
every Ray process on the machine).

Token auth in Ray 2.60: ``RAY_AUTH_MODE=token`` turns it on (server and client side alike); the token
comes from ``RAY_AUTH_TOKEN`` (the value), else the file named by ``RAY_AUTH_TOKEN_PATH``, else
``~/.ray/auth_token``. ``ray start`` never generates one (only a local ``ray.init()`` does).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
HEAD_MARKER = "rr_fixture_head"
# Inherited variables that would point a client or the head somewhere else, or override our token.
_SCRUB = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE")


@dataclass(frozen=True)
class RayHead:
    address: str  # GCS address 127.0.0.1:port (GCS listens on all interfaces) for ray.init / ray start
    dashboard_url: str  # http://127.0.0.1:port: Jobs API and dashboard
    env: dict[str, str]  # what a client needs on top of its environment
    temp_dir: Path
    token: str
    pid: int  # `ray start --block`, leader of the session every head process lives in

    def client_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) without stray Ray settings, plus ``env``."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _SCRUB}
        return {**env, **self.env}


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: all sockets stay open until every port is picked, so none repeats."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def jobs_api(head: RayHead, path: str, *, method: str = "GET", token: str | None = None, timeout: float = 10) -> Any:
    """JSON from the dashboard's REST API, authenticated with the head's token unless told otherwise."""
    req = urllib.request.Request(head.dashboard_url + path, method=method)
    req.add_header("Authorization", f"Bearer {head.token if token is None else token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def _wait_for_jobs_api(head: RayHead, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{_tail(log)}")
        try:
            jobs_api(head, "/api/jobs/", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            last = e
            time.sleep(0.25)
    raise TimeoutError(f"Jobs API at {head.dashboard_url} not answering after {timeout_s}s ({last}):\n{_tail(log)}")


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def _session_pids(sid: int) -> list[int]:
    """Live processes in session ``sid`` (Ray workers get their own process group, but keep the session)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, _pgrp, session = stat.read_text().rsplit(")", 1)[1].split()[:4]
        except OSError:
            continue  # exited meanwhile
        if int(session) == sid and state != "Z":  # zombies are dead already, just not reaped
            pids.append(int(stat.parent.name))
    return pids


def stop_head(head: RayHead, proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM `ray start --block` (it tears its node down), then SIGKILL whatever is left of its session."""
    deadline = time.monotonic() + grace_s
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    while proc.poll() is None or _session_pids(head.pid):
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    for pid in _session_pids(head.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


@contextlib.contextmanager
def running_head(num_cpus: int = 2, start_timeout_s: float = 120, extra_args: Sequence[str] = ()) -> Iterator[RayHead]:
    """A head with dashboard + Jobs API on 127.0.0.1 and token auth on; stopped and removed on exit."""
    base = Path(tempfile.mkdtemp(prefix="rr_", dir="/tmp"))  # short: unix socket paths are <= 107 chars
    token = secrets.token_hex(32)
    token_file = base / "auth_token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    temp_dir, log = base / "r", base / "ray_start.log"
    gcs_port, dash_port, client_port, agent_port = free_ports(4)
    auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    server_env = {
        **{k: v for k, v in os.environ.items() if k not in _SCRUB},
        **auth_env,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # no drain wait on SIGTERM: faster teardown
    }
    cmd = [
        "ray", "start", "--head", "--block", "--disable-usage-stats",
        "--port", str(gcs_port),
        "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash_port),
        "--num-cpus", str(num_cpus), "--temp-dir", str(temp_dir),
        # A marker resource: a job that sees it ran on this head, not on a Ray it started itself.
        "--resources", json.dumps({HEAD_MARKER: 1}),
        # Fixed defaults (10001, 52365) would clash with another Ray on this machine.
        "--ray-client-server-port", str(client_port), "--dashboard-agent-listen-port", str(agent_port),
        *extra_args,
    ]  # fmt: skip
    dashboard_url = f"http://127.0.0.1:{dash_port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=server_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    head = RayHead(
        address=f"127.0.0.1:{gcs_port}",
        dashboard_url=dashboard_url,
        env={**auth_env, "RAY_ADDRESS": dashboard_url, "RAY_API_SERVER_ADDRESS": dashboard_url},
        temp_dir=temp_dir,
        token=token,
        pid=proc.pid,
    )
    try:
        t0 = time.monotonic()
        _wait_for_jobs_api(head, proc, log, start_timeout_s)
        print(f"ray head up in {time.monotonic() - t0:.1f}s at {dashboard_url} (gcs {head.address})")
        yield head
    finally:
        stop_head(head, proc)
        shutil.rmtree(base, ignore_errors=True)


def ray_cli(args: Sequence[str], env: dict[str, str], cwd: Path | None = None, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["ray", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)


def submit_job(
    head: RayHead,
    entrypoint: str,
    working_dir: Path,
    timeout_s: float = 600,
    *,
    runtime_env: dict[str, Any] | None = None,
    poll_s: float = 0.5,
) -> tuple[str, str]:
    """`ray job submit --working-dir ... --no-wait` for real, then poll the Jobs API until a terminal status.

    ``runtime_env`` goes in as ``--runtime-env-json`` (e.g. ``{"excludes": [...]}``). Returns (status, logs).
    """
    submission_id = f"rr_{uuid.uuid4().hex[:12]}"
    args = ["job", "submit", "--submission-id", submission_id, "--working-dir", str(working_dir), "--no-wait"]
    if runtime_env:
        args += ["--runtime-env-json", json.dumps(runtime_env)]
    t0 = time.monotonic()
    done = ray_cli([*args, "--", *shlex.split(entrypoint)], head.client_env(), cwd=working_dir, timeout_s=timeout_s)
    submitted = time.monotonic()
    print(f"ray job submit {submission_id}: {submitted - t0:.1f}s (rc {done.returncode})")
    if done.returncode != 0:
        raise RuntimeError(f"ray job submit failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    status = _poll_status(head, submission_id, submitted + timeout_s, poll_s)
    print(f"job {submission_id}: {status} {time.monotonic() - submitted:.1f}s after submit")
    return status, jobs_api(head, f"/api/jobs/{submission_id}/logs")["logs"]


def _poll_status(head: RayHead, submission_id: str, deadline: float, poll_s: float) -> str:
    while True:
        status = jobs_api(head, f"/api/jobs/{submission_id}")["status"]
        if status in TERMINAL:
            return status
        if time.monotonic() > deadline:
            with contextlib.suppress(urllib.error.URLError):
                jobs_api(head, f"/api/jobs/{submission_id}/stop", method="POST")
            logs = jobs_api(head, f"/api/jobs/{submission_id}/logs")["logs"]
            raise TimeoutError(f"job {submission_id} still {status} at the deadline; stopped it. Logs:\n{logs[-4000:]}")
        time.sleep(poll_s)
