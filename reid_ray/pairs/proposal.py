"""Proposal: propose pairs across the gap (the segment stage, per clip pair) and route them (the route stage, per video).

Per clip pair and category, tracks of clip A are matched to tracks of clip B on the distance between their sets of
views (``proposal.distance``: Chamfer over arccos(cos)/pi, as the long-video job compares tracklets; mutual nearest
neighbours or Hungarian assignment). Routing (``proposal.routing``):

* ``calibrated``: by P(same | distance), fitted per category on the run's own certain pairs (``certain_pairs``
  here, ``reid_ray.calibration``): auto ``identical`` / auto ``same_category_different_instance`` only inside the
  bands whose estimated error stays under the target; the rest, and every match of a category that could not be
  fitted, to humans. Confidence is P(same).
* ``thresholds``: confidence 1 - distance against ``accept_threshold`` / ``reject_threshold``.

A 'person' that stands still in both clips at the same place is, on real footage, mostly a fixed object
(``static_clutter``): its match is dropped (or sent to humans), never auto ``identical``.

Negatives that need no model: two tracks seen on the same frame with their boxes apart are two instances, so an
auto-accepted match (a, b) gives hard negatives (a, b') for every such b' of b (and symmetrically). Boxes that
largely cover each other may be two detections of one individual and give none. ``unrelated`` pairs join tracks
of different categories (a face and a person are not unrelated: they may be one human)."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.optimize import linear_sum_assignment

from reid_ray.calibration import Calibration
from reid_ray.config import ProposalConfig, StaticClutterConfig
from reid_ray.models.dlib_faces import FACE_CATEGORY
from reid_ray.models.heads import l2_normalise
from reid_ray.records import box_iou
from reid_ray.pairs.clip_pairs import video_rng
from reid_ray.tracking.bridge import bridged_track_pairs
from reid_ray.tracking.distances import distance_matrix, frame_angle_distances

# (video, category, distance, static clutter?) -> (label, verified_by or None while undecided, confidence)
Router = Callable[[str, str, float, bool], tuple[str, str | None, float]]


@dataclass(frozen=True)
class Track:
    clip_pair_id: str
    side: str
    track_id: int
    category: str
    embedding: np.ndarray
    frames: frozenset[int]
    views: tuple[dict, ...]  # kept candidate rows, in frame order
    view_embeddings: np.ndarray  # (n_views, dim)
    boxes: dict[int, tuple[float, ...]]  # frame -> box of every observation, kept or not
    mean_score: float

    @property
    def rep(self) -> dict:
        """The view closest to the track's own mean: its most typical look."""
        return self.views[int(np.argmax(self.view_embeddings @ self.embedding))]

    def closest_views(self, other: "Track") -> tuple[dict, dict]:
        """The two views, one per track, nearest each other: those that decided the match, shown to humans."""
        d = frame_angle_distances(self.view_embeddings, other.view_embeddings)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        return self.views[int(i)], other.views[int(j)]

    def motion(self) -> float:
        """Largest shift of the box centre from its first observation, in median box heights."""
        b = np.asarray([self.boxes[f] for f in sorted(self.boxes)], np.float64)
        centres = (b[:, :2] + b[:, 2:]) / 2
        height = max(float(np.median(b[:, 3] - b[:, 1])), 1.0)
        return float(np.linalg.norm(centres - centres[0], axis=1).max() / height)

    def mean_box(self) -> np.ndarray:
        return np.asarray(list(self.boxes.values()), np.float64).mean(0)


