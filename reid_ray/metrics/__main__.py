"""``python -m reid_ray.metrics --gt GT.txt --pred identities.txt [--pred-map P.json --gt-map G.json]``

Prints IDF1, MOTA and HOTA (TrackEval), and pairwise tracklet precision/recall/F1 when both maps are given
(JSON objects tracklet id -> identity). It writes no files. It exits with 2 and a one-line message on stderr
when a file is missing or cannot be read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reid_ray.metrics.mot import mot_metrics, pairwise_tracklet_scores
from reid_ray.mot_format import MotFormatError, read_mot

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """A missing or unreadable input; its message is what the user sees."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reid_ray.metrics", description="IDF1/MOTA/HOTA of a MOTChallenge prediction.")
    ap.add_argument("--gt", required=True, type=Path, help="ground truth, MOTChallenge rows (gt.txt)")
    ap.add_argument("--pred", required=True, type=Path, help="prediction, MOTChallenge rows with identity ids")
    ap.add_argument("--pred-map", type=Path, help="JSON: predicted tracklet id -> identity")
    ap.add_argument("--gt-map", type=Path, help="JSON: tracklet id -> true identity")
    ap.add_argument("--iou", type=float, default=0.5, help="IoU match threshold for MOTA and IDF1 (default 0.5)")
    a = ap.parse_args(argv)
    try:
        if (a.pred_map is None) != (a.gt_map is None):
            raise BadInput("--pred-map and --gt-map go together: give both or neither")
        scores = mot_metrics(_read_mot(a.gt), _read_mot(a.pred), a.iou)
        pairs = _pairs(a.pred_map, a.gt_map) if a.pred_map else None
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _print(scores, pairs)
    return 0


def _read_mot(path: Path):
    if not path.is_file():
        raise BadInput(f"no such file (or not a file): {path}")
    try:
        return read_mot(path)
    except (MotFormatError, UnicodeDecodeError, OSError) as e:
        raise BadInput(f"cannot read {path}: {e}") from None


def _pairs(pred_map: Path, gt_map: Path) -> dict:
    try:
        return pairwise_tracklet_scores(_read_map(pred_map), _read_map(gt_map))
    except ValueError as e:  # e.g. the maps share no tracklet
        raise BadInput(f"{pred_map} and {gt_map}: {e}") from None


def _read_map(path: Path) -> dict:
    if not path.is_file():
        raise BadInput(f"no such file (or not a file): {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise BadInput(f"{path} is not JSON: {e}") from None
    if not isinstance(data, dict) or not data:
        raise BadInput(f"{path} must be a non-empty JSON object tracklet id -> identity")
    return data


def _print(scores: dict, pairs: dict | None) -> None:
    print(f"IDF1  {scores['IDF1']:.4f}   (IDP {scores['IDP']:.4f}, IDR {scores['IDR']:.4f})")
    print(f"MOTA  {scores['MOTA']:.4f}   (FP {scores['FP']}, FN {scores['FN']}, IDSW {scores['IDSW']})")
    print(f"HOTA  {scores['HOTA']:.4f}   (DetA {scores['DetA']:.4f}, AssA {scores['AssA']:.4f})")
    print(f"frames {scores['frames']}, gt {scores['gt_dets']} boxes / {scores['gt_ids']} ids, "
          f"pred {scores['pred_dets']} boxes / {scores['pred_ids']} ids")
    if pairs is not None:
        print(f"pairwise precision {pairs['precision']:.4f}  recall {pairs['recall']:.4f}  f1 {pairs['f1']:.4f}"
              f"   ({pairs['tracklets']} tracklets in both maps, {pairs['pred_only']} only predicted, {pairs['true_only']} only true)")


if __name__ == "__main__":
    raise SystemExit(main())
