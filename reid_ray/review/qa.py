"""Annotation QA from the verdicts: time per item against the goal, agreement between annotators, and each
annotator's accuracy on the gold questions (``review/gold.py``), with the annotators to flag or drop.

Cohen's kappa comes from scikit-learn and Fleiss' kappa from statsmodels; only the grouping is written here.
"""
from __future__ import annotations

import itertools
import warnings
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from reid_ray.config import ReviewConfig
from reid_ray.review.verdicts import DIFFERENT, SAME, UNSURE, Verdict, VerdictSet

CATEGORIES = (SAME, DIFFERENT, UNSURE)
MIN_SHARED_ITEMS = 2  # a kappa over fewer items than this says nothing
NO_ANNOTATOR = "(unnamed)"


@dataclass
class QaReport:
    annotators: dict[str, dict] = field(default_factory=dict)
    agreement: dict = field(default_factory=dict)
    gold_questions: int = 0
    low_accuracy: list[str] = field(default_factory=list)  # judged (enough gold answers) and below the bar
    action: str = "flag"
    target_seconds: float = 30.0

    def as_dict(self) -> dict:
        return {
            "target_seconds": self.target_seconds,
            "gold_questions": self.gold_questions,
            "low_accuracy": self.low_accuracy,
            "action_on_low_accuracy": self.action,
            "annotators": self.annotators,
            "agreement": self.agreement,
        }


def qa_report(verdicts: VerdictSet, gold: Mapping[str, str], cfg: ReviewConfig) -> QaReport:
    """QA over every verdict read (first round only for agreement: an adjudicator is not a peer rater)."""
    by_annotator: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts.verdicts:
        by_annotator[v.annotator or NO_ANNOTATOR].append(v)
    report = QaReport(gold_questions=len(gold), action=cfg.on_low_accuracy, target_seconds=cfg.target_seconds)
    for name in sorted(by_annotator):
        stats = _annotator_stats(by_annotator[name], gold, cfg)
        report.annotators[name] = stats
        if stats["gold_accuracy"] is not None and stats["gold_answered"] >= cfg.min_gold_answers \
                and stats["gold_accuracy"] < cfg.min_gold_accuracy:
            report.low_accuracy.append(name)
            stats["status"] = "dropped" if cfg.on_low_accuracy == "drop" else "flagged"
    report.agreement = agreement(verdicts)
    return report


def _annotator_stats(vs: list[Verdict], gold: Mapping[str, str], cfg: ReviewConfig) -> dict:
    times = np.array([v.lead_time for v in vs if v.lead_time is not None], dtype=float)
    on_gold = [v for v in vs if v.pair_id in gold and not v.adjudication]
    right = sum(v.verdict == gold[v.pair_id] for v in on_gold)
    judged = len(on_gold) >= cfg.min_gold_answers
    return {
        "verdicts": len(vs),
        "adjudications": sum(v.adjudication for v in vs),
        "by_verdict": {c: sum(v.verdict == c for v in vs) for c in CATEGORIES},
        "timed": int(times.size),
        "median_s": _round(np.median(times)) if times.size else None,
        "p90_s": _round(np.percentile(times, 90)) if times.size else None,
        "within_target": _round(float(np.mean(times <= cfg.target_seconds))) if times.size else None,
        "gold_answered": len(on_gold),
        "gold_right": right,
        "gold_accuracy": _round(right / len(on_gold)) if on_gold else None,
        "status": "ok" if judged else "too_few_gold_answers",
    }


def agreement(verdicts: VerdictSet) -> dict:
    """Cohen's kappa for every two annotators who judged the same items, and Fleiss' kappa over the items judged
    by the most common number (two or more) of annotators."""
    items: dict[str, dict[str, str]] = defaultdict(dict)  # pair -> annotator -> verdict (their last)
    for v in verdicts.verdicts:
        if not v.adjudication and v.annotator is not None:
            items[v.pair_id][v.annotator] = v.verdict
    shared = {pid: votes for pid, votes in items.items() if len(votes) >= 2}
    return {"items_with_several_verdicts": len(shared), "cohen": _cohen_pairs(shared), "fleiss": _fleiss(shared)}


def _cohen_pairs(shared: Mapping[str, Mapping[str, str]]) -> list[dict]:
    from sklearn.metrics import cohen_kappa_score

    names = sorted({a for votes in shared.values() for a in votes})
    out = []
    for x, y in itertools.combinations(names, 2):
        both = [(votes[x], votes[y]) for votes in shared.values() if x in votes and y in votes]
        if len(both) < MIN_SHARED_ITEMS:
            continue
        a, b = zip(*both)
        out.append({"annotators": [x, y], "items": len(both), "agreement": _round(float(np.mean([p == q for p, q in both]))),
                    "kappa": _kappa(lambda: cohen_kappa_score(a, b, labels=list(CATEGORIES)))})
    return out


def _fleiss(shared: Mapping[str, Mapping[str, str]]) -> dict | None:
    from statsmodels.stats.inter_rater import fleiss_kappa

    if not shared:
        return None
    counts = np.bincount([len(v) for v in shared.values()])
    raters = int(np.argmax(counts))  # Fleiss' kappa needs the same number of ratings per item
    table = np.array([[list(votes.values()).count(c) for c in CATEGORIES] for votes in shared.values() if len(votes) == raters])
    if len(table) < MIN_SHARED_ITEMS:
        return None
    return {"raters_per_item": raters, "items": len(table), "kappa": _kappa(lambda: fleiss_kappa(table, method="fleiss"))}


def _kappa(compute) -> float | None:
    """None where kappa is undefined (every answer the same: no chance agreement to correct)."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        value = float(compute())
    return None if not np.isfinite(value) else _round(value)


def _round(x: float) -> float:
    return round(float(x), 4)
