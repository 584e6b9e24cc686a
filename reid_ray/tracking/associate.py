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
) -> list[np.ndarray]:
    """Track ids (0-based, per clip) for the instances of each frame, linking consecutive frames only."""
    next_id = 0
    ids: list[np.ndarray] = []
    for f, boxes in enumerate(per_frame_boxes):
        cur = -np.ones(len(boxes), np.int64)
        if f > 0:
            for p, n in match(per_frame_boxes[f - 1], boxes, per_frame_cats[f - 1], per_frame_cats[f], per_frame_emb[f - 1], per_frame_emb[f], params):
                cur[n] = ids[f - 1][p]
        for n in np.flatnonzero(cur < 0):
            cur[n] = next_id
            next_id += 1
        ids.append(cur)
    return ids
