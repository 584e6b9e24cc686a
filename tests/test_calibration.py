"""Routing calibrated on a run's own certain pairs, the static-clutter rule and the duplicate-box rule, on
hand-built inputs whose answers are known."""
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from reid_ray.calibration import Calibration, calibrate, calibrate_category
from reid_ray.config import CalibrationConfig, ProposalConfig
from reid_ray.schemas import CANDIDATE
from reid_ray.pairs.proposal import build_tracks, calibration_samples, certainly_different, is_static_clutter, propose_video

CFG = CalibrationConfig(target_error=0.01, min_positives=20, min_negatives=20)


def _spread(lo: float, hi: float, n: int) -> np.ndarray:
    return np.linspace(lo, hi, n)


def test_certain_pairs_fix_the_cuts():
    """Same-individual pairs at 0.05-0.15, different at 0.35-0.45: close proposals are accepted, far ones
    rejected, each band within the target; moving the certain negatives closer shrinks the accept band."""
    pos, neg = _spread(0.05, 0.15, 60), _spread(0.35, 0.45, 60)
    proposals = np.concatenate([_spread(0.06, 0.14, 40), _spread(0.36, 0.44, 20)])
    cal = calibrate_category("person", pos, neg, proposals, CFG)
    assert cal.fitted and cal.mu_same < cal.mu_diff and 0 <= cal.shift < 0.02
    assert [cal.route(d) for d in (0.14, 0.36)] == ["accept", "reject"]
    assert cal.n_auto_accept == 40 and cal.n_auto_reject == 20 and cal.n_to_humans == 0
    assert cal.estimated_error_accept <= 0.01 and cal.estimated_error_reject <= 0.01
    assert cal.prior_same == pytest.approx(40 / 60, abs=0.03)  # the mix of the proposals, which no certain pair gives
    assert 0.05 < cal.p_same(0.25) < 0.99  # between the two populations: not certain either way
    closer = calibrate_category("person", pos, _spread(0.1, 0.2, 60), proposals, CFG)
    assert closer.n_auto_accept < cal.n_auto_accept and closer.route(0.14) != "accept"


def test_a_run_with_certain_pairs_but_no_proposal_gets_a_finite_calibration():
    """No proposals are no evidence about their mix: the fit keeps its starting share, and calibration.json stays
    valid JSON (NaN is not)."""
    import json

    cal = calibrate({"person": {"positive": _spread(0.05, 0.15, 60), "negative": _spread(0.35, 0.45, 60)}}, CFG)
    person = cal.for_category("person")
    assert person.fitted and person.n_proposals == 0 and np.isfinite(person.prior_same)
    json.loads(cal.to_json(), parse_constant=lambda c: pytest.fail(f"{c} in calibration.json"))


@pytest.mark.parametrize("gap_shift", [0.0, 0.04])
def test_estimated_error_tracks_the_real_error(gap_shift):
    """Proposals drawn from the populations of the certain pairs, with known truth (and true matches across the gap
    farther apart than a track's own halves, by gap_shift, which tracks followed across the gap measure): the
    estimated share of wrong auto labels is within a factor of two of the real one."""
    rng = np.random.default_rng(0)
    same = lambda n, shift=0.0: rng.normal(0.18 + shift, 0.05, n)  # noqa: E731
    diff = lambda n: rng.normal(0.36, 0.04, n)  # noqa: E731
    truth = np.concatenate([np.ones(3000, bool), np.zeros(2000, bool)])
    proposals = np.concatenate([same(3000, gap_shift), diff(2000)])
    cal = calibrate_category("person", same(400), diff(400), proposals, CalibrationConfig(target_error=0.02),
                             bridge_positives=same(400, gap_shift))  # tracks followed across the gap
    assert cal.shift == pytest.approx(gap_shift, abs=0.015) and cal.prior_same == pytest.approx(0.6, abs=0.05)
    accepted = np.array([cal.route(d) == "accept" for d in proposals])
    rejected = np.array([cal.route(d) == "reject" for d in proposals])
    real_accept = float((~truth[accepted]).mean())
    real_reject = float(truth[rejected].mean())
    assert accepted.sum() > 500 and rejected.sum() > 300
    assert real_accept / 2 <= cal.estimated_error_accept <= real_accept * 2, (real_accept, cal.estimated_error_accept)
    assert real_reject / 2 <= cal.estimated_error_reject <= real_reject * 2, (real_reject, cal.estimated_error_reject)


