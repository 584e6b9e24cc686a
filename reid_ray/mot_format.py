"""MOTChallenge text files, read and written in this one module: ground truth and predictions (``gt.txt``, the
job's ``identities.txt``), public detections (``det.txt``) and the job's identities written back out.

Rows are ``frame,id,x,y,w,h[,conf[,class[,visibility[,extra]]]]`` with 1-based frames and 1-based pixel boxes
(x, y the top-left corner). Blank lines and lines starting with ``#`` are skipped. Errors name the file and its
own line number, so the parses are plain line loops and not ``pandas.read_csv`` (which loses the line number
once it skips blank lines).

- ``read_mot``: tracks (ground truth or a prediction) as a ``DataFrame``; an id twice in one frame is refused.
- ``read_public_detections``: detections (every id -1) as ``Instances`` per 0-based frame, 0-based xyxy boxes.
- ``to_mot`` / ``write_mot``: a video's identities (``reid_ray.tracking.exports.VideoTracks``) as rows that the
  two readers read back to the same boxes; ``mot_row`` one such row (the gold set's ``gt.txt`` too).
- ``gt_to_public_detections``: a ground-truth file as public detections (ids dropped), for tests and benches.
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reid_ray.io import write_text_atomic
from reid_ray.records import Instances

if TYPE_CHECKING:
    import pandas as pd

    from reid_ray.tracking.exports import VideoTracks

MOT_COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "class", "visibility", "extra")
MIN_COLUMNS, MAX_COLUMNS = 6, len(MOT_COLUMNS)


class MotFormatError(ValueError):
    """A MOTChallenge file that cannot be read; the message names the file and line."""


class DetectionsFormatError(ValueError):
    """A detections file that cannot be used; the message names the file and line."""


def _data_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, comma-separated fields) of each line that is neither blank nor a ``#`` comment."""
    with open(path, newline="") as fh:
        for lineno, fields in enumerate(csv.reader(fh), start=1):
            if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
                continue
            yield lineno, fields


def _numbers(fields: list[str], where: str, error: type[ValueError], layout: str = "") -> list[float]:
    """The row's 6 to 10 values as floats; ``layout`` is shown in the column-count message."""
    if not MIN_COLUMNS <= len(fields) <= MAX_COLUMNS:
        raise error(f"{where}: expected {MIN_COLUMNS} to {MAX_COLUMNS} comma-separated values{layout}, got {len(fields)}: {','.join(fields)!r}")
    try:
        return [float(f) for f in fields]
    except ValueError:
        raise error(f"{where}: not a number in {','.join(fields)!r}") from None


# ---------------------------------------------------------------------------------------------- tracks


def read_mot(path: str | os.PathLike) -> pd.DataFrame:
    """Rows ``frame,id,x,y,w,h[,conf[,class[,visibility[,extra]]]]`` (1-based frames, 6 to 10 columns) as a frame
    with the columns ``MOT_COLUMNS`` (``frame`` and ``id`` int64).

    Missing ``conf`` reads as 1 (counted). The other missing columns read as NaN.
    """
    import pandas as pd

    path = Path(path)
    rows: list[list[float]] = []
    seen: dict[tuple[int, int], int] = {}
    for lineno, fields in _data_lines(path):
        row = _parse_row(fields, path, lineno)
        key = (int(row[0]), int(row[1]))
        if key in seen:
            raise MotFormatError(f"{path}:{lineno}: id {key[1]} appears twice in frame {key[0]} (first on line {seen[key]})")
        seen[key] = lineno
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(MOT_COLUMNS)) if rows else pd.DataFrame(columns=list(MOT_COLUMNS), dtype=float)
    return df.astype({"frame": np.int64, "id": np.int64})


def _parse_row(fields: list[str], path: Path, lineno: int) -> list[float]:
    where = f"{path}:{lineno}"
    vals = _numbers(fields, where, MotFormatError)
    if not all(math.isfinite(v) for v in vals[:6]):
        raise MotFormatError(f"{where}: frame, id and box must be finite: {','.join(fields)!r}")
    frame, ident, _, _, w, h = vals[:6]
    if frame != int(frame) or frame < 1:
        raise MotFormatError(f"{where}: frame must be an integer >= 1 (MOTChallenge frames are 1-based), got {fields[0]!r}")
    if ident != int(ident):
        raise MotFormatError(f"{where}: id must be an integer, got {fields[1]!r}")
    if w < 0 or h < 0:
        raise MotFormatError(f"{where}: negative box width or height: {','.join(fields)!r}")
    if len(vals) == MIN_COLUMNS:
        vals.append(1.0)  # no confidence column: the row counts
    return vals + [math.nan] * (MAX_COLUMNS - len(vals))


