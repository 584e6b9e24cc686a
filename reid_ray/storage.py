"""Where a job's outputs live: a local directory (``pathlib.Path``) or ``s3://bucket/prefix`` (``S3Path``, over
pyarrow's S3 filesystem), behind the small part of pathlib the jobs use, so every stage writes the same way to
both. On a cluster without a shared filesystem, S3 is how every node sees every other node's outputs.

An S3 object appears whole or not at all (one PUT), so S3 writes need no temp-and-rename; the local ones do."""
from __future__ import annotations

import fnmatch
import os
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pyarrow.fs as pafs


def output_endpoint(endpoint_url: str | None) -> str | None:
    """The S3 endpoint for outputs: the config's (``sources.s3_endpoint_url``), else the AWS environment's."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@lru_cache(maxsize=8)
def s3_filesystem(endpoint_url: str | None) -> pafs.S3FileSystem:
    kwargs: dict = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    if endpoint_url:
        parsed = urlparse(endpoint_url)
        kwargs.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
    return pafs.S3FileSystem(**kwargs)


class S3Path:
    """``s3://bucket/key`` with the pathlib methods the jobs use."""

    def __init__(self, fs: pafs.FileSystem, key: str, endpoint_url: str | None = None) -> None:
        self.fs, self.key, self.endpoint_url = fs, key.strip("/"), endpoint_url

    # -- names
    def __truediv__(self, part: str | os.PathLike) -> "S3Path":
        return S3Path(self.fs, f"{self.key}/{str(part).strip('/')}", self.endpoint_url)

    def __str__(self) -> str:
        return f"s3://{self.key}"

    def __repr__(self) -> str:
        return f"S3Path({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Path) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __lt__(self, other: "S3Path") -> bool:
        return self.key < other.key

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.key).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    @property
    def parent(self) -> "S3Path":
        return S3Path(self.fs, str(PurePosixPath(self.key).parent), self.endpoint_url)

    def with_name(self, name: str) -> "S3Path":
        return self.parent / name

    def resolve(self) -> "S3Path":
        return self

    # -- queries
    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.key)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def _list(self, recursive: bool) -> list[pafs.FileInfo]:
        try:
            return self.fs.get_file_info(pafs.FileSelector(self.key, recursive=recursive, allow_not_found=True))
        except FileNotFoundError:
            return []

    def iterdir(self):
        return (S3Path(self.fs, i.path, self.endpoint_url) for i in sorted(self._list(False), key=lambda i: i.path))

    def glob(self, pattern: str):
        return (S3Path(self.fs, i.path, self.endpoint_url) for i in sorted(self._list(False), key=lambda i: i.path)
                if i.type == pafs.FileType.File and fnmatch.fnmatch(i.base_name, pattern))

    def rglob(self, pattern: str):
        return (S3Path(self.fs, i.path, self.endpoint_url) for i in sorted(self._list(True), key=lambda i: i.path)
                if i.type == pafs.FileType.File and fnmatch.fnmatch(i.base_name, pattern))

    # -- contents
    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.key) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        with self.fs.open_output_stream(self.key) as f:
            f.write(data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def open(self, mode: str = "rb"):
        if mode in ("rb", "r"):
            return self.fs.open_input_file(self.key)
        if mode == "wb":
            return self.fs.open_output_stream(self.key)
        raise ValueError(f"S3Path.open: mode {mode!r} is not supported")

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        """S3 has no folders; a bucket that does not exist is an error now, not after the work."""
        bucket = self.key.split("/", 1)[0]
        if self.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"S3 bucket {bucket} does not exist (or these credentials cannot see it)")

    def rmtree(self) -> None:
        if self.is_dir():
            self.fs.delete_dir_contents(self.key, missing_dir_ok=True)


OutPath = Path | S3Path


def out_root(where: str | os.PathLike | S3Path, endpoint_url: str | None = None) -> OutPath:
    """``s3://bucket/prefix`` -> S3Path, anything else -> Path."""
    if isinstance(where, (S3Path, Path)):
        return where
    text = str(where)
    if text.startswith("s3://"):
        endpoint = output_endpoint(endpoint_url)
        return S3Path(s3_filesystem(endpoint), text[len("s3://"):], endpoint)
    return Path(text)


def filesystem_and_path(path: OutPath) -> tuple[pafs.FileSystem | None, str]:
    """What pyarrow's readers and writers take: (filesystem, path) for S3, (None, local path) otherwise."""
    return (path.fs, path.key) if isinstance(path, S3Path) else (None, str(path))


def rmtree(path: OutPath) -> None:
    import shutil

    if isinstance(path, S3Path):
        path.rmtree()
    else:
        shutil.rmtree(path, ignore_errors=True)


def upload_file(local: Path, dest: OutPath) -> None:
    """A file made locally (a plot, a PNG) put where the outputs live."""
    if isinstance(dest, S3Path):
        dest.write_bytes(Path(local).read_bytes())
    elif Path(local) != Path(dest):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, dest)
