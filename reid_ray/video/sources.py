"""Which videos a job reads: files, folders, S3 prefixes and manifests, each with its licence checked.

``list_sources`` returns VIDEO rows for usable sources and ERROR rows (stage "sources") for refused ones.
Only a spec that cannot be used at all (a path that does not exist, an empty S3 prefix, an unreadable
manifest) raises ``SourceError``, which the job turns into exit code 2 before any work.

Spec forms (several may be joined with commas):
  - a video file (listed whatever its suffix: decoding reports a file that is no video);
  - a folder (recursive, files whose suffix is in ``SourcesConfig.extensions``, sorted by relative path);
  - ``s3://bucket/prefix`` (keys with a video suffix; a key named exactly is listed whatever its suffix),
    or ``s3://bucket/path/manifest.csv``;
  - a manifest ``.parquet`` / ``.csv`` / ``.jsonl`` / ``.json`` with columns ``video_id``, ``uri``, ``license``;
    other columns go to ``metadata`` (a JSON object). Relative uris resolve against the manifest's folder.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import posixpath
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import boto3
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from reid_ray.config import SourcesConfig
from reid_ray.schemas import error_row

STAGE = "sources"
MANIFEST_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
_MANIFEST_KEYS = ("video_id", "uri", "license")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class SourceError(Exception):
    """A source spec that cannot be used at all; the message names it."""


@dataclass
class _Entry:
    """One candidate source before ids and licences are settled."""

    uri: str
    license: str | None = None
    video_id: str | None = None  # given by a manifest; None: derived from the uri's stem
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # "manifest.csv line 3", for messages
    error: str = ""  # set when the entry is refused before ids and licences
    error_type: str = ""


# ---------------------------------------------------------------------------------------------- S3 helpers


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b.mp4`` -> ("bucket", "a/b.mp4")."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// uri: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3 uri without a bucket: {uri}")
    return bucket, key


def make_s3_client(cfg: SourcesConfig):
    # endpoint_url=None lets boto3 use its own resolution, which honours AWS_ENDPOINT_URL(_S3).
    return boto3.client("s3", endpoint_url=cfg.s3_endpoint_url or None)


# ---------------------------------------------------------------------------------------------- public API


def list_sources(spec: str, cfg: SourcesConfig) -> tuple[list[dict], list[dict]]:
    """(VIDEO rows, ERROR rows) for a spec; raises SourceError for a spec that does not exist."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise SourceError("no source given: expected a video file, a folder, a manifest or s3://bucket/prefix")
    entries = [entry for part in parts for entry in _expand(part, cfg)]
    return _settle(entries, cfg)


def refusal_lines(refused: Sequence[dict], where: str, limit: int = 5) -> list[str]:
    """For the console: each refused source's id (else its uri) and why, the first ``limit``, then how many more
    (all of them are in ``where``, the run's records)."""
    lines = [f"{r['video_id'] or r['uri']}: {r['message'].splitlines()[0] if r['message'] else r['error_type']}"
             for r in refused[:limit]]
    if len(refused) > limit:
        lines.append(f"and {len(refused) - limit} more (all in {where})")
    return lines


def source_key(video: dict, fingerprint: str) -> str:
    """What a video's outputs were made from (its uri, licence and content fingerprint): outputs kept under the same
    id are reused only while this key holds."""
    payload = json.dumps([video["uri"], video["license"], fingerprint])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def sanitize_id(text: str) -> str:
    """Keep [A-Za-z0-9_.-]; no leading dot or dash (ids become file names and command-line values)."""
    return _UNSAFE_ID_CHARS.sub("_", text).lstrip(".-")


# ---------------------------------------------------------------------------------------------- expansion


def _expand(part: str, cfg: SourcesConfig) -> list[_Entry]:
    if part.startswith("s3://"):
        return _expand_s3(part, cfg)
    path = Path(part[len("file://") :] if part.startswith("file://") else part).expanduser()
    if not path.exists():
        raise SourceError(
            f"source '{part}' does not exist (expected a video file, a folder, "
            f"a manifest {'/'.join(MANIFEST_SUFFIXES)} or s3://bucket/prefix)"
        )
    if path.is_dir():
        return _list_folder(path, cfg)
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        base = path.resolve().parent
        return _manifest_entries(_read_manifest(path, path.name), lambda uri: _resolve_local(uri, base))
    return [_Entry(uri=str(path.resolve()))]  # named explicitly: listed even if not a video


def _extensions(cfg: SourcesConfig) -> set[str]:
    return {(e if e.startswith(".") else "." + e).lower() for e in cfg.extensions}


