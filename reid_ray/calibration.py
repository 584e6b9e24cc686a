"""P(same individual | track distance), fitted per category on each run's own certain pairs, and the routing
bands it gives.

Every run holds answers that need no human (``pairs/proposal.py::certain_pairs``): two halves of one unbroken
track are one individual; two tracks in view on one frame, their boxes apart, are two; and, for the clip pairs
whose tracks were also followed across the gap (``tracking/bridge.py``), one individual at the gap's own scale.
From those:

1. The distance distributions of same and of different individuals, kernel density estimates of the pairs
   within clips, which are plentiful. (Normal fits were tried: their thin tails hid the lookalikes in the left
   tail of the 'different' distribution, and synthetic lookalike pairs were auto-accepted: README, Measured.) A person's two views
   across the gap are farther apart than within a 2 s clip, so where a category has ``min_bridged`` tracks
   followed across the gap, the 'same' distribution is moved to their median (the shift; never past the
   'different' median).
2. The share of true matches among the proposed matches, which no certain pair gives, by EM on the proposals'
   distances with both distributions held fixed (Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of
   a classifier to new a priori probabilities"): over the whole run, and per video where a video has
   ``min_video_proposals`` of its own (videos differ: one where people rarely come back proposes more wrong
   matches). The share is very sensitive to where the 'same' distribution sits, hence the shift is measured, not
   fitted: fitted jointly, the two trade off and the fit drifts to 'all proposals are true'.
3. P(same | d, video) = pi f_same(d) / (pi f_same(d) + (1 - pi) f_diff(d)), pi the video's share, held from
   rising with distance.
4. Auto-accept the proposals whose P(same) is at least ``accept_p``, the lowest cut whose accepted proposals'
   mean P(different) stays at or under ``target_error``: that mean is the estimated share of wrong labels in
   the band. Auto-reject likewise from the other end (P(same) at most ``reject_p``), on mean P(same). No pair
   whose own error is above ``max_error_each`` gets an auto label, however sure the rest of its band is. The rest
   go to humans.

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
EM_ITERATIONS = 500
GRID = np.linspace(0.0, 1.0, 501)  # distances at which the likelihood ratio is tabulated


@dataclass(frozen=True)
class CategoryCalibration:
    """One category's fit and routing cuts; ``fitted`` False means everything goes to humans (``reason``)."""

    category: str
    fitted: bool
    reason: str = ""
    n_positives: int = 0
    n_negatives: int = 0
    n_proposals: int = 0
    mu_same: float = 0.0  # medians of the certain pairs' distances
    mu_diff: float = 1.0
    shift: float = 0.0  # how much farther one individual's views are across the gap than within a clip (bridges)
    prior_same: float = 0.0  # share of true matches among the run's proposals (EM)
    video_priors: dict[str, float] = field(default_factory=dict)  # the same, per video with enough proposals
    accept_p: float = 2.0  # P(same) at or above which a match is auto 'identical' (2: none)
    reject_p: float = -1.0  # P(same) at or below which a match is auto 'different' (-1: none)
    estimated_error_accept: float | None = None
    estimated_error_reject: float | None = None
    n_auto_accept: int = 0
    n_auto_reject: int = 0
    n_to_humans: int = 0
    n_static: int = 0  # matches of a still 'person' at the same place (static_clutter): dropped or sent to humans
    n_bridged: int = 0  # tracks followed across the gap; with min_bridged of them, their median places 'same'
    curve: list[list[float]] = field(default_factory=list)  # [distance, P(same)] at CURVE_POINTS distances, run prior
    log_likelihood_ratio: list[float] = field(default_factory=list)  # log f_same / f_diff at GRID

    def prior(self, video_id: str | None = None) -> float:
        return self.video_priors.get(video_id or "", self.prior_same)

    @property
    def model(self) -> "DistanceModel":
        return DistanceModel(tuple(self.log_likelihood_ratio))

    def p_same(self, d: np.ndarray | float, video_id: str | None = None) -> np.ndarray:
        return self.model.p_same(np.asarray(d, np.float64), self.prior(video_id))

    def route(self, d: float, video_id: str | None = None) -> str:
        """'accept', 'reject' or 'review'."""
        if not self.fitted:
            return "review"
        p = float(self.p_same(d, video_id))
        if p >= self.accept_p:
            return "accept"
        if p <= self.reject_p:
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


