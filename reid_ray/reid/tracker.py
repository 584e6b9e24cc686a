"""A video -> shots, per-frame person instances with one identity embedding each, and the tracklets built from them.

Frame-to-frame association always compares mean-pooled patch features: its similarity gate is calibrated on the
backbone, and a trained head (``embedder.head``) is for telling people apart across tracklets, so swapping the head
changes which tracklets join, never the tracklets themselves.

With a video segmenter (SAM3, ``segmenter.backend: sam3``) the seed's way: shots first, then one SAM3 video session
per shot (shots longer than ``shots.max_shot_frames`` in pieces), its object ids the raw tracks (cut where an object
leaves the frame), and each view's patch embeddings taken inside SAM3's own mask.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from reid_ray.models import registry
from reid_ray.models.heads import MeanPoolHead
from reid_ray.models.transnet import INPUT_HW, TransNetShotDetector
from reid_ray.records import Instances, clip_boxes
from reid_ray.config import ReidJobConfig, TrackingConfig
from reid_ray.tracking.tracklets import Tracklet, build_tracklets, split_segments
from reid_ray.video.decode import iter_frames


@dataclass
class TrackedVideo:
    """What the tracker found in one video. ``detections[f]`` are frame f's persons (source pixels) and
    ``embeddings[f]`` one identity embedding per row of them; a tracklet's ``det_index`` points into both."""

    shots: list[tuple[int, int]]
    detections: list[Instances]
    embeddings: list[np.ndarray]
    tracklets: list[Tracklet]

    def views(self) -> list[np.ndarray]:
        """Per tracklet, the embeddings of its views in frame order: (n_views, dim)."""
        return [np.stack([self.embeddings[f][i] for f, i in zip(tk.frames, tk.det_index)]) for tk in self.tracklets]


def _person_boxes(inst: Instances) -> np.ndarray:
    """Rows of person instances at least 2 px each way (thinner boxes make empty crops)."""
    if not len(inst):
        return np.zeros(0, np.int64)
    wide = (inst.boxes[:, 2] - inst.boxes[:, 0] >= 2) & (inst.boxes[:, 3] - inst.boxes[:, 1] >= 2)
    return np.flatnonzero((inst.categories == "person") & wide)