def build_tracks(candidates: pa.Table | list[dict], cfg: ProposalConfig) -> list[Track]:
    """Tracks with at least ``min_track_frames`` kept observations; their embedding is the mean of those.
    ``candidates``: a table of CANDIDATE rows, or the same rows as dicts (the segment stage's, still in memory)."""
    groups: dict[tuple, list[dict]] = {}
    for r in candidates.to_pylist() if isinstance(candidates, pa.Table) else candidates:
        if r["track_id"] < 0:  # e.g. a face no tracked person owns: it cannot be followed across frames
            continue
        groups.setdefault((r["clip_pair_id"], r["side"], r["track_id"]), []).append(r)
    tracks = []
    for (cp, side, tid), obs in sorted(groups.items()):
        obs = sorted(obs, key=lambda o: o["frame"])
        kept = [o for o in obs if o["keep"]]
        if len(kept) < cfg.min_track_frames:
            continue
        views = np.asarray([o["embedding"] for o in kept], np.float32)
        boxes = {int(o["frame"]): tuple(o["bbox"]) for o in obs}
        score = float(np.mean([o["score"] for o in obs]))
        tracks.append(Track(cp, side, int(tid), kept[0]["category"], l2_normalise(views.mean(0)), frozenset(boxes), tuple(kept), views, boxes, score))
    return tracks


def set_distances(rows: list[np.ndarray], cols: list[np.ndarray], cfg: ProposalConfig) -> np.ndarray:
    """(len(rows) x len(cols)) distances between view sets (``proposal.distance``)."""
    if not rows or not cols:
        return np.zeros((len(rows), len(cols)))
    return distance_matrix([*rows, *cols], rows=slice(0, len(rows)), cols=slice(len(rows), None), **cfg.distance.model_dump())


def track_distances(ta: list[Track], tb: list[Track], cfg: ProposalConfig) -> np.ndarray:
    """(len(ta) x len(tb)) distances between the tracks' view sets."""
    return set_distances([t.view_embeddings for t in ta], [t.view_embeddings for t in tb], cfg)


def containment(a, b) -> float:
    """Intersection of two boxes over the smaller one's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / max(smaller, 1e-9))


def certainly_different(t: Track, u: Track, max_containment: float) -> bool:
    """Seen on one frame together, with boxes apart on every shared frame: two individuals, not two boxes on one."""
    shared = t.frames & u.frames
    return bool(shared) and all(containment(t.boxes[f], u.boxes[f]) < max_containment for f in shared)


def is_static_clutter(a: Track, b: Track, cfg: StaticClutterConfig) -> bool:
    """Still in both clips and at the same place across the gap (at or under ``max_score``): likely a fixed object."""
    if not cfg.enabled or a.category != "person":
        return False
    return (
        max(a.motion(), b.motion()) <= cfg.max_motion
        and float(box_iou(a.mean_box()[None], b.mean_box()[None])[0, 0]) >= cfg.min_iou_across_gap
        and (a.mean_score + b.mean_score) / 2 <= cfg.max_score
    )


def match_tracks(dist: np.ndarray, method: str) -> list[tuple[int, int]]:
    if dist.size == 0:
        return []
    if method == "hungarian":
        r, c = linear_sum_assignment(dist)
        return list(zip(r.tolist(), c.tolist()))
    best_b = dist.argmin(1)
    best_a = dist.argmin(0)
    return [(i, int(j)) for i, j in enumerate(best_b) if best_a[j] == i]


def pair_id(clip_pair_id: str, kind: str, a: Track, b: Track) -> str:
    key = f"{clip_pair_id}|{kind}|{a.side}{a.track_id}|{b.side}{b.track_id}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def _side(prefix: str, t: Track, r: dict) -> dict:
    return {
        f"{prefix}_video_id": r["video_id"],
        f"{prefix}_frame": int(r["frame"]),
        f"{prefix}_t_s": float(r["t_s"]),
        f"{prefix}_bbox": [float(v) for v in r["bbox"]],
        f"{prefix}_candidate_id": r["candidate_id"],
        f"{prefix}_track_id": t.track_id,
        f"{prefix}_score": float(r["score"]),
    }


def pair_row(clip_pair: dict, kind: str, label: str, verified_by: str | None, confidence: float, distance: float, a: Track, b: Track) -> dict:
    """Matches show the two views nearest each other; other pairs show each track's typical view."""
    a_view, b_view = a.closest_views(b) if kind == "match" else (a.rep, b.rep)
    category = a.category if a.category == b.category else f"{a.category}|{b.category}"
    return {
        "pair_id": pair_id(clip_pair["clip_pair_id"], kind, a, b),
        "label": label,
        "confidence": float(confidence),
        "verified_by": verified_by,
        "gap_s": float(clip_pair["gap_s"]),
        "category": category,
        "license": clip_pair["license"],
        "clip_pair_id": clip_pair["clip_pair_id"],
        "similarity": float(1.0 - distance),
        "kind": kind,
        **_side("a", a, a_view),
        **_side("b", b, b_view),
    }