def test_a_video_whose_proposals_are_mostly_wrong_gets_its_own_share():
    """Two videos with the same looks but different mixes: the one where people rarely come back proposes mostly
    wrong matches, so the same distance is less likely the same person there, and fewer of its matches go auto."""
    rng = np.random.default_rng(1)
    same, diff = (lambda n: rng.normal(0.18, 0.05, n)), (lambda n: rng.normal(0.34, 0.05, n))  # noqa: E731
    proposals = np.concatenate([same(270), diff(30), same(30), diff(270)])
    videos = ["returning"] * 300 + ["passing"] * 300
    cfg = CalibrationConfig(target_error=0.02, min_video_proposals=100)
    cal = calibrate_category("person", same(400), diff(400), proposals, cfg, videos)
    assert cal.video_priors["returning"] == pytest.approx(0.9, abs=0.06) and cal.video_priors["passing"] == pytest.approx(0.1, abs=0.06)
    assert cal.p_same(0.25, "passing") < cal.p_same(0.25) < cal.p_same(0.25, "returning")
    accepted = Counter(v for v, d in zip(videos, proposals) if cal.route(d, v) == "accept")
    assert accepted["returning"] > 2 * accepted["passing"]
    pooled = calibrate_category("person", same(400), diff(400), proposals, cfg.model_copy(update={"min_video_proposals": 1000}), videos)
    assert not pooled.video_priors  # too few proposals per video: one share for the run


def test_too_few_certain_pairs_send_the_category_to_humans():
    cal = calibrate({"animal": {"positive": [0.1] * 5, "negative": [0.4] * 50, "proposal": [0.1, 0.4]}}, CFG)
    animal = cal.for_category("animal")
    assert not animal.fitted and "5 same-individual" in animal.reason and animal.n_to_humans == 2
    assert animal.route(0.0) == "review" and cal.for_category("product").route(0.0) == "review"
    assert Calibration.from_json(cal.to_json()) == cal


def _cand(cp, side, track, frame, emb, bbox, score=0.9):
    return {
        "candidate_id": f"{cp}_{side}_{track}_{frame}", "clip_pair_id": cp, "side": side, "track_id": track,
        "video_id": "v", "license": "synthetic", "category": "person", "score": score, "frame": frame,
        "t_s": frame / 10, "bbox": list(bbox), "mask_rle": "", "mask_height": 0, "mask_width": 0,
        "keypoints": [], "sharpness": 100.0, "max_overlap": 0.0, "max_similarity_in_frame": 0.0, "keep": True,
        "reject_reason": "", "embedding": list(emb),
    }


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def _accept_everything_close() -> Calibration:
    return calibrate({"person": {"positive": _spread(0.0, 0.1, 30), "negative": _spread(0.4, 0.5, 30),
                                 "proposal": [0.0] * 10 + [0.45] * 5}}, CFG)


def test_a_still_person_at_the_same_place_across_the_gap_is_never_auto_identical():
    e = np.eye(8, dtype=np.float32)
    still_box, rows = (200.0, 50.0, 230.0, 130.0), []
    for cp in ("still", "walker", "strong"):
        for side, frames in (("a", (0, 5, 10)), ("b", (100, 105, 110))):
            for f in frames:
                walk = (10.0 + 3 * f, 40.0, 40.0 + 3 * f, 120.0)
                box = walk if cp == "walker" else still_box
                score = 0.9 if cp == "strong" else 0.4
                rows.append(_cand(cp, side, 0, f, e[0], box, score))
    table = pa.Table.from_pylist(rows, schema=CANDIDATE)
    clip_pairs = [{"clip_pair_id": c, "gap_s": 10.0, "license": "synthetic"} for c in ("still", "walker", "strong")]

    def labels(**static) -> dict:
        cfg = ProposalConfig(min_track_frames=2)
        cfg = cfg.model_copy(update={"static_clutter": cfg.static_clutter.model_copy(update=static)})
        return {p["clip_pair_id"]: p["label"] for p in propose_video(clip_pairs, table, cfg, _accept_everything_close())}

    assert labels() == {"walker": "identical"}  # still ones dropped, whatever their score
    assert labels(action="review") == {"still": "pending_review", "walker": "identical", "strong": "pending_review"}
    assert labels(max_score=0.6) == {"walker": "identical", "strong": "identical"}  # only weakly detected still ones
    assert labels(enabled=False) == {"still": "identical", "walker": "identical", "strong": "identical"}
    cfg = ProposalConfig(min_track_frames=2)
    statics = [s for s in calibration_samples(clip_pairs, table, cfg) if s["kind"] == "static"]
    assert sorted(s["clip_pair_id"] for s in statics) == ["still", "strong"]
    tracks = {(t.clip_pair_id, t.side): t for t in build_tracks(table, cfg)}
    assert is_static_clutter(tracks["still", "a"], tracks["still", "b"], cfg.static_clutter)
    assert not is_static_clutter(tracks["walker", "a"], tracks["walker", "b"], cfg.static_clutter)


