"""Where every output lives under ``--out`` (a local directory or ``s3://bucket/prefix``: ``reid_ray.storage``)
and how it is written: atomically, under names derived from the work item, so a rerun finds finished work and
never writes a duplicate."""
from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from reid_ray.storage import OutPath, S3Path, filesystem_and_path, out_root

SUBDIRS = ("clip_pairs", "candidates", "bridges", "proposals", "calibration", "review", "pairs", "errors")


def video_dir_name(video_id: str) -> str:
    """A video's directory and file name: ids are free text (any length, any script, slashes)."""
    from reid_ray.names import safe_name

    return safe_name(video_id)


def clip_pair_name(video_id: str, clip_pair_id: str) -> str:
    """A clip pair's file name inside its video's directory: its frames, without the video id it starts with."""
    from reid_ray.names import safe_name

    prefix = f"{video_id}__"
    return clip_pair_id[len(prefix):] if clip_pair_id.startswith(prefix) else safe_name(clip_pair_id)


def candidates_path(out: Path, video_id: str, clip_pair_id: str) -> OutPath:
    """Both clips' candidates of one clip pair (column ``side``)."""
    return out_root(out) / "candidates" / video_dir_name(video_id) / f"{clip_pair_name(video_id, clip_pair_id)}.parquet"


def proposals_path(out: Path, video_id: str, clip_pair_id: str) -> OutPath:
    """One clip pair's proposed pairs before routing (schema PROPOSAL)."""
    return out_root(out) / "proposals" / video_dir_name(video_id) / f"{clip_pair_name(video_id, clip_pair_id)}.parquet"


def bridges_path(out: Path, video_id: str, clip_pair_id: str) -> OutPath:
    return out_root(out) / "bridges" / video_dir_name(video_id) / f"{clip_pair_name(video_id, clip_pair_id)}.parquet"


def pairs_path(out: Path, video_id: str) -> OutPath:
    return out_root(out) / "pairs" / f"{video_dir_name(video_id)}.parquet"


def calibration_samples_path(out: Path, video_id: str, clip_pair_id: str) -> OutPath:
    """A clip pair's certain pairs and proposal distances; its presence marks the clip pair's model work finished."""
    return out_root(out) / "calibration" / video_dir_name(video_id) / f"{clip_pair_name(video_id, clip_pair_id)}.parquet"


def clip_pairs_path(out: Path, video_id: str) -> OutPath:
    return out_root(out) / "clip_pairs" / f"{video_dir_name(video_id)}.parquet"


def errors_path(out: Path, name: str) -> OutPath:
    return out_root(out) / "errors" / f"{name}.parquet"


def video_errors_path(out: Path, stage: str, video_id: str) -> OutPath:
    return out_root(out) / "errors" / stage / f"{video_dir_name(video_id)}.parquet"


def clip_pair_errors_path(out: Path, stage: str, video_id: str, clip_pair_id: str) -> OutPath:
    return out_root(out) / "errors" / stage / video_dir_name(video_id) / f"{clip_pair_name(video_id, clip_pair_id)}.parquet"


def retire_video(out: OutPath, video_id: str) -> None:
    """Remove everything made from a video's earlier source (another file, licence or content under the same id,
    or a licence now refused): its pairs leave the dataset, and a rerun makes them again from what is there now."""
    from reid_ray.storage import rmtree

    name = video_dir_name(video_id)
    root = out_root(out)
    for sub in ("candidates", "bridges", "proposals", "calibration"):
        rmtree(root / sub / name)
    for path in (pairs_path(root, video_id), clip_pairs_path(root, video_id)):
        path.unlink(missing_ok=True)
    rmtree(root / "errors" / "segment" / name)
    for stage in ("probe", "route"):
        video_errors_path(root, stage, video_id).unlink(missing_ok=True)


def stage_stats_dir(out: Path, stage: str) -> OutPath:
    return out_root(out) / "_stats" / stage


def _tmp_sibling(path: Path) -> Path:
    """A hidden name beside ``path`` ending in ``.tmp``: listings of ``*.parquet`` and of visible files skip it."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Local temp paths beside ``paths`` for the block to write (with any writer: text, Parquet, a download),
    renamed over ``paths`` in order only when the block ends without an error; on an error they are removed and the
    old files stay as they were. A crash leaves the old file or the new one, never half a file."""
    paths = [Path(p) for p in paths]
    tmps = [_tmp_sibling(p) for p in paths]
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        yield tmps
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)  # no-op after the rename


@contextmanager
def atomic_files(*paths: str | os.PathLike, fsync: bool = False) -> Iterator[list[TextIO]]:
    """``atomic_paths`` opened as UTF-8 text files, for text that streams (one record at a time). ``fsync``: flush
    each file to disk before the rename (the review files, which hold people's work)."""
    with atomic_paths(*paths) as tmps:
        files: list[TextIO] = []
        try:
            for tmp in tmps:
                files.append(open(tmp, "w", encoding="utf-8"))
            yield files
            for f in files:
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
        finally:
            for f in files:
                f.close()