def threshold_router(cfg: ProposalConfig) -> Router:
    def route(video_id: str, category: str, distance: float, static: bool) -> tuple[str, str | None, float]:
        confidence = 1.0 - distance
        if confidence >= cfg.accept_threshold and not static:
            return "identical", "auto", confidence
        if confidence < cfg.reject_threshold:
            return "same_category_different_instance", "auto", confidence
        return "pending_review", None, confidence  # nobody has decided yet: a human will, in form_pairs

    return route


def calibrated_router(calibration: Calibration) -> Router:
    def route(video_id: str, category: str, distance: float, static: bool) -> tuple[str, str | None, float]:
        cal = calibration.for_category(category)
        confidence = float(cal.p_same(distance, video_id)) if cal.fitted else float("nan")
        decision = cal.route(distance, video_id)
        if decision == "accept" and not static:
            return "identical", "auto", confidence
        if decision == "reject":
            return "same_category_different_instance", "auto", confidence
        return "pending_review", None, confidence

    return route


def make_router(cfg: ProposalConfig, calibration: Calibration | None) -> Router:
    if cfg.routing == "thresholds":
        return threshold_router(cfg)
    if calibration is None:
        raise ValueError("proposal.routing 'calibrated' needs the run's calibration")
    return calibrated_router(calibration)


def _by_side_and_category(tracks: list[Track]) -> dict[tuple[str, str], list[Track]]:
    out: dict[tuple[str, str], list[Track]] = {}
    for t in tracks:
        out.setdefault((t.side, t.category), []).append(t)
    return out


def matches(tracks: list[Track], cfg: ProposalConfig):
    """Per category: (category, tracks of A, tracks of B, their distances, matched index pairs, static ones).
    Static matches (``static_clutter``) are left out of the matched pairs when the action is 'drop'."""
    groups = _by_side_and_category(tracks)
    for category in sorted({t.category for t in tracks}):
        ta, tb = groups.get(("a", category), []), groups.get(("b", category), [])
        if ta and tb:
            dist = track_distances(ta, tb, cfg)
            matched = match_tracks(dist, cfg.method)
            static = {(i, j) for i, j in matched if is_static_clutter(ta[i], tb[j], cfg.static_clutter)}
            if cfg.static_clutter.action == "drop":
                matched = [m for m in matched if m not in static]
            yield category, ta, tb, dist, matched, static


def proposal_rows(clip_pair: dict, tracks: list[Track], cfg: ProposalConfig, matched_groups: list | None = None) -> list[dict]:
    """Every pair the clip pair can give, before routing (schema PROPOSAL): each match followed by the hard negatives
    it gives if it is accepted, then the unrelated pairs. ``matched_groups``: ``list(matches(tracks, cfg))`` when the
    caller has it already (certain_pairs takes the same). Routing only needs these rows, not the tracks: the model
    stage writes them, and ``route_proposals`` labels them once the run's calibration is known."""
    rows: list[dict] = []
    for _, ta, tb, dist, matched, static in matches(tracks, cfg) if matched_groups is None else matched_groups:
        for i, j in matched:
            match = pair_row(clip_pair, "match", "", "", float("nan"), dist[i, j], ta[i], tb[j])
            rows.append({**match, "distance": float(dist[i, j]), "static": (i, j) in static, "parent_pair_id": ""})
            rows += [{**r, "distance": 1.0 - r["similarity"], "static": False, "parent_pair_id": match["pair_id"]}
                     for r in hard_negatives(clip_pair, ta, tb, dist, i, j, float("nan"), cfg)]
    rows += [{**r, "distance": 1.0 - r["similarity"], "static": False, "parent_pair_id": ""}
             for r in unrelated(clip_pair, [t for t in tracks if t.side == "a"], [t for t in tracks if t.side == "b"], cfg)]
    return rows


