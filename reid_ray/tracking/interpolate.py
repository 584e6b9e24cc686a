"""Short gaps in an identity's boxes filled by linear interpolation, as MOT trackers do after tracking.

A detector misses a person for a frame or two (a partial occlusion, motion blur); the identity is known on both
sides, so the box in between is a safe guess. Only gaps inside one shot are filled: across a cut the person's
place on screen says nothing about where they were.
"""
from __future__ import annotations

import numpy as np


def fill_gaps(
    frames: np.ndarray, values: np.ndarray, shot_of_frame: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated (frames, values) of one identity: every missing frame in a gap of 1..``max_gap`` frames whose two
    ends lie in one shot. ``frames`` are 0-based and unique (one box per identity per frame); ``values`` (n, d), e.g.
    xyxy boxes with the score as a fifth column; ``shot_of_frame[f]`` is frame f's shot. Empty when nothing is filled."""
    order = np.argsort(frames)
    f, b = np.asarray(frames, np.int64)[order], np.asarray(values, np.float32)[order]
    out_f, out_b = [], []
    for k in np.flatnonzero((np.diff(f) > 1) & (np.diff(f) <= max_gap + 1)):
        a, z = f[k], f[k + 1]
        if shot_of_frame[a] != shot_of_frame[z]:
            continue
        t = (np.arange(a + 1, z) - a) / (z - a)
        out_f.append(np.arange(a + 1, z))
        out_b.append((1 - t)[:, None] * b[k] + t[:, None] * b[k + 1])
    if not out_f:
        return np.zeros(0, np.int64), np.zeros((0, b.shape[1]), np.float32)
    return np.concatenate(out_f), np.concatenate(out_b).astype(np.float32)


def shot_index(shots: list[tuple[int, int]], n_frames: int) -> np.ndarray:
    """Shot id of every frame (-1 where no shot covers it)."""
    out = np.full(n_frames, -1, np.int64)
    for i, (s, e) in enumerate(shots):
        out[s:e] = i
    return out
