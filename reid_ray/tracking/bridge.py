"""Tracks followed across the gap of a clip pair: certain same-individual pairs at the gap's own scale.

The views of one person within a 2 s clip are closer than those of one person 3-30 s apart (pose, place, light
change), so calibrating on within-clip pairs alone would misjudge matches across the gap. For some clip pairs
the segment stage therefore detects on frames ``track_step_s`` apart over the whole span from clip A's start to
clip B's end and links them by IoU. A bridge is a track seen on sampled frames of both clips whose box no other
box ever touched on the way (people who cross can swap identities under IoU): its views in A and in B are one
individual (a track whose box another overlaps at the tracker's own IoU gate on any frame may have been swapped
with it, so it is no bridge).
"""
from __future__ import annotations

import hashlib

import numpy as np

from reid_ray.records import box_iou
from reid_ray.tracking.associate import AssociationParams, link_frames

BRIDGE_FIELDS = ("bridge_id", "side", "frame", "bbox")


def is_bridged(clip_pair_id: str, share: float) -> bool:
    """Whether a clip pair is bridged: a stable pseudo-random share of the clip pairs."""
    return int(hashlib.sha1(clip_pair_id.encode()).hexdigest()[:8], 16) / 16**8 < share


def bridge_frames(a_start: int, b_end: int, step: int, a_sampled: list[int], b_sampled: list[int]) -> list[int]:
    return sorted(set(range(a_start, b_end, step)) | set(a_sampled) | set(b_sampled))


def find_bridges(
    frames: list[int],
    boxes: list[np.ndarray],
    categories: list[np.ndarray],
    a_sampled: list[int],
    b_sampled: list[int],
    params: AssociationParams,
    max_missed: int = 2,
) -> list[dict]:
    """Rows (bridge_id, side, frame, bbox) of each bridge on the sampled frames of both clips."""
    ids = link_frames(boxes, categories, [None] * len(frames), params, max_missed=max_missed)
    touched: set[int] = set()
    for frame_boxes, frame_ids in zip(boxes, ids):
        if len(frame_boxes) > 1:
            iou = box_iou(frame_boxes, frame_boxes)
            np.fill_diagonal(iou, 0.0)
            touched |= {int(t) for t, row in zip(frame_ids, iou) if row.max() >= params.min_iou}
    sides = {**{f: "a" for f in a_sampled}, **{f: "b" for f in b_sampled}}
    seen: dict[int, set[str]] = {}
    rows = []
    for frame, frame_boxes, frame_ids in zip(frames, boxes, ids):
        if frame not in sides:
            continue
        for box, tid in zip(frame_boxes, frame_ids):
            tid = int(tid)
            if tid >= 0 and tid not in touched:
                seen.setdefault(tid, set()).add(sides[frame])
                rows.append({"bridge_id": tid, "side": sides[frame], "frame": int(frame), "bbox": [float(v) for v in box]})
    return [r for r in rows if seen[r["bridge_id"]] == {"a", "b"}]


def bridged_track_pairs(bridges: list[dict], tracks_a: list, tracks_b: list, min_iou: float = 0.7) -> list[tuple[int, int]]:
    """(index in tracks_a, index in tracks_b) joined by one bridge: each side's track is the one whose box on the
    bridge's frames agrees with the bridge's box (same detector, same frames: near-identical boxes)."""
    by_bridge: dict[int, dict[str, list[dict]]] = {}
    for r in bridges:
        by_bridge.setdefault(r["bridge_id"], {}).setdefault(r["side"], []).append(r)
    out = []
    for sides in by_bridge.values():
        a = _owner(sides.get("a", []), tracks_a, min_iou)
        b = _owner(sides.get("b", []), tracks_b, min_iou)
        if a is not None and b is not None:
            out.append((a, b))
    # a track claimed by two bridges is ambiguous: keep neither
    a_count = {a: sum(x == a for x, _ in out) for a, _ in out}
    b_count = {b: sum(y == b for _, y in out) for _, b in out}
    return [(a, b) for a, b in out if a_count[a] == 1 and b_count[b] == 1]


def _owner(rows: list[dict], tracks: list, min_iou: float) -> int | None:
    """The one track whose boxes agree with the bridge on all of its frames that the track has."""
    owners = set()
    for r in rows:
        for k, t in enumerate(tracks):
            box = t.boxes.get(r["frame"])
            if box is not None and box_iou(np.asarray([box]), np.asarray([r["bbox"]]))[0, 0] >= min_iou:
                owners.add(k)
    return owners.pop() if len(owners) == 1 else None