PROPOSAL_ONLY = ("distance", "static", "parent_pair_id")


def route_proposals(proposals: list[dict], router: Router, video_id: str) -> list[dict]:
    """One clip pair's ``proposal_rows`` routed: matches labelled by the router; a hard negative kept only if its
    match is auto ``identical`` (it carries that match's confidence); unrelated pairs as they are."""
    rows: list[dict] = []
    accepted: dict[str, float] = {}  # pair id of an auto identical match -> its confidence
    for p in proposals:
        pair = {k: v for k, v in p.items() if k not in PROPOSAL_ONLY}
        if p["kind"] == "match":
            label, by, confidence = router(video_id, p["category"], float(p["distance"]), bool(p["static"]))
            pair.update(label=label, verified_by=by, confidence=float(confidence))
            if label == "identical":
                accepted[p["pair_id"]] = float(confidence)
        elif p["parent_pair_id"]:
            if p["parent_pair_id"] not in accepted:
                continue
            pair.update(confidence=accepted[p["parent_pair_id"]])
        rows.append(pair)
    # Two accepted matches can derive the same negative (a_i with b_k, and b_k with a_i): keep it once.
    unique: dict[str, dict] = {}
    for r in rows:
        unique.setdefault(r["pair_id"], r)
    return list(unique.values())


def propose_clip_pair(clip_pair: dict, tracks: list[Track], cfg: ProposalConfig, router: Router) -> list[dict]:
    return route_proposals(proposal_rows(clip_pair, tracks, cfg), router, clip_pair.get("video_id", ""))


def hard_negatives(
    clip_pair: dict, ta: list[Track], tb: list[Track], dist: np.ndarray, i: int, j: int, confidence: float, cfg: ProposalConfig
) -> list[dict]:
    """(a_i, b_k) for b_k certainly someone else than b_j, and (a_k, b_j) likewise for a_i: certain negatives."""
    apart = cfg.calibration.duplicate_containment
    cands = [(float(dist[i, k]), ta[i], tb[k]) for k in range(len(tb)) if k != j and certainly_different(tb[k], tb[j], apart)]
    cands += [(float(dist[k, j]), ta[k], tb[j]) for k in range(len(ta)) if k != i and certainly_different(ta[k], ta[i], apart)]
    cands.sort(key=lambda c: c[0])  # the closest negatives are the hardest, hence the most useful
    return [
        pair_row(clip_pair, "hard_negative", "same_category_different_instance", "auto", confidence, d, a, b)
        for d, a, b in cands[: cfg.hard_negatives_per_match]
    ]


def _related_categories(c1: str, c2: str) -> bool:
    # A face and a person may be the same human: never call them unrelated.
    return c1 == c2 or {c1, c2} == {FACE_CATEGORY, "person"}


def unrelated(clip_pair: dict, a_tracks: list[Track], b_tracks: list[Track], cfg: ProposalConfig) -> list[dict]:
    options = [(a, b) for a in a_tracks for b in b_tracks if not _related_categories(a.category, b.category)]
    if not options or cfg.unrelated_per_clip_pair == 0:
        return []
    rng = video_rng(0, clip_pair["clip_pair_id"])
    picks = rng.choice(len(options), size=min(cfg.unrelated_per_clip_pair, len(options)), replace=False)
    rows = []
    for k in sorted(picks.tolist()):
        a, b = options[k]
        # Categories may be embedded by different networks: their vectors are then not comparable.
        similar = float(a.embedding @ b.embedding) if a.embedding.shape == b.embedding.shape else float("nan")
        rows.append(pair_row(clip_pair, "unrelated", "unrelated", "auto", 1.0, 1.0 - similar, a, b))
    return rows


