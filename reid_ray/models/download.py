"""Model files fetched once, checked against a pinned SHA-256, and written atomically.

A file already in the models directory with an accepted checksum is used as is (no network), so machines
without internet access work when someone puts the file there (env ``REID_RAY_MODELS_DIR``).
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from reid_ray.config import MODELS_DIR_ENV

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
Checksums = str | tuple[str, ...] | list[str]


class DownloadError(RuntimeError):
    """The file could not be fetched; the message says where to put it by hand."""


class ChecksumError(DownloadError):
    """The bytes fetched are not the pinned file (wrong URL, truncated or tampered download)."""

    def __init__(self, url: str, expected: tuple[str, ...], actual: str) -> None:
        self.url, self.expected, self.actual = url, expected, actual
        super().__init__(
            f"checksum mismatch for {url}: expected sha256 {' or '.join(expected)}, got {actual}; "
            "the downloaded file was discarded"
        )


def accepted_checksums(sha256: Checksums) -> tuple[str, ...]:
    """One pinned value or several (e.g. the official file and a re-export of it), lower-cased."""
    values = (sha256,) if isinstance(sha256, str) else tuple(sha256)
    if not values or not all(isinstance(v, str) and len(v) == 64 for v in values):
        raise ValueError(f"sha256 must be one or more 64-hex-digit strings, got {sha256!r}")
    return tuple(v.lower() for v in values)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def has_checksum(path: Path, sha256: Checksums) -> bool:
    return path.is_file() and sha256_of(path) in accepted_checksums(sha256)


def _manual_hint(dest: Path) -> str:
    return (
        f"If this machine cannot reach the internet, download the file elsewhere and put it at {dest} "
        f"(or in the directory named by the {MODELS_DIR_ENV} environment variable)."
    )


def _stream(url: str, out: BinaryIO, timeout_s: float) -> str:
    """Copy the response body into ``out``; return its sha256. Network failures become DownloadError."""
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            if resp.headers.get_content_type() == "text/html":  # no model file is served as a page
                raise DownloadError(
                    "the server sent a web page, not the file (Google Drive does this when it asks to confirm a "
                    "download or the file's download quota is spent; try again later or fetch it with a browser)"
                )
            for chunk in iter(lambda: resp.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise DownloadError(str(e.reason)) from e
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise DownloadError(f"{type(e).__name__}: {e}") from e
    return h.hexdigest()


def fetch_verified(url: str, dest: Path, sha256: Checksums, *, timeout_s: float = 60) -> Path:
    """``dest`` if it already matches; else download ``url`` next to it, verify, then rename into place.

    The temporary file lives in ``dest``'s directory so the final ``os.replace`` is atomic: a reader
    never sees a half-written model, and concurrent fetchers at worst both write the same bytes.
    """
    expected = accepted_checksums(sha256)
    dest = Path(dest)
    if has_checksum(dest, expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                actual = _stream(url, out, timeout_s)
            except DownloadError as e:
                raise DownloadError(f"could not download {url}: {e}. {_manual_hint(dest)}") from e
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; model files are shared, read-only data
        if actual not in expected:
            raise ChecksumError(url, expected, actual)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)  # no-op after a successful replace
    logger.info("downloaded %s -> %s (sha256 %s)", url, dest, actual)
    return dest


def ensure_model_file(models_dir: Path, filename: str, url: str | None, sha256: Checksums) -> Path:
    """``models_dir/filename`` with an accepted checksum: reused when present, else downloaded from ``url``."""
    dest = Path(models_dir).expanduser() / filename
    expected = accepted_checksums(sha256)
    if has_checksum(dest, expected):
        return dest
    if dest.exists():
        logger.warning("%s has an unexpected checksum; fetching a fresh copy", dest)
    if url is None:
        raise DownloadError(f"{dest} is missing (or its checksum is not an accepted one) and no download URL "
                            f"is known. {_manual_hint(dest)}")
    return fetch_verified(url, dest, expected)


def resolve_model_file(
    explicit: str | None, what: str, models_dir: Path, filename: str, url: str | None, sha256: Checksums
) -> Path:
    """The file a backend loads: an explicit path (a config key) wins and must exist; else ``models_dir/filename``
    through ``ensure_model_file``. ``what`` names the key and the file in the error, e.g. "segmenter.model: YOLOX file"."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"{what} {p} does not exist")
        return p
    return ensure_model_file(models_dir, filename, url, sha256)