# ---------------------------------------------------------------------------------------------- public detections


def read_public_detections(path: str | Path, n_frames: int, category: str = "person") -> list[Instances]:
    """Public detections ``frame,-1,x,y,w,h,conf[,...]``: one ``Instances`` per frame 0..n_frames-1 (empty where
    the file has none), boxes 0-based xyxy (x - 1, y - 1), so that writing them back 1-based (``to_mot``) gives the
    file's own boxes. Missing ``conf`` reads as 1.

    Not ``read_mot``: every row here has id -1, which that reader rightly refuses as a duplicate id.
    """
    path = Path(path)
    if not path.is_file():
        raise DetectionsFormatError(f"no detections file {path}")
    rows: dict[int, list[tuple[list[float], float]]] = {}
    for lineno, fields in _data_lines(path):
        frame, box, conf = _detection_row([f.strip() for f in fields], f"{path}:{lineno}")
        if frame >= n_frames:
            raise DetectionsFormatError(f"{path}:{lineno}: frame {frame + 1} is past the video's last frame {n_frames}")
        rows.setdefault(frame, []).append((box, conf))
    out = []
    for f in range(n_frames):
        r = rows.get(f, [])
        out.append(Instances.from_arrays([b for b, _ in r], [c for _, c in r], [category] * len(r)) if r else Instances.empty())
    return out


def _detection_row(fields: list[str], where: str) -> tuple[int, list[float], float]:
    vals = _numbers(fields, where, DetectionsFormatError, " (frame,-1,x,y,w,h,conf,...)")
    if not all(math.isfinite(v) for v in vals[:7]):
        raise DetectionsFormatError(f"{where}: frame, box and confidence must be finite: {','.join(fields)!r}")
    frame, _, x, y, w, h = vals[:6]
    if frame != int(frame) or frame < 1:
        raise DetectionsFormatError(f"{where}: frame must be an integer >= 1 (1-based), got {fields[0]!r}")
    if w <= 0 or h <= 0:
        raise DetectionsFormatError(f"{where}: box width and height must be > 0: {','.join(fields)!r}")
    conf = vals[6] if len(vals) > 6 else 1.0
    return int(frame) - 1, [x - 1, y - 1, x - 1 + w, y - 1 + h], conf


# ---------------------------------------------------------------------------------------------- writing


def mot_row(frame: int, ident: int, box, rest: str) -> str:
    """One row from a 0-based frame and a 0-based ``x1, y1, x2, y2`` box: ``frame,id,x,y,w,h,<rest>``, 1-based frame and
    pixels, box to 2 decimals; ``rest`` the columns from ``conf`` on, as written."""
    x1, y1, x2, y2 = box
    return f"{int(frame) + 1},{ident},{x1 + 1:.2f},{y1 + 1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{rest}"


def to_mot(tracks: VideoTracks) -> str:
    """``frame,id,x,y,w,h,score,-1,-1,-1`` rows: 1-based frames and pixels (as ``read_public_detections`` reads them)."""
    rows = zip(tracks.frames, tracks.identities, tracks.boxes, tracks.scores)
    return "".join(mot_row(f, i, box, f"{s:.4f},-1,-1,-1") + "\n" for f, i, box, s in rows)


def write_mot(tracks: VideoTracks, path: Path) -> Path:
    return write_text_atomic(to_mot(tracks), path)


def gt_to_public_detections(gt_txt: Path, dest: Path) -> None:
    """gt.txt rows -> public detections ``frame,-1,x,y,w,h,1,-1,-1,-1`` (identities dropped, values as written)."""
    rows = (line.split(",") for line in Path(gt_txt).read_text().splitlines())
    Path(dest).write_text("".join(f"{f[0]},-1,{f[2]},{f[3]},{f[4]},{f[5]},1,-1,-1,-1\n" for f in rows))