def _list_folder(folder: Path, cfg: SourcesConfig) -> list[_Entry]:
    exts = _extensions(cfg)
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts]
    files.sort(key=lambda p: p.relative_to(folder).as_posix())  # deterministic ids when stems repeat
    return [_Entry(uri=str(p.resolve())) for p in files]


def _expand_s3(spec: str, cfg: SourcesConfig) -> list[_Entry]:
    try:
        bucket, prefix = split_s3_uri(spec)
    except ValueError as err:
        raise SourceError(str(err)) from None
    client = make_s3_client(cfg)
    keys = _list_keys(client, bucket, prefix, spec)
    if prefix in keys and PurePosixPath(prefix).suffix.lower() in MANIFEST_SUFFIXES:
        return _s3_manifest(client, bucket, prefix)
    exts = _extensions(cfg)
    chosen = [
        k
        for k in sorted(keys)
        if k == prefix or (not k.endswith("/") and PurePosixPath(k).suffix.lower() in exts)
    ]
    return [_Entry(uri=f"s3://{bucket}/{k}") for k in chosen]


def _list_keys(client, bucket: str, prefix: str, spec: str) -> list[str]:
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    except (ClientError, BotoCoreError) as err:
        raise SourceError(f"source '{spec}' cannot be listed: {err}") from None
    if not keys:
        raise SourceError(f"source '{spec}' does not exist: no objects under that prefix")
    return keys


def _s3_manifest(client, bucket: str, key: str) -> list[_Entry]:
    base = posixpath.dirname(key)
    with tempfile.TemporaryDirectory(prefix="reid_ray_manifest_") as tmp:
        local = Path(tmp) / PurePosixPath(key).name
        try:
            client.download_file(bucket, key, str(local))
        except (ClientError, BotoCoreError) as err:
            raise SourceError(f"manifest s3://{bucket}/{key} cannot be read: {err}") from None
        rows = _read_manifest(local, f"s3://{bucket}/{key}")
    return _manifest_entries(rows, lambda uri: _resolve_s3(uri, bucket, base))


# ---------------------------------------------------------------------------------------------- manifests