@dataclass(frozen=True)
class DistanceModel:
    """log f_same(d) / f_diff(d) tabulated at ``GRID`` (linear in between): a fixed size whatever the corpus."""

    log_lr: tuple[float, ...]

    @classmethod
    def fit(cls, same: np.ndarray, different: np.ndarray, shift: float = 0.0) -> "DistanceModel":
        """Kernel density estimates (scipy, Scott's bandwidth) of both, 'same' moved by ``shift``, inside the range
        of the pairs; then the
        non-increasing least-squares fit to their log ratio, weighted by where the pairs lie (scikit-learn's
        isotonic regression): a farther pair never looks more alike, and a stray pair far from the others cannot
        bend the curve where there is no data."""
        from scipy.stats import gaussian_kde
        from sklearn.isotonic import IsotonicRegression

        # Beyond the pairs' range the kernels' tails say nothing about the data: hold the ratio at its edge values.
        at = np.clip(GRID, min(same.min() + shift, different.min()), max(same.max() + shift, different.max()))
        log_same, log_diff = gaussian_kde(same).logpdf(at - shift), gaussian_kde(different).logpdf(at)
        weight = np.exp(log_same) + np.exp(log_diff) + 1e-9
        log_lr = IsotonicRegression(increasing=False).fit(GRID, log_same - log_diff, sample_weight=weight).predict(GRID)
        return cls(tuple(np.round(log_lr, 6).tolist()))

    def log_likelihood_ratio(self, d: np.ndarray) -> np.ndarray:
        return np.interp(d, GRID, np.asarray(self.log_lr))

    def p_same(self, d: np.ndarray, prior: float | np.ndarray) -> np.ndarray:
        prior = np.clip(prior, 1e-12, 1 - 1e-12)
        log_odds = self.log_likelihood_ratio(np.asarray(d, np.float64)) + np.log(prior) - np.log(1 - prior)
        return 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700, 700)))


def estimate_prior(proposals: np.ndarray, model: DistanceModel, start: float) -> float:
    """Share of true matches among some proposals, the distributions held fixed (Saerens et al. 2002). No proposals
    are no evidence: the starting share stands (not NaN)."""
    if len(proposals) == 0:
        return start
    prior = start
    for _ in range(EM_ITERATIONS):
        new = float(np.clip(model.p_same(proposals, prior).mean(), 1e-6, 1 - 1e-6))
        if abs(new - prior) < 1e-9:
            return new
        prior = new
    return prior


def choose_cuts(p: np.ndarray, target: float, max_error_each: float = 1.0) -> tuple[float, float, float | None, float | None]:
    """(accept_p, reject_p, estimated error of each band): the widest bands whose mean error <= target, grown from
    the most and the least likely matches, and holding no match whose own error is above ``max_error_each``.
    ``p`` is P(same) of each proposal."""
    ps = np.sort(p)[::-1]  # most likely first
    n = len(ps)
    wrong_if_accepted = np.cumsum(1 - ps) / np.arange(1, n + 1)  # mean P(diff) of the k likeliest
    wrong_if_rejected = np.cumsum(ps[::-1]) / np.arange(1, n + 1)  # mean P(same) of the k least likely
    accept_k = min(_widest(wrong_if_accepted, target, ps), int((ps >= 1 - max_error_each).sum()))
    accept_k = _no_tie_cut(ps, accept_k)
    reject_k = min(_widest(wrong_if_rejected, target, ps[::-1]), int((ps <= max_error_each).sum()), n - accept_k)
    reject_k = _no_tie_cut(ps[::-1], reject_k)  # the bands never overlap
    accept_p = float(ps[accept_k - 1]) if accept_k else 2.0
    reject_p = float(ps[n - reject_k]) if reject_k else -1.0
    err_accept = float(wrong_if_accepted[accept_k - 1]) if accept_k else None
    err_reject = float(wrong_if_rejected[reject_k - 1]) if reject_k else None
    return accept_p, reject_p, err_accept, err_reject


def _widest(mean_error: np.ndarray, target: float, ordered: np.ndarray) -> int:
    """Largest k with mean_error[k-1] <= target, not cutting between equal values (all of a tie or none)."""
    ok = np.flatnonzero(mean_error <= target)
    return _no_tie_cut(ordered, int(ok[-1]) + 1) if len(ok) else 0