class VideoTracker:
    """The models of the long-video job (segmenter unless detections are given, embedder, head, shot detector),
    loaded once; ``track`` runs them over one local video file."""

    def __init__(self, cfg: ReidJobConfig, public_detections: bool = False) -> None:
        self.cfg = cfg
        self.segmenter = None if public_detections else registry.build_segmenter(self._segmenter_config())
        self.embedder = registry.build_embedder(cfg)
        self.head = registry.build_head(cfg)
        self.association_head = MeanPoolHead()
        self.shot_detector = TransNetShotDetector(threshold=cfg.shots.threshold)

    def _segmenter_config(self) -> ReidJobConfig:
        """The profile, with the segmenter's score floor lowered to the tracker's second-association threshold."""
        low = self.cfg.tracking.low_score_threshold
        if low is None or low >= self.cfg.segmenter.score_threshold:
            return self.cfg
        return self.cfg.model_copy(update={"segmenter": self.cfg.segmenter.model_copy(update={"score_threshold": low})})

    @property
    def tracks_in_video(self) -> bool:
        """The segmenter follows objects through a video session itself (SAM3): its ids are the raw tracks."""
        return self.segmenter is not None and hasattr(self.segmenter, "track")

    def track(self, local: str, given: list[Instances] | None = None, timings: dict | None = None) -> TrackedVideo:
        """Shots, per-frame person instances with one embedding each, and the tracklets built from them.
        ``given``: public detections per frame instead of the segmenter's; ``timings`` gets seconds per step."""
        timings = {} if timings is None else timings
        if given is None and self.tracks_in_video:
            return self._track_with_video_segmenter(local, timings)
        t = time.perf_counter()
        small, detections, embeddings, association, shape = self.scan(local, given)
        timings["scan_s"] = time.perf_counter() - t
        t = time.perf_counter()
        shots = self.shot_detector.shots_from_frames(small) if len(small) else []
        timings["shots_s"] = time.perf_counter() - t
        tr = self.cfg.tracking
        secondary = None
        if given is None and tr.low_score_threshold is not None:
            secondary = [d.scores < self.cfg.segmenter.score_threshold for d in detections]
        if given is not None:  # one box per person by the protocol: a shrinking visible-part box is no jump
            tr = tr.model_copy(update={"max_height_jump": None})
        looks = association if tr.appearance_weight > 0 or tr.split_similarity is not None else None
        tracklets = build_tracklets(detections, shots, shape, tr, self.cfg.shots.max_shot_frames,
                                    embeddings=looks, secondary=secondary)
        return TrackedVideo(shots, detections, embeddings, tracklets)

    def scan(self, path: str, given: list[Instances] | None):
        """One decoding pass: TransNetV2 inputs, person instances, and per instance per frame one identity embedding
        (the head's) and one association embedding (mean pooling; the same array when the head is mean pooling)."""
        small, detections, embeddings, association, shape = [], [], [], [], (0, 0)
        for idx, frame in iter_frames(path):
            shape = frame.shape[:2]
            small.append(cv2.resize(frame, INPUT_HW[::-1], interpolation=cv2.INTER_AREA))
            inst = given[idx] if given is not None else self.detect(frame)
            if len(inst):  # boxes past the edge (detector or file) would make empty crops: clipped first
                inst = replace(inst, boxes=clip_boxes(inst.boxes, shape))
                inst = inst.select(_person_boxes(inst))
            # Kept for the whole video: masks scaled up from a downscaled frame would be a source-size frame of
            # booleans per person per frame, so they serve the embedding below only (the figures draw box masks).
            downscaled = inst.masks is not None and max(shape) > self.cfg.tracking.max_side_px
            detections.append(replace(inst, masks=None) if downscaled else inst)
            if len(inst):
                sets = self.embedder.patch_sets(frame, inst.with_masks(shape, self.cfg.segmenter.box_mask))
                embeddings.append(self.head.pool(sets))
                association.append(embeddings[-1] if isinstance(self.head, MeanPoolHead) else self.association_head.pool(sets))
            else:
                embeddings.append(self._no_embeddings())
                association.append(self._no_embeddings())
        small_arr = np.stack(small) if small else np.zeros((0, *INPUT_HW, 3), np.uint8)
        return small_arr, detections, embeddings, association, shape

    def detect(self, frame: np.ndarray) -> Instances:
        """The segmenter on one frame, downscaled to ``tracking.max_side_px``; instances in source pixels."""
        h, w = frame.shape[:2]
        s = min(1.0, self.cfg.tracking.max_side_px / max(h, w))
        if s >= 1.0:
            return self.segmenter.segment([frame])[0]
        small = cv2.resize(frame, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA)
        return self.segmenter.segment([small])[0].rescaled(1.0 / s, (h, w))

    def _no_embeddings(self) -> np.ndarray:
        return np.zeros((0, self.embedder.dim), np.float32)

    # ------------------------------------------------------------------------------- with a video segmenter (SAM3)

    def _track_with_video_segmenter(self, local: str, timings: dict) -> TrackedVideo:
        """Shots from a first decoding pass; then per shot piece one video session of the segmenter over its frames
        (at most ``tracking.max_side_px``), each view embedded inside the segmenter's mask; tracklets from its ids."""
        t = time.perf_counter()
        small, shape = [], (0, 0)
        for _, frame in iter_frames(local):
            shape = frame.shape[:2]
            small.append(cv2.resize(frame, INPUT_HW[::-1], interpolation=cv2.INTER_AREA))
        shots = self.shot_detector.shots_from_frames(np.stack(small)) if small else []
        timings["shots_s"] = time.perf_counter() - t
        t = time.perf_counter()
        segments = split_segments(shots, self.cfg.shots.max_shot_frames)
        end_of = {start: end for _, start, end in segments}
        detections: list[Instances] = [Instances.empty() for _ in small]
        embeddings = [self._no_embeddings() for _ in small]
        piece: list[np.ndarray] = []
        start = 0
        for idx, frame in iter_frames(local):
            if not piece:
                start = idx
            s = min(1.0, self.cfg.tracking.max_side_px / max(frame.shape[:2]))
            piece.append(frame if s >= 1.0 else cv2.resize(frame, (round(frame.shape[1] * s), round(frame.shape[0] * s)), interpolation=cv2.INTER_AREA))
            if idx + 1 == end_of.get(start, idx + 1):
                self._track_piece(piece, start, s, detections, embeddings)
                piece = []
        if piece:  # a second decoding pass that ended early (a short read): its frames are tracked, not dropped
            self._track_piece(piece, start, s, detections, embeddings)
        timings["scan_s"] = time.perf_counter() - t
        tracklets = build_tracklets(detections, shots, shape, self._video_segmenter_rules(self.cfg.tracking),
                                    self.cfg.shots.max_shot_frames, track_ids_given=True)
        return TrackedVideo(shots, detections, embeddings, tracklets)

    @staticmethod
    def _video_segmenter_rules(tracking: TrackingConfig) -> TrackingConfig:
        # The segmenter's object ids are the tracks: its masks follow a person through overlaps and size changes,
        # so only the frame-exit and length rules cut them.
        return tracking.model_copy(update={"split_at_occlusions": False, "max_height_jump": None})

    def _track_piece(self, piece: list[np.ndarray], start: int, scale: float, detections: list, embeddings: list) -> None:
        """One video session over consecutive frames (model size) starting at ``start``."""
        for k, (f, inst) in enumerate(zip(piece, self.segmenter.track(piece))):
            if start + k < len(detections):
                detections[start + k], embeddings[start + k] = self._embed_in_masks(f, inst, 1.0 / scale)

    def _embed_in_masks(self, frame: np.ndarray, inst: Instances, to_source: float) -> tuple[Instances, np.ndarray]:
        """The persons of one frame at model size: embedded inside their own masks; returned in source pixels."""
        inst = inst.select(_person_boxes(inst))
        if not len(inst):
            return replace(inst, masks=None).rescaled(to_source), self._no_embeddings()
        if inst.masks is None:
            inst = inst.with_masks(frame.shape[:2], self.cfg.segmenter.box_mask)
        emb = self.head.pool(self.embedder.patch_sets(frame, inst))
        # The mask goes on with the record as RLE at model size (a few hundred bytes, not a frame of booleans):
        # the identity video fills it in each person's colour.
        rles = np.empty(len(inst), object)
        rles[:] = [r["counts"] for r in inst.rles()]
        inst = replace(inst, masks=None, extra={**inst.extra, "mask_rle": rles, "mask_size": np.tile(frame.shape[:2], (len(inst), 1))})
        return inst.rescaled(to_source), emb
