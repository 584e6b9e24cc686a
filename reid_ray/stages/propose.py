"""Stage 3: propose pairs across the gap and route them by confidence.

Per clip pair and category, tracks of clip A are matched to tracks of clip B on the cosine similarity of their
pooled embeddings (mutual nearest neighbours or Hungarian assignment). The confidence of a match is that
similarity. Routing: at or above ``accept_threshold`` -> ``identical`` (auto); below ``reject_threshold`` ->
``same_category_different_instance`` (auto); between -> ``pending_review`` for humans.

Negatives that need no model: two tracks seen on the same frame are two instances, so an auto-accepted match
(a, b) gives hard negatives (a, b') for every b' co-occurring with b (and symmetrically). ``unrelated`` pairs join
tracks of different categories (a face and a person are not unrelated: they may be one human)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.optimize import linear_sum_assignment

from reid_ray.config import ProposalConfig
from reid_ray.models.dlib_faces import FACE_CATEGORY
from reid_ray.models.heads import l2_normalise
from reid_ray.stages.clip_pairs import video_rng


@dataclass(frozen=True)
class Track:
    clip_pair_id: str
    side: str
    track_id: int
    category: str
    embedding: np.ndarray
    frames: frozenset[int]
    views: tuple[dict, ...]  # kept candidate rows
    view_embeddings: np.ndarray  # (n_views, dim)

    @property
    def rep(self) -> dict:
        """The view closest to the track's own mean: its most typical look."""
        return self.views[int(np.argmax(self.view_embeddings @ self.embedding))]

    def view_facing(self, other: "Track") -> dict:
        """The view most similar to another track: shown with a match, so the picture agrees with the score."""
        return self.views[int(np.argmax(self.view_embeddings @ other.embedding))]


def build_tracks(candidates: pa.Table, cfg: ProposalConfig) -> list[Track]:
    """Tracks with at least ``min_track_frames`` kept observations; their embedding is the mean of those."""
    rows = candidates.to_pylist()
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["track_id"] < 0:  # e.g. a face no tracked person owns: it cannot be followed across frames
            continue
        groups.setdefault((r["clip_pair_id"], r["side"], r["track_id"]), []).append(r)
    tracks = []
    for (cp, side, tid), obs in sorted(groups.items()):
        kept = [o for o in obs if o["keep"]]
        if len(kept) < cfg.min_track_frames:
            continue
        views = np.asarray([o["embedding"] for o in kept], np.float32)
        emb = l2_normalise(views.mean(0))
        tracks.append(Track(cp, side, int(tid), kept[0]["category"], emb, frozenset(o["frame"] for o in obs), tuple(kept), views))
    return tracks


def match_tracks(sim: np.ndarray, method: str) -> list[tuple[int, int]]:
    if sim.size == 0:
        return []
    if method == "hungarian":
        r, c = linear_sum_assignment(-sim)
        return list(zip(r.tolist(), c.tolist()))
    best_b = sim.argmax(1)
    best_a = sim.argmax(0)
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
    }


def pair_row(clip_pair: dict, kind: str, label: str, verified_by: str, confidence: float, sim: float, a: Track, b: Track) -> dict:
    """Matches show each side's view most like the other track; other pairs show each track's typical view."""
    a_view, b_view = (a.view_facing(b), b.view_facing(a)) if kind == "match" else (a.rep, b.rep)
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
        "similarity": float(sim),
        "kind": kind,
        **_side("a", a, a_view),
        **_side("b", b, b_view),
    }


def route(confidence: float, cfg: ProposalConfig) -> tuple[str, str]:
    if confidence >= cfg.accept_threshold:
        return "identical", "auto"
    if confidence < cfg.reject_threshold:
        return "same_category_different_instance", "auto"
    return "pending_review", "human"  # labelled by a human in form_pairs


def propose_clip_pair(clip_pair: dict, tracks: list[Track], cfg: ProposalConfig) -> list[dict]:
    a_tracks = [t for t in tracks if t.side == "a"]
    b_tracks = [t for t in tracks if t.side == "b"]
    rows: list[dict] = []
    for category in sorted({t.category for t in tracks}):
        ta = [t for t in a_tracks if t.category == category]
        tb = [t for t in b_tracks if t.category == category]
        if not ta or not tb:
            continue
        sim = np.stack([t.embedding for t in ta]) @ np.stack([t.embedding for t in tb]).T
        for i, j in match_tracks(sim, cfg.method):
            label, by = route(float(sim[i, j]), cfg)
            rows.append(pair_row(clip_pair, "match", label, by, sim[i, j], sim[i, j], ta[i], tb[j]))
            if label == "identical":
                rows += hard_negatives(clip_pair, ta, tb, sim, i, j, cfg)
    rows += unrelated(clip_pair, a_tracks, b_tracks, cfg)
    # Two accepted matches can derive the same negative (a_i with b_k, and b_k with a_i): keep it once.
    unique: dict[str, dict] = {}
    for r in rows:
        unique.setdefault(r["pair_id"], r)
    return list(unique.values())


def hard_negatives(clip_pair: dict, ta: list[Track], tb: list[Track], sim: np.ndarray, i: int, j: int, cfg: ProposalConfig) -> list[dict]:
    """(a_i, b_k) for b_k seen on a frame with b_j, and (a_k, b_j) for a_k seen with a_i: certain negatives."""
    conf = float(sim[i, j])
    cands = [(float(sim[i, k]), ta[i], tb[k]) for k in range(len(tb)) if k != j and tb[k].frames & tb[j].frames]
    cands += [(float(sim[k, j]), ta[k], tb[j]) for k in range(len(ta)) if k != i and ta[k].frames & ta[i].frames]
    cands.sort(key=lambda c: -c[0])  # the most similar negatives are the hardest, hence the most useful
    return [
        pair_row(clip_pair, "hard_negative", "same_category_different_instance", "auto", conf, s, a, b)
        for s, a, b in cands[: cfg.hard_negatives_per_match]
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
        rows.append(pair_row(clip_pair, "unrelated", "unrelated", "auto", 1.0, float(a.embedding @ b.embedding), a, b))
    return rows


def propose_video(clip_pairs: list[dict], candidates: pa.Table, cfg: ProposalConfig) -> list[dict]:
    tracks = build_tracks(candidates, cfg)
    by_pair: dict[str, list[Track]] = {}
    for t in tracks:
        by_pair.setdefault(t.clip_pair_id, []).append(t)
    rows = []
    for cp in sorted(clip_pairs, key=lambda c: c["clip_pair_id"]):
        rows += propose_clip_pair(cp, by_pair.get(cp["clip_pair_id"], []), cfg)
    return rows
