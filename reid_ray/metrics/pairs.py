"""Pair-label quality against ground truth (exact synthetic ground truth, or the hand-checked real gold set under
``tests/data/gold/``): each side is matched to the ground-truth identity whose box overlaps it most (IoU >= 0.5);
a pair whose side matches none is 'unmatched' (on the gold set: not a person, e.g. clutter)."""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from reid_ray.records import Instances, box_iou


class MotGroundTruth:
    """A MOTChallenge ground-truth file (1-based frames) as identity boxes per 0-based frame, the pair job's
    frame numbering; answers ``instances(frame)`` like the synthetic ``GroundTruth``."""

    def __init__(self, path: str | Path) -> None:
        from reid_ray.mot_format import read_mot

        df = read_mot(path)
        self.frames: dict[int, Instances] = {}
        for frame, rows in df.groupby("frame"):
            boxes = np.stack([rows.x, rows.y, rows.x + rows.w, rows.y + rows.h], axis=1)
            self.frames[int(frame) - 1] = Instances.from_arrays(boxes, np.ones(len(rows)), ["person"] * len(rows), track_ids=rows.id.to_numpy())

    def instances(self, frame: int) -> Instances:
        return self.frames.get(int(frame), Instances.empty())


def load_gold(folder: str | Path) -> dict[str, MotGroundTruth]:
    """video_id -> ground truth, from ``<folder>/<video_id>/gt.txt``."""
    return {p.parent.name: MotGroundTruth(p) for p in sorted(Path(folder).glob("*/gt.txt"))}


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
        out[key] = {
            "correct": c["correct"], "wrong": c["wrong"], "unmatched": c["unmatched"],
            "precision": round(c["correct"] / judged, 4) if judged else None,
            # a side that is no gold person (clutter, or someone the gold set lacks) counted as a wrong label
            "precision_unmatched_wrong": round(c["correct"] / (judged + c["unmatched"]), 4) if judged + c["unmatched"] else None,
        }
    return out


def pending_truth(pairs: list[dict], ground_truth: dict) -> Counter:
    """How many pairs routed to humans are really the same identity (what routing could have auto-decided)."""
    return Counter(gold_verdict(p, ground_truth) for p in pairs if p["label"] == "pending_review" and p["a_video_id"] in ground_truth)


def gold_verdict(pair: dict, gold: dict) -> str:
    """'right' / 'wrong' for an auto label, 'same' / 'different' for a pair sent to humans, or 'unmatched' (a side
    that is no gold person) for a person pair of a gold video."""
    gt = gold[pair["a_video_id"]]
    ia, ib = identity_at(gt, pair["a_frame"], pair["a_bbox"]), identity_at(gt, pair["b_frame"], pair["b_bbox"])
    if ia is None or ib is None:
        return "unmatched"
    same = ia == ib
    if pair["label"] == "pending_review":
        return "same" if same else "different"
    return "right" if same == (pair["label"] == "identical") else "wrong"


def score_pairs_by_video(pairs: list[dict], gold: dict) -> dict[str, Counter]:
    """Per video (and 'pooled'): counts of '<label>/<verdict>' over person pairs (matches and hard negatives;
    'human' stands for pending_review), and of 'matches' and 'matches/<label>' over the proposed matches."""
    out: dict[str, Counter] = defaultdict(Counter)
    for p in pairs:
        if p["category"] != "person" or p["a_video_id"] not in gold or p["kind"] == "unrelated":
            continue
        verdict = gold_verdict(p, gold)
        for clip in (p["a_video_id"], "pooled"):
            key = "human" if p["label"] == "pending_review" else p["label"]
            out[clip][f"{key}/{verdict}"] += 1
            if p["kind"] == "match":
                out[clip]["matches"] += 1
                out[clip][f"matches/{key}"] += 1
    return out
