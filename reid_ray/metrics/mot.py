"""Tracking metrics on MOTChallenge files (read by ``reid_ray.mot_format.read_mot``): IDF1, MOTA and HOTA from
TrackEval's own metric classes, and pairwise precision/recall of tracklet -> identity assignments.

TrackEval's dataset classes want a benchmark folder layout (seqmaps, seqinfo.ini, tracker folders). We call
its metric classes (``HOTA``, ``CLEAR``, ``Identity``) directly on the per-frame arrays they consume, prepared
here the way ``trackeval.datasets.MotChallenge2DBox`` prepares them: ids renumbered 0..k-1, one entry per frame
1..T, similarity = box IoU (TrackEval's own ``_calculate_box_ious``, xywh). Like TrackEval, ground-truth rows
whose 7th column is 0 ("zero-marked") are left out. It does not drop distractor classes (MOT16/17 classes
2, 7, 8 and 12) because our synthetic ground truth has class 1 only.

Boxes: IoU depends only on where boxes are relative to each other. So the synthetic ground truth's 0-based
pixels and MOTChallenge's 1-based pixels give the same scores as long as ground truth and prediction use the
same convention. Mixing the two shifts every box by one pixel.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics.cluster import pair_confusion_matrix

# -------------------------------------------------------------------------------------------- metrics


def mot_metrics(gt_df: pd.DataFrame, pred_df: pd.DataFrame, iou_threshold: float = 0.5) -> dict[str, float]:
    """IDF1, MOTA and HOTA (plus their main parts) of ``pred_df`` against ``gt_df`` (frames of ``read_mot``).

    ``iou_threshold`` is TrackEval's match threshold for CLEAR and Identity (0.5 in MOTChallenge). HOTA
    averages over its own thresholds 0.05..0.95.
    """
    from trackeval.metrics import CLEAR, HOTA, Identity

    data = _trackeval_data(gt_df[gt_df["conf"] != 0], pred_df)
    quiet = {"THRESHOLD": iou_threshold, "PRINT_CONFIG": False}
    hota = HOTA().eval_sequence(data)
    clear = CLEAR(dict(quiet)).eval_sequence(data)
    ident = Identity(dict(quiet)).eval_sequence(data)
    return {
        "IDF1": float(ident["IDF1"]), "IDP": float(ident["IDP"]), "IDR": float(ident["IDR"]),
        "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]), "IDSW": int(clear["IDSW"]),
        "FP": int(clear["CLR_FP"]), "FN": int(clear["CLR_FN"]),
        "HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])), "AssA": float(np.mean(hota["AssA"])),
        "gt_dets": data["num_gt_dets"], "pred_dets": data["num_tracker_dets"],
        "gt_ids": data["num_gt_ids"], "pred_ids": data["num_tracker_ids"], "frames": data["num_timesteps"],
    }


def majority_identities(gt_df: pd.DataFrame, pred_df: pd.DataFrame, iou_threshold: float = 0.5) -> dict[int, int]:
    """Each predicted track id (e.g. one per tracklet) -> the ground-truth id its boxes match most often.

    Per frame, boxes are matched one-to-one at IoU >= ``iou_threshold`` by the Hungarian algorithm (scipy), as
    CLEAR MOT matches them. Tracks are given their identity greedily, the most-matched first, and never one that
    a track sharing a frame with them already holds (two boxes of one frame are two people: the job's
    cannot-link rule); a track left without one gets an id of its own (negative). Relabelling by this map
    scores what a near-perfect identity step would make of these tracks (greedy, so not a proven optimum).
    """
    from scipy.optimize import linear_sum_assignment

    gt_df = gt_df[gt_df["conf"] != 0]
    data = _trackeval_data(gt_df, pred_df)
    gt_names = np.sort(gt_df["id"].unique())
    pred_names = np.sort(pred_df["id"].unique())
    votes: dict[int, dict[int, int]] = {int(p): {} for p in pred_names}
    frames: dict[int, set[int]] = {int(p): set() for p in pred_names}
    for t, (g, p, sim) in enumerate(zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"])):
        for j in p:
            frames[int(pred_names[j])].add(t)
        if not len(g) or not len(p):
            continue
        rows, cols = linear_sum_assignment(-sim)
        for r, c in zip(rows, cols):
            if sim[r, c] >= iou_threshold:
                box_votes = votes[int(pred_names[p[c]])]
                box_votes[int(gt_names[g[r]])] = box_votes.get(int(gt_names[g[r]]), 0) + 1
    held: dict[int, set[int]] = {}  # ground-truth id -> frames where a track already carries it
    out: dict[int, int] = {}
    for k, track in enumerate(sorted(votes, key=lambda x: -max(votes[x].values(), default=0))):
        out[track] = -1 - k
        for ident in sorted(votes[track], key=lambda i: (-votes[track][i], i)):
            if not frames[track] & held.get(ident, set()):
                out[track] = ident
                held.setdefault(ident, set()).update(frames[track])
                break
    return out


def majority_identity_idf1(gt_df: pd.DataFrame, pred_df: pd.DataFrame, iou_threshold: float = 0.5) -> float:
    """IDF1 of ``pred_df`` with every track relabelled by ``majority_identities``: given tracklets as tracks, what
    their boxes and purity allow once identities are right; the gap to the job's IDF1 is the identity step's."""
    mapping = majority_identities(gt_df, pred_df, iou_threshold)
    relabelled = pred_df.assign(id=pred_df["id"].map(mapping))
    return mot_metrics(gt_df, relabelled, iou_threshold)["IDF1"]


def _trackeval_data(gt: pd.DataFrame, pred: pd.DataFrame) -> dict:
    """The per-sequence dict TrackEval's metrics read (see MotChallenge2DBox.get_preprocessed_seq_data)."""
    from trackeval.datasets._base_dataset import _BaseDataset

    n_frames = int(max(gt["frame"].max() if len(gt) else 0, pred["frame"].max() if len(pred) else 0))
    gt_ids, gt_boxes = _per_frame(gt, n_frames)
    tr_ids, tr_boxes = _per_frame(pred, n_frames)
    sims = [_BaseDataset._calculate_box_ious(g, t, box_format="xywh") for g, t in zip(gt_boxes, tr_boxes)]
    return {
        "num_timesteps": n_frames,
        "gt_ids": gt_ids, "tracker_ids": tr_ids, "similarity_scores": sims,
        "num_gt_dets": len(gt), "num_tracker_dets": len(pred),
        "num_gt_ids": int(gt["id"].nunique()), "num_tracker_ids": int(pred["id"].nunique()),
    }