def write_table_atomic(table: pa.Table, path: OutPath) -> OutPath:
    """Write then rename (``atomic_paths``); an S3 object is whole or absent already."""
    if isinstance(path, S3Path):
        pq.write_table(table, path.key, filesystem=path.fs)
        return path
    with atomic_paths(path) as (tmp,):
        pq.write_table(table, tmp)
    return Path(path)


def write_text_atomic(text: str, path: OutPath, *, fsync: bool = False) -> OutPath:
    """``write_table_atomic`` for text (UTF-8): a reader sees the old file or the new one. ``fsync``: as in
    ``atomic_files``."""
    if isinstance(path, S3Path):
        path.write_text(text)
        return path
    with atomic_files(path, fsync=fsync) as (f,):
        f.write(text)
    return Path(path)


def write_json_atomic(obj, path: OutPath) -> OutPath:
    return write_text_atomic(json.dumps(obj, indent=2, sort_keys=True, default=str), path)


def _parquet_files(root: OutPath):
    """Every visible Parquet file under ``root``, in path order, listed a directory at a time (a local tree is never
    listed whole). Hidden files (``.name.tmp`` of writes in flight) are skipped."""
    if isinstance(root, S3Path):
        yield from (p for p in root.rglob("*.parquet") if not p.name.startswith("."))
        return
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_dir():
            yield from _parquet_files(Path(e.path))
        elif e.name.endswith(".parquet"):
            yield Path(e.path)


def parquet_batches(root: Path, columns: list[str], schema: pa.Schema, filter=None, batch_size: int = 65_536, threads: int = 4):
    """Record batches of every Parquet file under ``root`` (recursively, in path order), about ``batch_size`` rows at
    a time: memory bounded by a batch and the files in flight, not by the corpus. ``filter``: a pyarrow expression.

    Written here rather than with ``pyarrow.dataset``: a dataset keeps an object per file it discovered, and the job
    reads one file per clip pair, so the driver's memory would grow with the corpus (README, Measured). Files are
    read a few at a time on threads (pyarrow releases the GIL while it reads)."""
    from concurrent.futures import ThreadPoolExecutor
    from itertools import islice

    root = out_root(root)
    if not root.is_dir():
        return
    # The filter's own columns are read too (named in its text; an extra column read is harmless), then dropped.
    read_columns = [n for n in schema.names if n in columns or (filter is not None and n in str(filter))]
    wanted = pa.schema([schema.field(c) for c in read_columns])

    def read(path: OutPath) -> pa.Table:
        table = read_parquet(path, columns=read_columns)
        table = table.cast(wanted) if table.schema != wanted else table
        return (table.filter(filter) if filter is not None else table).select(columns)

    files = _parquet_files(root)
    pending: list[pa.Table] = []
    rows = 0
    with ThreadPoolExecutor(threads) as pool:
        while chunk := list(islice(files, 4 * threads)):
            for table in pool.map(read, chunk):
                if table.num_rows:
                    pending.append(table)
                    rows += table.num_rows
                if rows >= batch_size:  # whole batches out, the rest kept for the next
                    table = pa.concat_tables(pending).combine_chunks()
                    full = rows - rows % batch_size
                    yield from table.slice(0, full).to_batches(max_chunksize=batch_size)
                    pending, rows = ([table.slice(full)] if rows > full else []), rows - full
    if pending:
        yield from pa.concat_tables(pending).combine_chunks().to_batches(max_chunksize=batch_size)


def write_or_remove(rows: list[dict], schema: pa.Schema, path: OutPath) -> None:
    """Error records that describe the latest attempt: written when there are some, removed when there are none."""
    if rows:
        write_table_atomic(pa.Table.from_pylist(rows, schema=schema), path)
    else:
        path.unlink(missing_ok=True)


def read_parquet(path: OutPath, schema: pa.Schema | None = None, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file. Read through ``ParquetFile``: ``pq.read_table`` sets up dataset discovery per call, several
    times slower on the many small files the job reads. ``schema``: the columns' types the caller expects."""
    fs, where = filesystem_and_path(path)
    if fs is None:
        table = pq.ParquetFile(where).read(columns=columns)
    else:
        with fs.open_input_file(where) as f:
            table = pq.ParquetFile(f).read(columns=columns)
    if schema is not None and table.schema != schema:
        table = table.select(schema.names).cast(schema)
    return table


def read_parquet_schema(path: OutPath) -> pa.Schema:
    fs, where = filesystem_and_path(path)
    if fs is None:
        return pq.read_schema(where)
    with fs.open_input_file(where) as f:
        return pq.read_schema(f)


def read_tables(paths: list[OutPath], schema: pa.Schema) -> pa.Table:
    tables = [read_parquet(p, schema=schema) for p in sorted(paths)]
    return pa.concat_tables(tables) if tables else schema.empty_table()