def _read_manifest(path: Path, name: str) -> list[tuple[str, dict | str]]:
    """(where, row) pairs; a row is an error message (str) when that line cannot be parsed."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return _read_parquet(path, name)
        if suffix == ".csv":
            return _read_csv(path, name)
        return _read_json(path, name)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as err:
        raise SourceError(f"manifest {name} cannot be read: {err}") from None


def _require_uri_column(columns: list[str], name: str) -> None:
    # A whole column missing is a wrong file, not a bad row: stop the job rather than emit N error rows.
    if "uri" not in columns:
        raise SourceError(f"manifest {name} has no 'uri' column (columns: {', '.join(columns) or 'none'})")


def _read_parquet(path: Path, name: str) -> list[tuple[str, dict | str]]:
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise SourceError(f"manifest {name} cannot be read as parquet: {err}") from None
    _require_uri_column(table.column_names, name)
    return [(f"{name} row {i + 1}", row) for i, row in enumerate(table.to_pylist())]


def _read_csv(path: Path, name: str) -> list[tuple[str, dict | str]]:
    out: list[tuple[str, dict | str]] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        _require_uri_column([c for c in (reader.fieldnames or [])], name)
        for row in reader:
            # line_num is the line the record ended on: right even with quoted newlines inside fields.
            out.append((f"{name} line {reader.line_num}", {k: v for k, v in row.items() if k is not None}))
    return out


def _read_json(path: Path, name: str) -> list[tuple[str, dict | str]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # many ".json" manifests are JSON Lines: parse them as such below
        if isinstance(data, list):
            return [(f"{name} item {i + 1}", _json_row(r)) for i, r in enumerate(data)]
        if isinstance(data, dict):
            return [(f"{name} item 1", data)]
    out: list[tuple[str, dict | str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{name} line {n}", _json_row(json.loads(line))))
        except json.JSONDecodeError as err:
            out.append((f"{name} line {n}", f"not valid JSON ({err.msg})"))
    return out


def _json_row(value: Any) -> dict | str:
    return value if isinstance(value, dict) else f"not a JSON object (got {type(value).__name__})"


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value).strip() or None


def _json_safe(value: Any) -> Any:
    # NaN is not JSON; a parquet/CSV null becomes null.
    return None if isinstance(value, float) and math.isnan(value) else value


def _manifest_entries(rows: list[tuple[str, dict | str]], resolve: Callable[[str], tuple[str, str]]) -> list[_Entry]:
    entries = []
    for where, row in rows:
        if isinstance(row, str):
            entries.append(_Entry(uri="", where=where, error=f"{where}: {row}", error_type="manifest"))
            continue
        vid, raw_uri, lic = (_text(row.get(k)) for k in _MANIFEST_KEYS)
        meta = {str(k): _json_safe(v) for k, v in row.items() if k not in _MANIFEST_KEYS}
        entry = _Entry(uri="", license=lic, video_id=vid, metadata=meta, where=where)
        if raw_uri is None:
            entry.error, entry.error_type = f"{where}: missing 'uri'", "manifest"
        else:
            entry.uri, problem = resolve(raw_uri)
            if problem:
                entry.error, entry.error_type = f"{where}: {problem}", "missing" if "not exist" in problem else "uri"
        entries.append(entry)
    return entries


def _resolve_local(uri: str, base: Path) -> tuple[str, str]:
    """(resolved uri, problem) for a uri in a local manifest."""
    if uri.startswith("s3://"):
        return uri, ""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        return uri, f"unsupported uri scheme in '{uri}' (only local paths and s3://)"
    path = Path(uri).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    if not path.exists():
        return str(path), f"file {path} does not exist"
    return str(path), ""


def _resolve_s3(uri: str, bucket: str, base: str) -> tuple[str, str]:
    """(resolved uri, problem) for a uri in a manifest stored on S3: relative ones are keys beside it."""
    if uri.startswith("s3://") or uri.startswith("/"):
        return uri, ""
    if "://" in uri:
        return uri, f"unsupported uri scheme in '{uri}' (only local paths and s3://)"
    key = posixpath.normpath(posixpath.join(base, uri))
    if key.startswith("../") or key == "..":
        return uri, f"relative uri '{uri}' leaves the bucket"
    return f"s3://{bucket}/{key}", ""


# ---------------------------------------------------------------------------------------------- ids, licences


def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def _uri_stem(uri: str) -> str:
    return PurePosixPath(uri.rstrip("/")).stem if uri.startswith("s3://") else Path(uri).stem


def _assign_id(entry: _Entry, used: set[str]) -> tuple[str, str]:
    """(video_id, problem). Manifest ids are authoritative and kept exactly (a clash is an error; files are named
    by ``reid_ray.names.safe_name``); derived ids are sanitised and get a hash on a clash."""
    if entry.video_id is not None and entry.video_id.strip():
        vid = entry.video_id
        if vid in used:
            return vid, f"{entry.where}: duplicate video_id '{vid}' (the first use is kept)"
        return vid, ""
    base = sanitize_id(_uri_stem(entry.uri)) or "video"
    vid, n = base, 8
    while vid in used:  # deterministic: the same uri always gets the same suffix
        vid, n = f"{base}-{_short_hash(entry.uri, n)}", n + 4
    return vid, ""


def _license_problem(license_: str | None, cfg: SourcesConfig) -> str:
    allowed = ", ".join(cfg.allowed_licenses) or "none"
    if not license_:
        return f"no licence: the source carries none and sources.default_license is not set (allowed: {allowed})"
    if license_ not in cfg.allowed_licenses:
        return f"licence '{license_}' is not allowed (allowed: {allowed})"
    return ""


def _settle(entries: list[_Entry], cfg: SourcesConfig) -> tuple[list[dict], list[dict]]:
    videos: list[dict] = []
    errors: list[dict] = []
    used_ids: set[str] = set()
    seen_uris: dict[str, str] = {}

    def refuse(entry: _Entry, message: str, error_type: str, vid: str = "") -> None:
        errors.append(error_row(STAGE, message, video_id=vid, uri=entry.uri, error_type=error_type))

    for entry in entries:
        if entry.error:
            refuse(entry, entry.error, entry.error_type, entry.video_id or "")
            continue
        if entry.uri in seen_uris:
            where = f"{entry.where}: " if entry.where else ""
            refuse(entry, f"{where}duplicate source: {entry.uri} is already listed as '{seen_uris[entry.uri]}'", "duplicate")
            continue
        vid, problem = _assign_id(entry, used_ids)
        if problem:
            refuse(entry, problem, "duplicate", vid)
            continue
        used_ids.add(vid)
        seen_uris[entry.uri] = vid
        license_ = entry.license or cfg.default_license
        problem = _license_problem(license_, cfg)
        if problem:
            refuse(entry, problem, "license", vid)  # never used, but its id stays taken: ids stay stable
            continue
        metadata = json.dumps(entry.metadata, sort_keys=True, default=str)
        videos.append({"video_id": vid, "uri": entry.uri, "license": license_, "metadata": metadata})
    return videos, errors
