"""The one in-memory record for segmented instances: ``Instances``.

Every backend (detector, segmenter, ground truth, MOTChallenge file) returns it and every stage takes it,
so nothing in the middle knows where boxes and masks came from (cf. supervision's ``Detections``).
Masks stay boolean arrays in memory and become COCO RLE (pycocotools) only at the storage edge.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils

N_FACE_KEYPOINTS = 5  # dlib's 5-point model: two corners of each eye and the base of the nose


@dataclass(frozen=True)
class Instances:
    """Instances found on one frame. ``boxes`` are x1, y1, x2, y2 in source pixels."""

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    categories: np.ndarray  # (N,) object (str)
    masks: np.ndarray | None = None  # (N, H, W) bool, or None when the backend gives boxes only
    keypoints: np.ndarray | None = None  # (N, 5, 2) float32, NaN where an instance has none
    track_ids: np.ndarray | None = None  # (N,) int64, -1 where untracked
    extra: dict = field(default_factory=dict)  # backend-specific columns of length N (e.g. class names)

    def __post_init__(self) -> None:
        n = len(self.boxes)
        for name in ("scores", "categories"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Instances.{name} has {len(getattr(self, name))} rows, boxes have {n}")
        if self.masks is not None and len(self.masks) != n:
            raise ValueError(f"Instances.masks has {len(self.masks)} rows, boxes have {n}")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> "Instances":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, object))

    @classmethod
    def from_arrays(
        cls,
        boxes: Sequence[Sequence[float]],
        scores: Sequence[float],
        categories: Sequence[str],
        masks: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        track_ids: Sequence[int] | None = None,
    ) -> "Instances":
        return cls(
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
            scores=np.asarray(scores, np.float32).reshape(-1),
            categories=np.asarray(list(categories), dtype=object),
            masks=None if masks is None else np.asarray(masks, bool),
            keypoints=None if keypoints is None else np.asarray(keypoints, np.float32),
            track_ids=None if track_ids is None else np.asarray(track_ids, np.int64),
        )

    def select(self, index: np.ndarray | Sequence[int] | slice) -> "Instances":
        """Rows by integer index or boolean mask; every per-row column follows."""
        idx = np.asarray(index) if not isinstance(index, slice) else index
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return replace(
            self,
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            categories=self.categories[idx],
            masks=pick(self.masks),
            keypoints=pick(self.keypoints),
            track_ids=pick(self.track_ids),
            extra={k: np.asarray(v)[idx] for k, v in self.extra.items()},
        )

    @staticmethod
    def concat(parts: Sequence["Instances"], frame_shape: tuple[int, int] | None = None) -> "Instances":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Instances.empty()
        any_masks = any(p.masks is not None for p in parts)
        masks = None
        if any_masks:
            if frame_shape is None:
                frame_shape = next(p.masks.shape[1:] for p in parts if p.masks is not None)
            masks = np.concatenate([p.masks if p.masks is not None else p.box_masks(frame_shape) for p in parts])
        kps = None
        if any(p.keypoints is not None for p in parts):
            kps = np.concatenate([p.keypoints if p.keypoints is not None else p._no_keypoints() for p in parts])
        tids = None
        if any(p.track_ids is not None for p in parts):
            tids = np.concatenate([p.track_ids if p.track_ids is not None else -np.ones(len(p), np.int64) for p in parts])
        return Instances(
            boxes=np.concatenate([p.boxes for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            categories=np.concatenate([p.categories for p in parts]),
            masks=masks,
            keypoints=kps,
            track_ids=tids,
        )

    def _no_keypoints(self) -> np.ndarray:
        return np.full((len(self), N_FACE_KEYPOINTS, 2), np.nan, np.float32)

    def box_masks(self, frame_shape: tuple[int, int]) -> np.ndarray:
        """Filled-box masks, for backends that detect but do not segment."""
        h, w = frame_shape
        out = np.zeros((len(self), h, w), bool)
        for i, (x1, y1, x2, y2) in enumerate(clip_boxes(self.boxes, (h, w)).round().astype(int)):
            out[i, y1:y2, x1:x2] = True
        return out

    def core_masks(self, frame_shape: tuple[int, int], width: float = 0.45, top: float = 0.1, bottom: float = 0.9) -> np.ndarray:
        """The central part of each box: for a standing person, mostly body rather than floor and wall."""
        b = self.boxes
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        core = np.stack([b[:, 0] + w * (1 - width) / 2, b[:, 1] + h * top, b[:, 2] - w * (1 - width) / 2, b[:, 1] + h * bottom], 1)
        return replace(self, boxes=core, masks=None).box_masks(frame_shape)

    def with_masks(self, frame_shape: tuple[int, int], box_mask: str = "box") -> "Instances":
        """Masks for box-only instances: the filled box, or its core (``box_mask='core'``)."""
        if self.masks is not None:
            return self
        return replace(self, masks=self.core_masks(frame_shape) if box_mask == "core" else self.box_masks(frame_shape))

    def rescaled(self, factor: float, frame_shape: tuple[int, int] | None = None) -> "Instances":
        """The same instances on the frame resized by ``factor`` (a model's frame back to source pixels): boxes and
        keypoints scaled, masks resized to ``frame_shape`` (that frame's height, width). RLE masks in ``extra``
        (``mask_rle``, ``mask_size``) carry their own size and stay as they are."""
        if self.masks is not None and frame_shape is None:
            raise ValueError("these instances carry masks: give the frame_shape to resize them to (or drop them first)")
        return replace(
            self,
            boxes=self.boxes * factor,
            masks=None if self.masks is None else resize_masks(self.masks, frame_shape),
            keypoints=None if self.keypoints is None else self.keypoints * factor,
        )

    def with_keypoints(self, keypoints: np.ndarray) -> "Instances":
        return replace(self, keypoints=np.asarray(keypoints, np.float32))

    def with_track_ids(self, track_ids: Sequence[int]) -> "Instances":
        return replace(self, track_ids=np.asarray(track_ids, np.int64))

    @property
    def areas(self) -> np.ndarray:
        if self.masks is not None:
            return self.masks.reshape(len(self), -1).sum(1).astype(np.float32)
        return box_areas(self.boxes)

    def rles(self) -> list[dict]:
        """COCO RLE of each mask (``counts`` as str), through pycocotools."""
        if self.masks is None:
            raise ValueError("these instances carry no masks; call with_masks(frame_shape) first")
        return [mask_to_rle(m) for m in self.masks]


def clip_boxes(boxes: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    h, w = frame_shape
    out = np.asarray(boxes, np.float32).copy().reshape(-1, 4)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def box_areas(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return ((b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, (len(a), len(b))."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(-1)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def resize_masks(masks: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) boolean masks at ``frame_shape`` (height, width), nearest neighbour (a mask stays a mask)."""
    import cv2

    h, w = frame_shape
    if masks.shape[1:] == (h, w):
        return masks
    out = np.zeros((len(masks), h, w), bool)
    for i, m in enumerate(masks):
        out[i] = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return out


def mask_to_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    counts = rle["counts"]
    return mask_utils.decode({"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}).astype(bool)
