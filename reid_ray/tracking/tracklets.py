"""Per-frame detections -> tracklets: pieces of one person's track inside one shot.

A tracklet is only trusted where IoU tracking is trustworthy: association runs separately inside each
segment (a TransNetV2 shot, split into pieces of at most ``max_shot_frames``), so no tracklet crosses a cut;
and a track that was last seen touching the frame edge and then missed has left the frame, so it ends there
even when the tracker would continue it (whoever comes back in is a question for re-identification).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from reid_ray.records import Instances
from reid_ray.tracking.associate import (
    AssociationParams,
    link_frames,
    split_on_appearance,
)

if TYPE_CHECKING:  # the config module imports tracking modules: a type only here
    from reid_ray.config import TrackingConfig


@dataclass(frozen=True)
class Tracklet:
    tracklet_id: int
    shot_id: int
    frames: np.ndarray  # (n,) int64, 0-based, increasing
    boxes: np.ndarray  # (n, 4) float32 xyxy, source pixels
    scores: np.ndarray  # (n,) float32
    det_index: np.ndarray  # (n,) int64: row of this detection within its frame's Instances
    clean: np.ndarray  # (n,) bool: view neither cut by the frame edge nor overlapped by another person

    def __len__(self) -> int:
        return len(self.frames)


def split_segments(shots: list[tuple[int, int]], max_shot_frames: int) -> list[tuple[int, int, int]]:
    """(shot_id, start, end) pieces of at most ``max_shot_frames`` frames, covering every shot."""
    out = []
    for shot_id, (s, e) in enumerate(shots):
        n_pieces = max(1, -(-(e - s) // max_shot_frames))
        bounds = np.linspace(s, e, n_pieces + 1).round().astype(int)  # even pieces: no 2-frame tail
        out.extend((shot_id, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a)
    return out


def touches_border(box: np.ndarray, frame_shape: tuple[int, int], margin: float) -> bool:
    h, w = frame_shape
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1 <= margin or y1 <= margin or x2 >= w - margin or y2 >= h - margin


def clean_views(
    detections: list[Instances], frame_shape: tuple[int, int], border_px: float, max_overlap: float, occluded_by: str = "any"
) -> list[np.ndarray]:
    """Per frame, which detections show a whole, unobstructed person: the views whose look can be trusted
    (another person's box over a core mask, or a body cut by the edge, changes the embedding more than
    the identity does). With ``occluded_by="nearer"`` only a box whose bottom edge is at least as low counts:
    on a ground plane seen from above, lower feet are nearer the camera, so the person in front of a crossing
    stays clean and keeps its track whole; only the one behind is hidden."""
    out = []
    for d in detections:
        n = len(d)
        ok = np.array([not touches_border(b, frame_shape, border_px) for b in d.boxes], bool).reshape(n)
        if n > 1:
            b = d.boxes
            lt = np.maximum(b[:, None, :2], b[None, :, :2])
            rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
            inter = (rb - lt).clip(0).prod(-1)
            np.fill_diagonal(inter, 0)
            if occluded_by == "nearer":
                inter = np.where(b[None, :, 3] >= b[:, None, 3], inter, 0.0)  # [i, j]: j's feet at or below i's
            area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-6)
            ok &= (inter / area[:, None]).max(1) <= max_overlap
        out.append(ok)
    return out


def _split_on_height_jumps(boxes: np.ndarray, max_ratio: float) -> list[np.ndarray]:
    """Index runs of one track, cut where the box height changes by more than ``max_ratio`` between consecutive
    detections. A walking person's height barely changes from frame to frame; a jump means the detector's one box
    moved onto someone else (two people behind one box, the nearer one taking over when the other is hidden)."""
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    jumps = np.flatnonzero(np.abs(np.diff(np.log(h))) > np.log(max_ratio)) + 1
    return np.split(np.arange(len(boxes)), jumps)


def _split_on_exits(frames: np.ndarray, boxes: np.ndarray, frame_shape: tuple[int, int], margin: float) -> list[np.ndarray]:
    """Index runs of one track, cut after every gap that follows a box at the frame edge (the object left)."""
    cuts = [
        k + 1
        for k in range(len(frames) - 1)
        if frames[k + 1] - frames[k] > 1 and touches_border(boxes[k], frame_shape, margin)
    ]
    return np.split(np.arange(len(frames)), cuts)


# View states of a detection along a track: cuts fall where the state changes.
CLEAR, HIDDEN, AT_EDGE = 0, 1, 2


def _split_on_view_state(state: np.ndarray) -> list[np.ndarray]:
    """Index runs of one track with one view state. Where people overlap, IoU association swaps them (on the
    synthetic footage nearly every swap lies inside an occluded stretch, while the tracker's links where the
    overlap starts and ends hold), and at the frame edge one person walking out and another walking in are
    linked without a gap; so such stretches become tracklets of their own and clear runs stay pure."""
    return np.split(np.arange(len(state)), np.flatnonzero(np.diff(state.astype(np.int8))) + 1)


def _views_among(
    detections: list[Instances], keep: list[np.ndarray], frame_shape: tuple[int, int], border_px: float, max_overlap: float,
    occluded_by: str,
) -> list[np.ndarray]:
    """``clean_views`` judged among the kept detections of each frame only; the others get False."""
    out = []
    for d, k in zip(detections, keep):
        flags = np.zeros(len(d), bool)
        idx = np.flatnonzero(k)
        if len(idx):
            flags[idx] = clean_views([d.select(idx)], frame_shape, border_px, max_overlap, occluded_by)[0]
        out.append(flags)
    return out


def _link_segments(
    detections: list[Instances], segments: list[tuple[int, int, int]], params: AssociationParams, max_missed: int,
    embeddings: list[np.ndarray] | None, split_similarity: float | None, clean: list[np.ndarray],
    secondary: list[np.ndarray] | None, ids_given: bool = False,
) -> list[list[np.ndarray]]:
    """Per segment, the track id of every detection of every frame (-1: an unclaimed low-score box). With
    ``ids_given`` the detections' own ``track_ids`` (a video segmenter's, unique within the segment) are taken."""
    out = []
    for _, start, end in segments:
        dets = detections[start:end]
        if ids_given:
            out.append([np.asarray(d.track_ids, np.int64) if d.track_ids is not None else -np.ones(len(d), np.int64) for d in dets])
            continue
        embs = embeddings[start:end] if embeddings is not None else [None] * len(dets)
        ids = link_frames([d.boxes for d in dets], [d.categories for d in dets], list(embs), params, max_missed,
                          clean[start:end], secondary[start:end] if secondary is not None else None)
        if embeddings is not None and split_similarity is not None:
            ids = split_on_appearance(ids, list(embs), split_similarity, clean[start:end])
        out.append(ids)
    return out


def association_params(tracking: TrackingConfig) -> AssociationParams:
    """Frame-to-frame association's gates and weights from the tracking config."""
    return AssociationParams(min_iou=tracking.min_iou, min_similarity=tracking.min_similarity,
                             appearance_weight=tracking.appearance_weight, appearance_momentum=tracking.appearance_momentum)


