"""Tracklets -> identities: the seed's tracklet distances (on clean views), clustering that never joins two
tracklets sharing a frame, and boxes filled into each identity's short gaps."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from reid_ray.config import ClusteringConfig, DistanceConfig
from reid_ray.tracking.clustering import cluster_hierarchy, cluster_with_anchors, temporal_overlap
from reid_ray.tracking.distances import distance_matrix, sharded_distance_matrix
from reid_ray.tracking.interpolate import fill_gaps, shot_index
from reid_ray.tracking.tracklets import Tracklet

# (identity, frames, values): boxes interpolated into one identity's gaps, values x1, y1, x2, y2, score
FilledBoxes = tuple[int, np.ndarray, np.ndarray]


@dataclass
class Identities:
    """One identity per tracklet (1-based, as in identities.txt) and how it was reached."""

    identity: np.ndarray  # (n_tracklets,) int64
    distances: np.ndarray  # (n, n) tracklet distances
    sharded: bool  # the matrix was computed by Ray tasks
    cannot_link: np.ndarray  # (n, n) bool: tracklets sharing a frame
    hierarchy: np.ndarray  # scipy linkage matrix Z over the tracklets ``in_tree``
    in_tree: np.ndarray  # indices of the tracklets the hierarchy is over
    filled: list[FilledBoxes] = field(default_factory=list)

    def members(self, tracklets: list[Tracklet]) -> dict[str, list[int]]:
        """Identity -> its tracklets' ids (report.json's ``clusters``)."""
        return {str(int(i)): [int(tk.tracklet_id) for tk, l in zip(tracklets, self.identity) if l == i] for i in np.unique(self.identity)}


def tracklet_distances(views: list[np.ndarray], tracklets: list[Tracklet], cfg: DistanceConfig) -> tuple[np.ndarray, bool]:
    """(matrix, sharded). Compared on clean views only (whole, unobstructed), where a tracklet has any: occluded
    views dominate a Chamfer-p distance. Past ``cfg.shard_above`` tracklets the matrix is computed by Ray tasks."""
    embs = [e[tk.clean] if tk.clean.any() else e for e, tk in zip(views, tracklets)]
    if len(embs) < 2:
        return np.zeros((len(embs), len(embs))), False
    if len(embs) > cfg.shard_above:
        return sharded_distance_matrix(embs, cfg.block, cfg.method, cfg.p, cfg.q), True
    return distance_matrix(embs, cfg.method, cfg.p, cfg.q), False


def cluster_tracklets(tracklets: list[Tracklet], dist: np.ndarray, cannot_link: np.ndarray,
                      cfg: ClusteringConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(0-based labels, Z, indices of the tracklets Z is over). With ``occluded: attach`` the hierarchy is over the
    tracklets with clean views, and the others join the identity of their nearest compatible one afterwards."""
    if not tracklets:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)
    if cfg.occluded == "cluster":
        labels, z = cluster_hierarchy(dist, cannot_link, cfg.threshold, cfg.linkage)
        return labels, z, np.arange(len(tracklets))
    anchor = np.array([bool(tk.clean.any()) for tk in tracklets])
    order = sorted(np.flatnonzero(~anchor), key=lambda i: -len(tracklets[i]))  # longest (surest) first
    labels, z = cluster_with_anchors(dist, cannot_link, anchor, cfg.threshold, cfg.linkage, attach_order=order)
    return labels, z, (np.flatnonzero(anchor) if anchor.any() and not anchor.all() else np.arange(len(tracklets)))


def fill_identity_gaps(tracklets: list[Tracklet], identity: np.ndarray, shots: list[tuple[int, int]], n_frames: int,
                       max_gap: int) -> list[FilledBoxes]:
    """The boxes linear interpolation puts into each identity's gaps of up to ``max_gap`` frames within a shot."""
    if max_gap <= 0 or not tracklets:
        return []
    shot_of = shot_index(shots, n_frames)
    by_identity: dict[int, list[Tracklet]] = {}
    for tk, ident in zip(tracklets, identity):
        by_identity.setdefault(int(ident), []).append(tk)
    out = []
    for ident, members in sorted(by_identity.items()):
        frames = np.concatenate([tk.frames for tk in members])
        values = np.concatenate([np.column_stack([tk.boxes, tk.scores]) for tk in members])
        f, v = fill_gaps(frames, values, shot_of, max_gap)
        if len(f):
            out.append((ident, f, v))
    return out


def assign_identities(tracklets: list[Tracklet], views: list[np.ndarray], shots: list[tuple[int, int]], n_frames: int,
                      distance: DistanceConfig, clustering: ClusteringConfig, fill_gaps_up_to: int = 0,
                      timings: dict | None = None) -> Identities:
    """Distances, clustering under the cannot-link constraint, then gap filling (0: none)."""
    t = time.perf_counter()
    dist, sharded = tracklet_distances(views, tracklets, distance)
    if timings is not None:
        timings["distances_s"] = time.perf_counter() - t
    cannot_link = temporal_overlap([tk.frames for tk in tracklets])
    labels, z, in_tree = cluster_tracklets(tracklets, dist, cannot_link, clustering)
    identity = labels + 1  # MOTChallenge ids start at 1
    filled = fill_identity_gaps(tracklets, identity, shots, n_frames, fill_gaps_up_to)
    return Identities(identity, dist, sharded, cannot_link, z, in_tree, filled)
