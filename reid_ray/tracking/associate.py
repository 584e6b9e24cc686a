"""Frame-to-frame association of instances into tracks: Hungarian assignment (scipy) on IoU, centre distance
and appearance. Used within a clip by pair mining and within a shot by the long-video job."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from reid_ray.records import box_iou


@dataclass(frozen=True)
class AssociationParams:
    min_iou: float = 0.3
    max_centre_shift: float = 1.0  # in box heights between consecutive (sampled) frames
    min_similarity: float = 0.5  # appearance gate when embeddings are given
    appearance_weight: float = 0.5


def _centre_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ca = (a[:, None, :2] + a[:, None, 2:]) / 2
    cb = (b[None, :, :2] + b[None, :, 2:]) / 2
    scale = np.maximum((a[:, None, 3] - a[:, None, 1]), 1.0)
    return np.linalg.norm(ca - cb, axis=-1) / scale


def match(
    boxes_prev: np.ndarray,
    boxes_next: np.ndarray,
    cats_prev: np.ndarray,
    cats_next: np.ndarray,
    emb_prev: np.ndarray | None,
    emb_next: np.ndarray | None,
    params: AssociationParams,
) -> list[tuple[int, int]]:
    """Index pairs (prev, next) assigned to one another; gates make impossible pairs unassignable."""
    if len(boxes_prev) == 0 or len(boxes_next) == 0:
        return []
    iou = box_iou(boxes_prev, boxes_next)
    shift = _centre_shift(boxes_prev, boxes_next)
    same_cat = np.asarray(cats_prev)[:, None] == np.asarray(cats_next)[None, :]
    geo = np.maximum(iou, 1.0 - np.minimum(shift / params.max_centre_shift, 1.0))
    allowed = same_cat & ((iou >= params.min_iou) | (shift <= params.max_centre_shift))
    score = geo
    if emb_prev is not None and emb_next is not None and len(emb_prev) and len(emb_next):
        sim = emb_prev @ emb_next.T
        allowed &= sim >= params.min_similarity
        score = (1 - params.appearance_weight) * geo + params.appearance_weight * sim
    cost = np.where(allowed, 1.0 - score, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]


def link_frames(
    per_frame_boxes: list[np.ndarray],
    per_frame_cats: list[np.ndarray],
    per_frame_emb: list[np.ndarray | None],
    params: AssociationParams = AssociationParams(),
    max_missed: int = 2,
) -> list[np.ndarray]:
    """Track ids (0-based, per clip) for the instances of each frame. A track missed by the detector on up to
    ``max_missed`` frames in a row can still be continued, from its last box and appearance."""
    next_id = 0
    ids: list[np.ndarray] = []
    # Active tracks: id -> (box, category, embedding or None, frame index last seen)
    active: dict[int, tuple[np.ndarray, object, np.ndarray | None, int]] = {}
    for f, boxes in enumerate(per_frame_boxes):
        cur = -np.ones(len(boxes), np.int64)
        live = [t for t, (_, _, _, seen) in active.items() if f - seen <= max_missed + 1]
        if live and len(boxes):
            emb_prev = [active[t][2] for t in live]
            has_emb = per_frame_emb[f] is not None and all(e is not None for e in emb_prev)
            pairs = match(
                np.stack([active[t][0] for t in live]),
                boxes,
                np.array([active[t][1] for t in live], dtype=object),
                per_frame_cats[f],
                np.stack(emb_prev) if has_emb else None,
                per_frame_emb[f] if has_emb else None,
                params,
            )
            for p, n in pairs:
                cur[n] = live[p]
        for n in np.flatnonzero(cur < 0):
            cur[n] = next_id
            next_id += 1
        for n, t in enumerate(cur):
            emb = per_frame_emb[f][n] if per_frame_emb[f] is not None else None
            active[int(t)] = (boxes[n], per_frame_cats[f][n], emb, f)
        ids.append(cur)
    return ids


def split_on_appearance(
    track_ids: list[np.ndarray], embeddings: list[np.ndarray], min_similarity: float, usable: list[np.ndarray] | None = None
) -> list[np.ndarray]:
    """Split a track where its look jumps between consecutive usable observations: boxes of two people who
    cross swap identities under IoU, and a pair built on such a track would join two people. Unusable views
    (occluded, cut) are not compared, since their look is expected to differ; they follow the current id."""
    out = [ids.copy() for ids in track_ids]
    last: dict[int, tuple[int, np.ndarray]] = {}  # original id -> (current id, last embedding)
    next_id = max((int(i.max()) for i in track_ids if len(i)), default=-1) + 1
    for f, ids in enumerate(track_ids):
        for n, tid in enumerate(ids):
            tid = int(tid)
            if tid < 0:
                continue
            emb = embeddings[f][n]
            if usable is not None and not usable[f][n]:
                out[f][n] = last[tid][0] if tid in last else tid
                continue
            if tid in last:
                cur, prev = last[tid]
                if float(prev @ emb) < min_similarity:
                    cur, next_id = next_id, next_id + 1
            else:
                cur = tid
            out[f][n] = cur
            last[tid] = (cur, emb)
    return out