def test_two_boxes_on_one_person_are_not_a_certain_negative():
    """A detector's second box inside a person's box may be the same person: no hard negative and no calibration
    negative from it; two people side by side give both."""
    e = np.eye(8, dtype=np.float32)
    rows = []
    for side, frames in (("a", (0, 5)), ("b", (100, 105))):
        for f in frames:
            x = 0.5 * f  # walking
            rows.append(_cand("cp", side, 0, f, e[0], (10 + x, 10, 50 + x, 130)))
            rows.append(_cand("cp", side, 1, f, _unit(e[0] + 0.9 * e[1]), (12 + x, 12, 48 + x, 70)))  # track 0's upper body
            rows.append(_cand("cp", side, 2, f, e[2], (400 - x, 10, 440 - x, 130)))  # someone else
    table = pa.Table.from_pylist(rows, schema=CANDIDATE)
    cfg = ProposalConfig(min_track_frames=2)
    tracks = {(t.side, t.track_id): t for t in build_tracks(table, cfg)}
    apart = cfg.calibration.duplicate_containment
    assert not certainly_different(tracks["a", 0], tracks["a", 1], apart)
    assert certainly_different(tracks["a", 0], tracks["a", 2], apart) and certainly_different(tracks["a", 1], tracks["a", 2], apart)
    negatives = [s for s in calibration_samples([{"clip_pair_id": "cp"}], table, cfg) if s["kind"] == "negative"]
    assert len(negatives) == 4  # (0, 2) and (1, 2) on each side, never (0, 1)
    pairs = propose_video([{"clip_pair_id": "cp", "gap_s": 10.0, "license": "synthetic"}], table, cfg, _accept_everything_close())
    hard = {(p["a_track_id"], p["b_track_id"]) for p in pairs if p["kind"] == "hard_negative"}
    assert hard and not hard & {(0, 1), (1, 0)}


def test_a_stray_negative_does_not_bend_the_curve_and_no_doubtful_pair_is_auto_labelled():
    pos, neg = _spread(0.12, 0.22, 150), np.concatenate([[0.11], _spread(0.32, 0.47, 124)])  # one lookalike pair
    cfg = CalibrationConfig(target_error=0.05, max_error_each=0.1)
    cal = calibrate_category("person", pos, neg, np.concatenate([_spread(0.12, 0.22, 40), _spread(0.33, 0.46, 10)]), cfg)
    assert cal.p_same(0.17) > 0.99 and cal.p_same(0.4) < 0.01
    grid = np.linspace(0, 1, 200)
    assert all(np.diff(cal.model.log_likelihood_ratio(grid)) <= 1e-9)  # never rises with distance
    doubtful = float(grid[np.argmin(np.abs(cal.p_same(grid) - 0.6))])  # a pair that is 40 % likely someone else
    proposals = np.concatenate([_spread(0.12, 0.22, 40), [doubtful], _spread(0.33, 0.46, 10)])
    cal = calibrate_category("person", pos, neg, proposals, cfg)
    assert cal.route(doubtful) == "review"  # its band's mean error would allow it; its own error does not
    loose = calibrate_category("person", pos, neg, proposals, cfg.model_copy(update={"max_error_each": 1.0}))
    assert loose.route(doubtful) != "review" and loose.n_to_humans == cal.n_to_humans - 1
