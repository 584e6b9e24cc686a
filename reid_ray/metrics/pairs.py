"""Pair-label quality against exact ground truth (synthetic footage): each side is matched to the ground-truth
identity whose visible box overlaps it most (IoU >= 0.5); a pair whose side matches none is 'unmatched'."""
from __future__ import annotations

from collections import Counter

import numpy as np

from reid_ray.records import box_iou


def identity_at(gt, frame: int, bbox, min_iou: float = 0.5) -> int | None:
    inst = gt.instances(frame)
    if len(inst) == 0:
        return None
    iou = box_iou(np.asarray([bbox], np.float32), inst.boxes)[0]
    j = int(np.argmax(iou))
    return int(inst.track_ids[j]) if iou[j] >= min_iou else None


def evaluate_pairs(pairs: list[dict], ground_truth: dict) -> dict:
    """Precision of each (label, verified_by) group: identical is right when both sides are one identity,
    same_category_different_instance when they are two. ``ground_truth``: video_id -> GroundTruth."""
    tally: dict[str, Counter] = {}
    for p in pairs:
        gt = ground_truth.get(p["a_video_id"])
        if gt is None or p["label"] not in ("identical", "same_category_different_instance") or p["category"] != "person":
            continue
        ia = identity_at(gt, p["a_frame"], p["a_bbox"])
        ib = identity_at(gt, p["b_frame"], p["b_bbox"])
        key = f"{p['label']}/{p['verified_by']}/{p['kind']}"
        c = tally.setdefault(key, Counter())
        if ia is None or ib is None:
            c["unmatched"] += 1
        elif (ia == ib) == (p["label"] == "identical"):
            c["correct"] += 1
        else:
            c["wrong"] += 1
    out = {}
    for key, c in sorted(tally.items()):
        judged = c["correct"] + c["wrong"]
        out[key] = {"correct": c["correct"], "wrong": c["wrong"], "unmatched": c["unmatched"], "precision": round(c["correct"] / judged, 4) if judged else None}
    return out


def pending_truth(pairs: list[dict], ground_truth: dict) -> Counter:
    """How many pairs routed to humans are really the same identity (what routing could have auto-decided)."""
    c: Counter = Counter()
    for p in pairs:
        if p["label"] != "pending_review" or p["a_video_id"] not in ground_truth:
            continue
        gt = ground_truth[p["a_video_id"]]
        ia, ib = identity_at(gt, p["a_frame"], p["a_bbox"]), identity_at(gt, p["b_frame"], p["b_bbox"])
        c["unmatched" if ia is None or ib is None else ("same" if ia == ib else "different")] += 1
    return c
