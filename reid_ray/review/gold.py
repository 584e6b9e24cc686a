"""Gold questions: pairs whose answer the run already knows, mixed into the review queue to score annotators.

A gold question is an auto-decided match the router was very sure of (an ``identical`` at or above the gold
confidence, or a rejected match at or below one minus it). A fixed share of those, chosen by a hash of the pair id
(so every rerun and every machine picks the same ones), goes to review as an ordinary task: same packet, same task
fields. The expected answers stay in ``review/gold.jsonl``, a file annotators are not shown. A gold verdict
never changes its pair (``form_pairs`` keeps auto-decided rows as they are); it only scores its annotator.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from reid_ray.config import ReviewConfig

GOLD_FILE = "gold.jsonl"
SAME, DIFFERENT = "Same", "Different"


def gold_answer(pair: Mapping, cfg: ReviewConfig) -> str | None:
    """``Same`` / ``Different`` when ``pair`` is one of the run's gold questions, else None."""
    if cfg.gold_share <= 0 or pair.get("kind") != "match" or pair.get("verified_by") != "auto":
        return None
    confidence = pair.get("confidence")
    if confidence is None or math.isnan(confidence):
        return None
    if pair["label"] == "identical" and confidence >= cfg.gold_min_confidence:
        expected = SAME
    elif pair["label"] == "same_category_different_instance" and confidence <= 1.0 - cfg.gold_min_confidence:
        expected = DIFFERENT
    else:
        return None
    return expected if _share_of(pair["pair_id"]) < cfg.gold_share else None


def _share_of(pair_id: str) -> float:
    """A pair id's place in [0, 1), the same on every machine (Python's own hash is salted per process)."""
    return int.from_bytes(hashlib.sha1(pair_id.encode()).digest()[:8], "big") / 2.0**64


def gold_record(pair: Mapping, expected: str) -> dict:
    return {"pair_id": pair["pair_id"], "expected": expected, "source": "auto", "confidence": round(float(pair["confidence"]), 4)}


def read_gold(path: str | Path) -> dict[str, str]:
    """pair_id -> expected verdict, from ``review/gold.jsonl`` (empty when the file is absent)."""
    return {rec["pair_id"]: rec["expected"] for rec in _iter_jsonl(Path(path))}


def _iter_jsonl(path: Path) -> Iterator[dict]:
    from reid_ray.review.label_studio import iter_records  # label_studio imports this module

    return iter_records(path)


def merged_gold_lines(path: Path, new: Iterable[dict]) -> str:
    """The gold file's text with ``new`` records appended after the ones already there (kept, first wins)."""
    known = {rec["pair_id"]: rec for rec in _iter_jsonl(path)}
    for rec in new:
        known.setdefault(rec["pair_id"], rec)
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in known.values())