def _no_tie_cut(ordered: np.ndarray, k: int) -> int:
    while 0 < k < len(ordered) and ordered[k] == ordered[k - 1]:
        k -= 1
    return k


def calibrate_category(
    category: str,
    positives: Iterable[float],
    negatives: Iterable[float],
    proposals: Iterable[float],
    cfg: CalibrationConfig,
    proposal_videos: Iterable[str] | None = None,
    n_static: int = 0,
    bridge_positives: Iterable[float] = (),
) -> CategoryCalibration:
    """``proposal_videos``: the video of each proposal (None: one video); ``bridge_positives``: distances of tracks
    followed across the gap."""
    pos, neg, prop = (np.asarray(list(x), np.float64) for x in (positives, negatives, proposals))
    videos = np.asarray(list(proposal_videos) if proposal_videos is not None else [""] * len(prop), dtype=object)
    bridge_positives = list(bridge_positives)
    counts = {"n_positives": len(pos), "n_negatives": len(neg), "n_proposals": len(prop), "n_static": n_static,
              "n_bridged": len(bridge_positives)}
    if len(pos) < cfg.min_positives or len(neg) < cfg.min_negatives:
        reason = (f"too few certain pairs to fit: {len(pos)} same-individual (need {cfg.min_positives}), "
                  f"{len(neg)} different-individual (need {cfg.min_negatives})")
        return CategoryCalibration(category, False, reason, n_to_humans=len(prop), **counts)
    mu1, mu0 = float(np.median(pos)), float(np.median(neg))
    fit = {"mu_same": mu1, "mu_diff": mu0}
    if mu1 >= mu0:
        reason = "the certain pairs do not separate: same individuals are not closer than different ones"
        return CategoryCalibration(category, False, reason, n_to_humans=len(prop), **fit, **counts)
    bridged = np.asarray(list(bridge_positives), np.float64)
    shift = float(np.clip(np.median(bridged) - mu1, 0.0, mu0 - mu1)) if len(bridged) >= cfg.min_bridged else 0.0
    model = DistanceModel.fit(pos, neg, shift)
    prior = estimate_prior(prop, model, 0.5)
    # Grouped once (sort), not one comparison pass per video: a million proposals over thousands of videos.
    names, inverse, sizes = np.unique(videos.astype(str), return_inverse=True, return_counts=True)
    groups = np.split(prop[np.argsort(inverse, kind="stable")], np.cumsum(sizes)[:-1])
    video_priors = {
        str(v): estimate_prior(g, model, prior) for v, g, n in zip(names, groups, sizes) if v and n >= cfg.min_video_proposals
    }
    priors = np.asarray([video_priors.get(str(v), prior) for v in names], np.float64)[inverse] if len(prop) else np.zeros(0)
    p = model.p_same(prop, priors)
    accept_p, reject_p, err_a, err_r = choose_cuts(p, cfg.target_error, cfg.max_error_each)
    n_acc, n_rej = int((p >= accept_p).sum()), int((p <= reject_p).sum())
    grid = np.linspace(0.0, 1.0, CURVE_POINTS)
    curve = [[round(float(g), 4), round(float(v), 6)] for g, v in zip(grid, model.p_same(grid, prior))]
    return CategoryCalibration(
        category, True, "", shift=shift, prior_same=prior, video_priors=video_priors, log_likelihood_ratio=list(model.log_lr), **fit,
        accept_p=accept_p, reject_p=reject_p, estimated_error_accept=err_a, estimated_error_reject=err_r,
        n_auto_accept=n_acc, n_auto_reject=n_rej, n_to_humans=len(prop) - n_acc - n_rej, curve=curve, **counts,
    )


def calibrate(samples: dict[str, dict[str, list]], cfg: CalibrationConfig) -> Calibration:
    """``samples``: category -> {"positive", "negative", "bridge_positive", "proposal", "static":
    distances, and optionally "proposal_video": the video of each proposal}."""
    return Calibration(
        {
            c: calibrate_category(c, s.get("positive", []), s.get("negative", []), s.get("proposal", []), cfg,
                                  s.get("proposal_video"), len(s.get("static", [])), s.get("bridge_positive", []))
            for c, s in sorted(samples.items())
        },
        cfg.target_error,
    )
