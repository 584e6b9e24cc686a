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
    # A track's look is a running mean of its usable views (momentum per update), not its last view: one
    # occluded frame must not redefine who the track is.
    appearance_momentum: float = 0.0


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
    usable_next: np.ndarray | None = None,
    iou_only: bool = False,
) -> list[tuple[int, int]]:
    """Index pairs (prev, next) assigned to one another; gates make impossible pairs unassignable. ``iou_only``:
    boxes must overlap by ``min_iou`` and IoU alone scores them (no centre-shift route, no appearance)."""
    if len(boxes_prev) == 0 or len(boxes_next) == 0:
        return []
    iou = box_iou(boxes_prev, boxes_next)
    shift = _centre_shift(boxes_prev, boxes_next)
    same_cat = np.asarray(cats_prev)[:, None] == np.asarray(cats_next)[None, :]
    geo = np.maximum(iou, 1.0 - np.minimum(shift / params.max_centre_shift, 1.0))
    allowed = same_cat & ((iou >= params.min_iou) | (shift <= params.max_centre_shift) & (not iou_only))
    score = iou if iou_only else geo
    if emb_prev is not None and emb_next is not None and len(emb_prev) and len(emb_next) and not iou_only:
        sim = emb_prev @ emb_next.T
        gate = sim >= params.min_similarity
        if usable_next is not None:  # an occluded or cut view may look unlike its own track: geometry decides
            gate |= ~np.asarray(usable_next, bool)[None, :]
        allowed &= gate
        score = (1 - params.appearance_weight) * geo + params.appearance_weight * sim
    cost = np.where(allowed, 1.0 - score, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]


@dataclass
class _Track:
    box: np.ndarray
    category: object
    embedding: np.ndarray | None
    seen: int  # frame index last seen


def link_frames(
    per_frame_boxes: list[np.ndarray],
    per_frame_cats: list[np.ndarray],
    per_frame_emb: list[np.ndarray | None],
    params: AssociationParams = AssociationParams(),
    max_missed: int = 2,
    usable: list[np.ndarray] | None = None,
    secondary: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Track ids (0-based, per clip) for the instances of each frame. A track missed by the detector on up to
    ``max_missed`` frames in a row can still be continued, from its last box and appearance. With ``usable``
    (per frame, which views are whole and unobstructed), only those views gate on and update a track's look.

    ``secondary`` (per frame) marks low-score detections, ByteTrack's second association: they are offered,
    on overlap alone, only to the tracks the confident detections left unmatched, never start a track, and
    get id -1 when nothing claims them. A partly hidden person scores low, and the track they continue
    says it is them and not a false detection."""
    next_id = 0
    ids: list[np.ndarray] = []
    active: dict[int, _Track] = {}
    for f, boxes in enumerate(per_frame_boxes):
        cur = -np.ones(len(boxes), np.int64)
        low = np.zeros(len(boxes), bool) if secondary is None else np.asarray(secondary[f], bool)
        live = [t for t, tr in active.items() if f - tr.seen <= max_missed + 1]
        high = np.flatnonzero(~low)
        if live and len(high):
            emb_prev = [active[t].embedding for t in live]
            has_emb = per_frame_emb[f] is not None and all(e is not None for e in emb_prev)
            pairs = match(
                np.stack([active[t].box for t in live]),
                boxes[high],
                np.array([active[t].category for t in live], dtype=object),
                per_frame_cats[f][high],
                np.stack(emb_prev) if has_emb else None,
                per_frame_emb[f][high] if has_emb else None,
                params,
                usable[f][high] if usable is not None else None,
            )
            for p, n in pairs:
                cur[high[n]] = live[p]
        lows = np.flatnonzero(low)
        taken = set(cur.tolist())
        left = [t for t in live if t not in taken]
        if left and len(lows):  # overlap only: a low score means the look is not to be trusted either
            pairs = match(np.stack([active[t].box for t in left]), boxes[lows],
                          np.array([active[t].category for t in left], dtype=object), per_frame_cats[f][lows],
                          None, None, params, iou_only=True)
            for p, n in pairs:
                cur[lows[n]] = left[p]
        for n in high[cur[high] < 0]:
            cur[n] = next_id
            next_id += 1
        for n in np.flatnonzero(cur >= 0):
            t = int(cur[n])
            active[t] = _updated(active.get(t), boxes[n], per_frame_cats[f][n],
                                 per_frame_emb[f][n] if per_frame_emb[f] is not None else None, f,
                                 (usable is None or bool(usable[f][n])) and not low[n], params)
        ids.append(cur)
    return ids


def _updated(old: _Track | None, box: np.ndarray, category: object, emb: np.ndarray | None, f: int, usable: bool,
             params: AssociationParams) -> _Track:
    if old is None:
        return _Track(box, category, emb, f)
    if emb is not None and old.embedding is not None:
        if not usable:
            emb = old.embedding  # keep the look learnt from clean views
        elif params.appearance_momentum > 0:
            mixed = params.appearance_momentum * old.embedding + (1 - params.appearance_momentum) * emb
            emb = mixed / max(float(np.linalg.norm(mixed)), 1e-12)
    return _Track(box, category, emb, f)


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
