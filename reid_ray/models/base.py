"""One small protocol per model role. A backend is one file implementing one of these; ``registry`` maps names."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from reid_ray.records import Instances


@runtime_checkable
class Segmenter(Protocol):
    """Frames (RGB uint8, H x W x 3) -> instances per frame, ``categories`` set to the configured category names.
    ``real_masks``: whether its masks follow the object (False: it gives boxes, masks are made from them)."""

    real_masks: bool

    def segment(self, frames: Sequence[np.ndarray]) -> list[Instances]: ...


@runtime_checkable
class FaceDetector(Protocol):
    """Faces on one RGB frame, each with 5 keypoints (x, y) in frame pixels; category 'face'."""

    def detect(self, frame: np.ndarray) -> Instances: ...


@runtime_checkable
class PatchEmbedder(Protocol):
    """For each instance on a frame, the set of backbone patch embeddings inside its mask: (n_i, dim) each."""

    dim: int

    def patch_sets(self, frame: np.ndarray, instances: Instances) -> list[np.ndarray]: ...


@runtime_checkable
class Head(Protocol):
    """A variable-length patch set -> one L2-normalised vector."""

    def pool(self, patch_sets: Sequence[np.ndarray]) -> np.ndarray: ...


@runtime_checkable
class ShotDetector(Protocol):
    """Frames of a whole video -> shots as [start, end) frame ranges covering it."""

    def shots(self, video_path: str) -> list[tuple[int, int]]: ...