def certain_pairs(tracks: list[Track], cfg: ProposalConfig, bridges: list[dict] | None = None, matched_groups: list | None = None) -> list[dict]:
    """Distances whose answer is known without a human, per clip and category: the two halves (earlier and later
    views) of one track are one individual; two tracks in view together with boxes apart are two. With the clip
    pair's bridges (``reid_ray.tracking.bridge``), one individual across the gap: the A and B tracks of a track
    followed from clip A into clip B ('bridge_positive').
    Also the distance of every proposed match, whose mix of same and different the calibration estimates, and of
    every static match (``static_clutter``)."""
    rows: list[dict] = []
    apart = cfg.calibration.duplicate_containment

    def add(kind: str, category: str, d: float) -> None:
        rows.append({"category": category, "kind": kind, "distance": float(d)})

    for (_, category), group in sorted(_by_side_and_category(tracks).items()):
        halves = [(t.view_embeddings[: len(t.views) // 2], t.view_embeddings[len(t.views) // 2 :]) for t in group if len(t.views) >= 2]
        if halves:
            early, late = zip(*halves)
            d = set_distances(list(early), list(late), cfg)
            for k in range(len(early)):
                add("positive", category, d[k, k])
        pairs = [(x, y) for x in range(len(group)) for y in range(x + 1, len(group)) if certainly_different(group[x], group[y], apart)]
        if pairs:
            d = track_distances(group, group, cfg)
            for x, y in pairs:
                add("negative", category, d[x, y])
    for category, ta, tb, dist, matched, static in matches(tracks, cfg) if matched_groups is None else matched_groups:
        for i, j in matched:
            add("proposal", category, dist[i, j])
        for i, j in static:  # counted for the report
            add("static", category, dist[i, j])
        for i, j in bridged_track_pairs(bridges or [], ta, tb):
            if is_static_clutter(ta[i], tb[j], cfg.static_clutter):
                continue  # a still object followed across the gap says nothing about people
            add("bridge_positive", category, dist[i, j])
    return rows


def tracks_by_clip_pair(candidates: pa.Table | list[dict], cfg: ProposalConfig) -> dict[str, list[Track]]:
    by_pair: dict[str, list[Track]] = {}
    for t in build_tracks(candidates, cfg):
        by_pair.setdefault(t.clip_pair_id, []).append(t)
    return by_pair


def calibration_samples(
    clip_pairs: list[dict], candidates: pa.Table | list[dict], cfg: ProposalConfig, bridges: dict[str, list[dict]] | None = None
) -> list[dict]:
    """``certain_pairs`` of every clip pair of one video, each row keyed by its clip pair. ``bridges``: clip pair
    id -> its bridge rows, for the clip pairs that were bridged."""
    by_pair = tracks_by_clip_pair(candidates, cfg)
    return [
        {"clip_pair_id": cp["clip_pair_id"], **row}
        for cp in sorted(clip_pairs, key=lambda c: c["clip_pair_id"])
        for row in certain_pairs(by_pair.get(cp["clip_pair_id"], []), cfg, (bridges or {}).get(cp["clip_pair_id"]))
    ]


def propose_video(clip_pairs: list[dict], candidates: pa.Table, cfg: ProposalConfig, calibration: Calibration | None = None) -> list[dict]:
    router = make_router(cfg, calibration)
    by_pair = tracks_by_clip_pair(candidates, cfg)
    rows = []
    for cp in sorted(clip_pairs, key=lambda c: c["clip_pair_id"]):
        rows += propose_clip_pair(cp, by_pair.get(cp["clip_pair_id"], []), cfg, router)
    return rows