def build_tracklets(
    detections: list[Instances],
    shots: list[tuple[int, int]],
    frame_shape: tuple[int, int],
    tracking: TrackingConfig,
    max_shot_frames: int,
    *,
    embeddings: list[np.ndarray] | None = None,
    secondary: list[np.ndarray] | None = None,
    track_ids_given: bool = False,
    association: AssociationParams | None = None,
) -> list[Tracklet]:
    """Tracklets (ids 0..k-1, in order of first frame) from one video's per-frame detections, by the rules of
    ``tracking`` (``max_missed``, ``min_tracklet_frames``, ``border_px``, ``max_overlap``, ``occluded_by``,
    ``split_similarity``, ``split_at_occlusions``, ``max_height_jump``; ``association`` defaults to its gates).

    With ``embeddings`` (one L2-normalised row per detection), association also weighs appearance, and with
    ``split_similarity`` a track is cut where consecutive clean views look less alike than that: boxes of two
    people who cross can swap under IoU, and a tracklet holding two people can never cluster right. With
    ``split_at_occlusions`` it is also cut where its view state changes (clear, hidden by someone, cut by the
    edge).

    ``occluded_by`` decides whose box hides a view for tracking (gating, the track's look, the cuts); a
    tracklet's ``clean`` flags stay strict (no other box over it at all): they choose the views its distances
    compare, and the front person of a crossing still carries some of the back person's pixels.

    ``secondary`` (per frame): low-score detections that may only continue a track (see ``link_frames``);
    those no track claims are left out of every tracklet and of every other view's occlusion test.
    ``max_height_jump``: a track is also cut where its box height changes by more than this factor between
    consecutive detections (see ``_split_on_height_jumps``); both sides are kept, however short.
    ``track_ids_given``: the detections carry a video segmenter's track ids (SAM3's object ids, one session per
    segment): those are the raw tracks, no frame-to-frame linking; they are still cut where the object leaves the
    frame, and by the other rules asked for."""
    params = association if association is not None else association_params(tracking)
    max_missed, min_frames, border_px = tracking.max_missed, tracking.min_tracklet_frames, tracking.border_px
    max_overlap, occluded_by, split_similarity = tracking.max_overlap, tracking.occluded_by, tracking.split_similarity
    split_at_occlusions, max_height_jump = tracking.split_at_occlusions, tracking.max_height_jump
    segments = split_segments(shots, max_shot_frames)
    if secondary is not None:
        # Low-score boxes may only extend a track: views are judged among the confident ones while linking,
        # then again among every box that ended up in a track (an unclaimed low box is no person).
        confident = [~np.asarray(s, bool) for s in secondary]
        linking_clean = _views_among(detections, confident, frame_shape, border_px, max_overlap, occluded_by)
        seg_ids = _link_segments(detections, segments, params, max_missed, embeddings, split_similarity, linking_clean, secondary)
        kept = [np.zeros(len(d), bool) for d in detections]
        for (_, start, _), ids in zip(segments, seg_ids):
            for f, tids in enumerate(ids):
                kept[start + f] = tids >= 0
        clean = _views_among(detections, kept, frame_shape, border_px, max_overlap, occluded_by)
        strict = clean if occluded_by == "any" else _views_among(detections, kept, frame_shape, border_px, max_overlap, "any")
    else:
        clean = clean_views(detections, frame_shape, border_px, max_overlap, occluded_by)
        strict = clean if occluded_by == "any" else clean_views(detections, frame_shape, border_px, max_overlap, "any")
        seg_ids = _link_segments(detections, segments, params, max_missed, embeddings, split_similarity, clean, None, track_ids_given)
    pieces: list[tuple[int, np.ndarray, np.ndarray]] = []  # (shot_id, frames, det_index)
    for (shot_id, start, end), ids in zip(segments, seg_ids):
        by_track: dict[int, list[tuple[int, int]]] = {}
        for f, tids in enumerate(ids):
            for n, t in enumerate(tids):
                if t < 0:  # a low-score box no track claimed
                    continue
                by_track.setdefault(int(t), []).append((start + f, n))
        for members in by_track.values():
            frames = np.array([m[0] for m in members], np.int64)
            det_index = np.array([m[1] for m in members], np.int64)
            boxes = np.stack([detections[f].boxes[i] for f, i in members])
            for run in _split_on_exits(frames, boxes, frame_shape, border_px):
                if len(run) < min_frames:  # too short to be trusted as a person at all
                    continue
                # A cut inside a trusted run keeps both sides, however short: they are boxes of real people.
                subs = _split_on_height_jumps(boxes[run], max_height_jump) if max_height_jump is not None else [np.arange(len(run))]
                for part in (run[sub] for sub in subs):
                    if not split_at_occlusions:
                        pieces.append((shot_id, frames[part], det_index[part]))
                        continue
                    is_clear = np.array([clean[f][i] for f, i in zip(frames[part], det_index[part])], bool)
                    at_edge = np.array([touches_border(b, frame_shape, border_px) for b in boxes[part]], bool)
                    state = np.where(is_clear, CLEAR, np.where(at_edge, AT_EDGE, HIDDEN))
                    pieces.extend((shot_id, frames[part][sub], det_index[part][sub]) for sub in _split_on_view_state(state))
    pieces.sort(key=lambda p: (int(p[1][0]), int(p[2][0])))
    return [
        Tracklet(
            tracklet_id=k,
            shot_id=shot_id,
            frames=frames,
            boxes=np.stack([detections[f].boxes[i] for f, i in zip(frames, idx)]).astype(np.float32),
            scores=np.array([detections[f].scores[i] for f, i in zip(frames, idx)], np.float32),
            det_index=idx,
            clean=np.array([strict[f][i] for f, i in zip(frames, idx)], bool),
        )
        for k, (shot_id, frames, idx) in enumerate(pieces)
    ]
