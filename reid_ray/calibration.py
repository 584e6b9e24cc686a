"""P(same individual | track distance), fitted per category on each run's own certain pairs, and the routing
bands it gives.

Every run holds answers that need no human (``stages/propose.py::certain_pairs``): two halves of one unbroken
track are one individual; two tracks in view on one frame, their boxes apart, are two. From those:

1. A logistic regression of same/different on the distance, classes weighted equally, so its log-odds
   estimate the log likelihood ratio log f_same(d) / f_diff(d) (scikit-learn; a weak L2 keeps the slope finite
   when the certain pairs separate perfectly).
2. The share of true matches among the run's proposed matches, which the certain pairs cannot give, by EM
   on the proposals' distances with the likelihood ratio held fixed (Saerens, Latinne & Decaestecker 2002,
   "Adjusting the outputs of a classifier to new a priori probabilities").
3. P(same | d) = pi * LR(d) / (pi * LR(d) + 1 - pi); it falls as d grows.
4. Auto-accept the proposals with d <= t_accept, the largest cut whose proposals' mean P(different) stays at
   or under ``target_error``: that mean is the estimated share of wrong labels in the band. Auto-reject
   likewise from the far end, on mean P(same). The rest go to humans.

A category with too few certain pairs, or whose fit does not fall with distance, is not fitted: all its
matches go to humans, and the report says why.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from reid_ray.config import CalibrationConfig

CURVE_POINTS = 21
EM_ITERATIONS = 200


@dataclass(frozen=True)
class CategoryCalibration:
    """One category's fit and routing cuts; ``fitted`` False means everything goes to humans (``reason``)."""

    category: str
    fitted: bool
    reason: str = ""
    n_positives: int = 0
    n_negatives: int = 0
    n_proposals: int = 0
    intercept: float = 0.0  # log-odds of the likelihood ratio: intercept + slope * d
    slope: float = 0.0
    prior_same: float = 0.0  # share of true matches among the proposals (EM)
    accept_below: float = -1.0  # distance at or under which a match is auto 'identical' (-1: none)
    reject_above: float = 2.0  # distance above which a match is auto 'different' (2: none)
    estimated_error_accept: float | None = None
    estimated_error_reject: float | None = None
    n_auto_accept: int = 0
    n_auto_reject: int = 0
    n_to_humans: int = 0
    curve: list[list[float]] = field(default_factory=list)  # [distance, P(same)] at CURVE_POINTS distances

    def p_same(self, d: np.ndarray | float) -> np.ndarray:
        return p_same(np.asarray(d, np.float64), self.intercept, self.slope, self.prior_same)

    def route(self, d: float) -> str:
        """'accept', 'reject' or 'review'."""
        if not self.fitted:
            return "review"
        if d <= self.accept_below:
            return "accept"
        if d > self.reject_above:
            return "reject"
        return "review"


