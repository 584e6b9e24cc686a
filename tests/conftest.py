"""Shared fixtures: a real local Ray (in-process, and a `ray start --head` with token auth for `ray job submit`)
and a real S3 API server (moto_server) on loopback."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """One in-process local Ray for the tests that run pipelines: 2 CPUs, like CI."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_head():
    """A real local Ray head (ray start --head) with token auth, on private ports and a private temp dir.

    Yields ray_helpers.RayHead: .address (GCS), .dashboard_url, .env (RAY_AUTH_MODE=token,
    RAY_AUTH_TOKEN_PATH, RAY_ADDRESS); .client_env() merges .env into a clean copy of os.environ.
    Stopped at session end by signalling only its own processes (no `ray stop`).
    """
    if shutil.which("ray") is None:
        pytest.skip("the `ray` CLI is not on PATH")
    from ray_helpers import running_head

    with running_head(num_cpus=2) as head:
        yield head


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_answers(url: str, proc: subprocess.Popen, log_path, timeout_s: float = 30.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            opener.open(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is serving
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer on {url} within {timeout_s:.0f} s: {log_path.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def _s3_server_process(tmp_path_factory):
    """One moto_server for the session (startup takes a second or two); tests use distinct buckets."""
    exe = shutil.which("moto_server")
    if exe is None:
        pytest.skip("moto_server is not on PATH (pip install 'moto[server]')")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("moto_server") / "moto_server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answers(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_server(_s3_server_process, monkeypatch):
    """Endpoint URL of a real S3 API server on loopback, with dummy credentials in the environment
    (restored after the test). Real AWS settings of the machine are hidden so nothing leaves it."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    return _s3_server_process
