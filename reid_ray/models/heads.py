"""Heads that pool a variable-length patch set into one vector. 'mean' until a trained head exists."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class MeanPoolHead:
    """Implements ``Head``: mean of the patch set, L2-normalised."""

    def pool(self, patch_sets: Sequence[np.ndarray]) -> np.ndarray:
        if not patch_sets:
            return np.zeros((0, 0), np.float32)
        return l2_normalise(np.stack([p.mean(0) for p in patch_sets]).astype(np.float32))
