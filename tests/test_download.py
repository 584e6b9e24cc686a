"""fetch_verified / ensure_model_file against a real HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import pytest

from loopback_http import LoopbackServer
from reid_ray.models.download import ChecksumError, DownloadError, ensure_model_file, fetch_verified

PAYLOAD = b"tiny model bytes \x00\x01\x02"
GOOD = hashlib.sha256(PAYLOAD).hexdigest()
OTHER = hashlib.sha256(b"some other export").hexdigest()
# What Google Drive sends instead of a file when it wants a confirmation or the file's quota is spent.
HTML_PAGE = (b"<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title></html>", "text/html; charset=utf-8")


class _Server(LoopbackServer):
    """Serves ``PAYLOAD`` at /model.bin and a web page at /page.html, 404 elsewhere."""

    def __init__(self) -> None:
        super().__init__({"/model.bin": PAYLOAD, "/page.html": HTML_PAGE})

    def url(self, path: str = "/model.bin") -> str:
        return super().url(path)


@pytest.fixture
def server() -> Iterator[_Server]:
    with _Server() as s:
        yield s


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".part"))


def test_good_download(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "model.bin"
    assert fetch_verified(server.url(), dest, GOOD) == dest
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == ["/model.bin"]
    assert _leftovers(dest.parent) == []


def test_second_call_does_not_download_again(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    fetch_verified(server.url(), dest, GOOD)
    fetch_verified(server.url(), dest, GOOD)
    assert len(server.requests) == 1


def test_wrong_checksum_names_both_and_removes_temp(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    with pytest.raises(ChecksumError) as err:
        fetch_verified(server.url(), dest, OTHER)
    msg = str(err.value)
    assert OTHER in msg and GOOD in msg and server.url() in msg
    assert (err.value.expected, err.value.actual) == ((OTHER,), GOOD)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_404_is_a_download_error_with_a_hint(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    with pytest.raises(DownloadError) as err:
        fetch_verified(server.url("/missing.bin"), dest, GOOD)
    assert not isinstance(err.value, ChecksumError)
    msg = str(err.value)
    assert "404" in msg and "/missing.bin" in msg and "REID_RAY_MODELS_DIR" in msg and str(dest) in msg
    assert list(tmp_path.iterdir()) == []


def test_a_web_page_instead_of_the_file_is_a_download_error(server: _Server, tmp_path: Path) -> None:
    """Not a checksum mismatch: the message says the server answered with a page, and where to put the file."""
    dest = tmp_path / "model.bin"
    with pytest.raises(DownloadError) as err:
        fetch_verified(server.url("/page.html"), dest, GOOD)
    assert not isinstance(err.value, ChecksumError)
    msg = str(err.value)
    assert "web page" in msg and "/page.html" in msg and str(dest) in msg
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_a_download_error(tmp_path: Path) -> None:
    # A port nobody listens on: a closed server socket's port, freed just before use.
    s = _Server()
    url = s.url()
    s.close()
    with pytest.raises(DownloadError, match="could not download"):
        fetch_verified(url, tmp_path / "model.bin", GOOD, timeout_s=5)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_reused_without_a_request(server: _Server, tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(PAYLOAD)
    got = ensure_model_file(tmp_path, "model.bin", server.url(), (OTHER, GOOD.upper()))
    assert got == tmp_path / "model.bin"
    assert server.requests == []


def test_existing_file_is_used_when_no_url(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(PAYLOAD)
    assert ensure_model_file(tmp_path, "model.bin", None, GOOD) == tmp_path / "model.bin"


def test_missing_file_is_downloaded(server: _Server, tmp_path: Path) -> None:
    got = ensure_model_file(tmp_path / "models", "model.bin", server.url(), (OTHER, GOOD))
    assert got.read_bytes() == PAYLOAD
    assert server.requests == ["/model.bin"]


def test_corrupt_file_is_replaced(server: _Server, tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"truncated")
    got = ensure_model_file(tmp_path, "model.bin", server.url(), GOOD)
    assert got.read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def test_missing_file_without_url_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="REID_RAY_MODELS_DIR"):
        ensure_model_file(tmp_path, "model.bin", None, GOOD)


def test_bad_checksum_argument_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        fetch_verified("http://127.0.0.1:9/x", tmp_path / "m", "abc")