@dataclass(frozen=True)
class Calibration:
    by_category: dict[str, CategoryCalibration]
    target_error: float

    def for_category(self, category: str) -> CategoryCalibration:
        return self.by_category.get(category) or CategoryCalibration(category, False, "no certain pairs of this category in the run")

    def to_json(self) -> str:
        return json.dumps({"target_error": self.target_error, "by_category": {k: asdict(v) for k, v in self.by_category.items()}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Calibration":
        data = json.loads(text)
        return cls({k: CategoryCalibration(**v) for k, v in data["by_category"].items()}, data["target_error"])

    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def p_same(d: np.ndarray, intercept: float, slope: float, prior: float) -> np.ndarray:
    log_odds = intercept + slope * d + np.log(max(prior, 1e-12)) - np.log(max(1 - prior, 1e-12))
    return 1.0 / (1.0 + np.exp(-log_odds))


def fit_likelihood_ratio(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of log f_same(d) / f_diff(d), from balanced logistic regression on the certain pairs."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([positives, negatives]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    mean, std = float(x.mean()), float(x.std()) or 1.0
    model = LogisticRegression(class_weight="balanced", C=100).fit((x - mean) / std, y)
    slope = float(model.coef_[0, 0]) / std
    return float(model.intercept_[0]) - slope * mean, slope


def estimate_prior(proposals: np.ndarray, intercept: float, slope: float, start: float = 0.5) -> float:
    """Share of true matches among the proposals: EM with the likelihood ratio fixed (Saerens et al. 2002)."""
    if len(proposals) == 0:
        return start
    prior = start
    for _ in range(EM_ITERATIONS):
        new = float(p_same(proposals, intercept, slope, prior).mean())
        if abs(new - prior) < 1e-9:
            break
        prior = min(max(new, 1e-6), 1 - 1e-6)
    return prior


def choose_cuts(proposals: np.ndarray, p: np.ndarray, target: float) -> tuple[float, float, float | None, float | None]:
    """(accept_below, reject_above, estimated error of each band): the widest bands whose mean error <= target.
    ``p`` is P(same) of each proposal; both bands grow from their end of the sorted distances."""
    order = np.argsort(proposals, kind="stable")
    d, ps = proposals[order], p[order]
    n = len(d)
    wrong_if_accepted = np.cumsum(1 - ps) / np.arange(1, n + 1)  # mean P(diff) of the k closest
    wrong_if_rejected = np.cumsum(ps[::-1]) / np.arange(1, n + 1)  # mean P(same) of the k farthest
    accept_k = _widest(wrong_if_accepted, target, d)
    reject_k = _widest(wrong_if_rejected, target, d[::-1])
    reject_k = min(reject_k, n - accept_k)  # the bands never overlap
    accept_below = float(d[accept_k - 1]) if accept_k else -1.0
    if reject_k == 0:
        reject_above = 2.0
    elif reject_k == n:
        reject_above = -1.0
    else:
        reject_above = float(d[n - reject_k - 1])  # the farthest proposal kept out of the band
    err_accept = float(wrong_if_accepted[accept_k - 1]) if accept_k else None
    err_reject = float(wrong_if_rejected[reject_k - 1]) if reject_k else None
    return accept_below, reject_above, err_accept, err_reject


def _widest(mean_error: np.ndarray, target: float, d: np.ndarray) -> int:
    """Largest k with mean_error[k-1] <= target, not cutting between equal distances (all of a tie or none)."""
    ok = np.flatnonzero(mean_error <= target)
    if not len(ok):
        return 0
    k = int(ok[-1]) + 1
    while 0 < k < len(d) and d[k] == d[k - 1]:
        k -= 1
    return k


def calibrate_category(
    category: str, positives: Iterable[float], negatives: Iterable[float], proposals: Iterable[float], cfg: CalibrationConfig
) -> CategoryCalibration:
    pos, neg, prop = (np.asarray(list(x), np.float64) for x in (positives, negatives, proposals))
    counts = {"n_positives": len(pos), "n_negatives": len(neg), "n_proposals": len(prop)}
    if len(pos) < cfg.min_positives or len(neg) < cfg.min_negatives:
        reason = (f"too few certain pairs to fit: {len(pos)} same-individual (need {cfg.min_positives}), "
                  f"{len(neg)} different-individual (need {cfg.min_negatives})")
        return CategoryCalibration(category, False, reason, n_to_humans=len(prop), **counts)
    intercept, slope = fit_likelihood_ratio(pos, neg)
    if slope >= 0:
        reason = "the certain pairs do not separate: P(same) does not fall with distance"
        return CategoryCalibration(category, False, reason, intercept=intercept, slope=slope, n_to_humans=len(prop), **counts)
    prior = estimate_prior(prop, intercept, slope)
    p = p_same(prop, intercept, slope, prior)
    accept_below, reject_above, err_a, err_r = choose_cuts(prop, p, cfg.target_error)
    n_acc = int((prop <= accept_below).sum())
    n_rej = int((prop > reject_above).sum())
    grid = np.linspace(0.0, 1.0, CURVE_POINTS)
    curve = [[round(float(g), 4), round(float(v), 6)] for g, v in zip(grid, p_same(grid, intercept, slope, prior))]
    return CategoryCalibration(
        category, True, "", intercept=intercept, slope=slope, prior_same=prior, accept_below=accept_below,
        reject_above=reject_above, estimated_error_accept=err_a, estimated_error_reject=err_r, n_auto_accept=n_acc,
        n_auto_reject=n_rej, n_to_humans=len(prop) - n_acc - n_rej, curve=curve, **counts,
    )


def calibrate(samples: dict[str, dict[str, list[float]]], cfg: CalibrationConfig) -> Calibration:
    """``samples``: category -> {"positive": [...], "negative": [...], "proposal": [...]} distances."""
    return Calibration(
        {
            c: calibrate_category(c, s.get("positive", []), s.get("negative", []), s.get("proposal", []), cfg)
            for c, s in sorted(samples.items())
        },
        cfg.target_error,
    )
