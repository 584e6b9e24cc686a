"""Quality filter: keep complete, unobstructed, large, sharp, visually distinct, confidently detected instances.

Each instance gets measurements and the reasons it fails (empty when kept), so a reader can see why a
candidate was dropped rather than lose it silently."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from reid_ray.config import QualityConfig
from reid_ray.models.dlib_faces import FACE_CATEGORY
from reid_ray.records import Instances, box_areas


@dataclass(frozen=True)
class QualityReport:
    sharpness: np.ndarray
    max_overlap: np.ndarray
    max_similarity: np.ndarray
    reasons: list[str]

    @property
    def keep(self) -> np.ndarray:
        return np.array([r == "" for r in self.reasons], bool)


def laplacian_sharpness(gray: np.ndarray, box: np.ndarray) -> float:
    x1, y1, x2, y2 = np.round(box).astype(int)
    roi = gray[max(0, y1) : max(y1 + 1, y2), max(0, x1) : max(x1 + 1, x2)]
    return float(cv2.Laplacian(roi, cv2.CV_64F).var()) if roi.size > 4 else 0.0


def overlap_shares(inst: Instances) -> np.ndarray:
    """For each instance, the largest share of its box covered by another instance's box.
    A face inside a person is the same object, not an occluder, so face/person pairs are ignored."""
    n = len(inst)
    out = np.zeros(n, np.float32)
    b = inst.boxes
    for i in range(n):
        area = max((b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1]), 1e-6)
        for j in range(n):
            if i == j or ((inst.categories[i] == FACE_CATEGORY) != (inst.categories[j] == FACE_CATEGORY)):
                continue
            w = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0])
            h = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1])
            if w > 0 and h > 0:
                out[i] = max(out[i], w * h / area)
    return out


def max_similarity_in_frame(inst: Instances, embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """Highest cosine similarity to another instance of the same category on the frame (-1 if none). One vector
    per instance; categories may be embedded by different networks, so only same-category vectors are compared."""
    out = -np.ones(len(inst), np.float32)
    categories = np.asarray(inst.categories)
    for category in set(categories.tolist()):
        index = np.flatnonzero(categories == category)
        if len(index) < 2:
            continue
        vectors = np.stack([embeddings[i] for i in index])
        sim = vectors @ vectors.T
        np.fill_diagonal(sim, -1.0)
        out[index] = sim.max(1)
    return out


def assess(frame: np.ndarray, inst: Instances, embeddings: Sequence[np.ndarray], cfg: QualityConfig) -> QualityReport:
    h, w = frame.shape[:2]
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    sharp = np.array([laplacian_sharpness(gray, b) for b in inst.boxes], np.float32)
    overlap = overlap_shares(inst)
    similar = max_similarity_in_frame(inst, embeddings)
    m = cfg.border_margin_px
    box_area = box_areas(inst.boxes)  # the instance's extent, whatever part of it the mask keeps
    reasons = []
    for i, (x1, y1, x2, y2) in enumerate(inst.boxes):
        r = []
        if x1 <= m or y1 <= m or x2 >= w - m or y2 >= h - m:
            r.append("cut_by_border")
        if (y2 - y1) < cfg.min_height_px or box_area[i] < cfg.min_area_px:
            r.append("too_small")
        if overlap[i] > cfg.max_overlap:
            r.append("occluded")
        if sharp[i] < cfg.min_sharpness:
            r.append("blurry")
        if similar[i] > cfg.max_similarity_in_frame:
            r.append("not_distinct")
        if inst.scores[i] < cfg.min_score_by_category.get(str(inst.categories[i]), 0.0):
            r.append("low_score")
        reasons.append(";".join(r))
    return QualityReport(sharp, overlap, similar, reasons)
