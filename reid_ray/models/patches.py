"""Shared parts of the patch embedders: crop an instance with context, which grid cells its mask covers, and the
patch sets of a CNN embedder (the cells of its feature map inside each mask)."""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from reid_ray.records import Instances

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def crop_box(box: np.ndarray, frame_shape: tuple[int, int], context: float = 0.05) -> tuple[int, int, int, int]:
    """Integer crop window around a box, grown by ``context`` of its size and clamped to the frame."""
    h, w = frame_shape
    x1, y1, x2, y2 = [float(v) for v in box]
    dx, dy = (x2 - x1) * context, (y2 - y1) * context
    cx1, cy1 = int(max(0, np.floor(x1 - dx))), int(max(0, np.floor(y1 - dy)))
    cx2, cy2 = int(min(w, np.ceil(x2 + dx))), int(min(h, np.ceil(y2 + dy)))
    return cx1, cy1, max(cx2, cx1 + 1), max(cy2, cy1 + 1)


def instance_crops(
    frame: np.ndarray, instances: Instances, out_hw: tuple[int, int]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Normalised crops (N, 3, H, W) float32 and each crop's mask resized to (H, W) as float coverage."""
    oh, ow = out_hw
    masks = instances.masks
    crops, crop_masks = [], []
    for i, box in enumerate(instances.boxes):
        x1, y1, x2, y2 = crop_box(box, frame.shape[:2])
        patch = cv2.resize(frame[y1:y2, x1:x2], (ow, oh), interpolation=cv2.INTER_LINEAR)
        crops.append(((patch.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
        if masks is not None:
            m = masks[i, y1:y2, x1:x2].astype(np.float32)
        else:  # boxes only: the box inside the crop window
            m = np.zeros((y2 - y1, x2 - x1), np.float32)
            bx1, by1, bx2, by2 = np.round(box - [x1, y1, x1, y1]).astype(int)
            m[max(0, by1) : by2, max(0, bx1) : bx2] = 1.0
        crop_masks.append(cv2.resize(m, (ow, oh), interpolation=cv2.INTER_AREA))
    return np.stack(crops) if crops else np.zeros((0, 3, oh, ow), np.float32), crop_masks


def cells_inside(mask: np.ndarray, grid_hw: tuple[int, int], min_coverage: float = 0.5) -> np.ndarray:
    """Boolean (gh * gw,) of grid cells whose area is at least ``min_coverage`` mask; never empty."""
    gh, gw = grid_hw
    coverage = cv2.resize(mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA).reshape(-1)
    return covered_cells(coverage, min_coverage)


def covered_cells(coverage: np.ndarray, min_coverage: float = 0.5) -> np.ndarray:
    """Boolean mask of the cells (any shape) with at least ``min_coverage``; the best-covered one when none has."""
    keep = coverage >= min_coverage
    if not keep.any():
        keep.flat[int(np.argmax(coverage))] = True
    return keep


def patch_sets(
    frame: np.ndarray, instances: Instances, crop_hw: tuple[int, int], feature_maps: Callable[[np.ndarray], np.ndarray]
) -> list[np.ndarray]:
    """Per instance, the (k, dim) float32 cells of its crop's feature map that its mask covers: crops from
    ``instance_crops``, ``feature_maps`` (N, 3, H, W) -> (N, dim, gh, gw), cells picked by ``cells_inside``."""
    if len(instances) == 0:
        return []
    crops, masks = instance_crops(frame, instances, crop_hw)
    fmaps = feature_maps(crops)
    dim, gh, gw = fmaps.shape[1:]
    return [fmap.reshape(dim, -1).T[cells_inside(mask, (gh, gw))].astype(np.float32) for fmap, mask in zip(fmaps, masks)]
