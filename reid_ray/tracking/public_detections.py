"""MOTChallenge public detections (``det.txt``): ``frame,-1,x,y,w,h,conf[,...]`` with 1-based frames and
1-based pixel boxes. Read into ``Instances`` per 0-based frame with 0-based xyxy boxes (x - 1, y - 1), so that
writing them back 1-based (``identities.txt``) gives the file's own boxes.

Not ``metrics.mot.read_mot``: every row here has id -1, which that reader rightly refuses as a duplicate id.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from reid_ray.records import Instances


class DetectionsFormatError(ValueError):
    """A detections file that cannot be used; the message names the file and line."""


def _row(fields: list[str], where: str) -> tuple[int, list[float], float]:
    if not 6 <= len(fields) <= 10:
        raise DetectionsFormatError(f"{where}: expected 6 to 10 comma-separated values (frame,-1,x,y,w,h,conf,...), got {len(fields)}: {','.join(fields)!r}")
    try:
        vals = [float(f) for f in fields]
    except ValueError:
        raise DetectionsFormatError(f"{where}: not a number in {','.join(fields)!r}") from None
    if not all(math.isfinite(v) for v in vals[:7]):
        raise DetectionsFormatError(f"{where}: frame, box and confidence must be finite: {','.join(fields)!r}")
    frame, _, x, y, w, h = vals[:6]
    if frame != int(frame) or frame < 1:
        raise DetectionsFormatError(f"{where}: frame must be an integer >= 1 (1-based), got {fields[0]!r}")
    if w <= 0 or h <= 0:
        raise DetectionsFormatError(f"{where}: box width and height must be > 0: {','.join(fields)!r}")
    conf = vals[6] if len(vals) > 6 else 1.0
    return int(frame) - 1, [x - 1, y - 1, x - 1 + w, y - 1 + h], conf


def read_public_detections(path: str | Path, n_frames: int, category: str = "person") -> list[Instances]:
    """One ``Instances`` per frame 0..n_frames-1 (empty where the file has none)."""
    path = Path(path)
    if not path.is_file():
        raise DetectionsFormatError(f"no detections file {path}")
    rows: dict[int, list[tuple[list[float], float]]] = {}
    with open(path, newline="") as fh:
        for lineno, fields in enumerate(csv.reader(fh), start=1):
            if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
                continue
            frame, box, conf = _row([f.strip() for f in fields], f"{path}:{lineno}")
            if frame >= n_frames:
                raise DetectionsFormatError(f"{path}:{lineno}: frame {frame + 1} is past the video's last frame {n_frames}")
            rows.setdefault(frame, []).append((box, conf))
    out = []
    for f in range(n_frames):
        r = rows.get(f, [])
        out.append(Instances.from_arrays([b for b, _ in r], [c for _, c in r], [category] * len(r)) if r else Instances.empty())
    return out