def _per_frame(df: pd.DataFrame, n_frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Ids renumbered 0..k-1 and xywh boxes (float64), one array per frame 1..n_frames."""
    if n_frames == 0:
        return [], []
    codes = pd.factorize(df["id"], sort=True)[0].astype(int)
    boxes = df[["x", "y", "w", "h"]].to_numpy(np.float64)
    frame = df["frame"].to_numpy(np.int64) - 1
    order = np.argsort(frame, kind="stable")
    cuts = np.searchsorted(frame[order], np.arange(1, n_frames))
    idx = np.split(order, cuts)
    return [codes[i] for i in idx], [boxes[i] for i in idx]


# ------------------------------------------------------------------------------------ tracklet pairs


def pairwise_tracklet_scores(pred_labels: dict, true_labels: dict) -> dict[str, float]:
    """Precision, recall and F1 over all pairs of tracklets, where a pair is positive when both tracklets have
    one identity. Counted on the tracklets present in both maps (pair counts from scikit-learn's
    ``pair_confusion_matrix``). A score with a zero denominator is NaN (e.g. precision when nothing is
    paired)."""
    common = [k for k in pred_labels if k in true_labels]
    if not common:
        raise ValueError("the predicted and true tracklet maps share no tracklet id")
    pred = pd.factorize(pd.Series([pred_labels[k] for k in common], dtype=object))[0]
    true = pd.factorize(pd.Series([true_labels[k] for k in common], dtype=object))[0]
    (_, fp), (fn, tp) = pair_confusion_matrix(true, pred) // 2  # ordered pairs -> unordered
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan  # = harmonic mean of P and R where both exist
    return {
        "precision": float(precision), "recall": float(recall), "f1": float(f1),
        "tracklets": len(common), "pred_only": len(pred_labels) - len(common), "true_only": len(true_labels) - len(common),
    }
