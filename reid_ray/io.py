"""Where every output lives under ``--out`` and how it is written: atomically, under names derived from the
work item, so a rerun finds finished work and never writes a duplicate."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SUBDIRS = ("clip_pairs", "candidates", "bridges", "calibration", "review", "pairs", "errors")


def candidates_path(out: Path, video_id: str, clip_pair_id: str, side: str) -> Path:
    return Path(out) / "candidates" / video_id / f"{clip_pair_id}__{side}.parquet"


def bridges_path(out: Path, video_id: str, clip_pair_id: str) -> Path:
    return Path(out) / "bridges" / video_id / f"{clip_pair_id}.parquet"


def pairs_path(out: Path, video_id: str) -> Path:
    return Path(out) / "pairs" / f"{video_id}.parquet"


def calibration_samples_path(out: Path, video_id: str) -> Path:
    """A video's certain pairs and proposal distances; its presence marks the video's model work finished."""
    return Path(out) / "calibration" / f"{video_id}.parquet"


def clip_pairs_path(out: Path, video_id: str) -> Path:
    return Path(out) / "clip_pairs" / f"{video_id}.parquet"


def errors_path(out: Path, name: str) -> Path:
    return Path(out) / "errors" / f"{name}.parquet"


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def write_table_atomic(table: pa.Table, path: Path) -> Path:
    """Write then rename: a crash leaves either the old file or the new one, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def write_json_atomic(obj, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path


def read_tables(paths: list[Path], schema: pa.Schema) -> pa.Table:
    tables = [pq.read_table(p, schema=schema) for p in sorted(paths)]
    return pa.concat_tables(tables) if tables else schema.empty_table()
