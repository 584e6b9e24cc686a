"""P tracklets x K views per batch, with hard negatives from the anchor's shot and easy ones from other videos.

Written here rather than PML's ``MPerClassSampler``: that one samples classes uniformly, and we need the
shot/video structure (hard negatives: other people of the same shot, who share lighting, background and
camera; easy negatives: other videos) and disjoint per-rank shards with equal step counts for DDP.

Per epoch (a pure function of seed, epoch, rank, world size):
  * shards: shots are shuffled with (seed, epoch) and dealt greedily to the rank with the fewest tracklets
    so far, so every rank owns whole shots (its hard negatives are local) and no tracklet is on two ranks;
  * each batch starts from the next unused tracklet of the rank's shuffled list, adds
    round(P * same_shot_fraction) - 1 others of its shot, fills other_video_fraction of the rest from other
    videos, the remainder from anywhere; unused tracklets are preferred everywhere;
  * two tracklets of one known identity are never in a batch as different entries (no false negatives);
  * K views: frames without replacement when the tracklet has K, else with replacement.
Labels are identity indices (tracklet indices where the identity is unknown), global over the data set,
as the gathered loss needs.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from reid_ray.tracking.clustering import temporal_overlap
from reid_ray.config import SamplerConfig, UnlabelledNegatives
from reid_ray.train.data import SampleTable


@dataclass
class TrackletIndex:
    """Tracklets of a ``SampleTable``: rows, shot, video and label of each."""

    rows: list[np.ndarray]  # row indices of each tracklet's views
    shot: np.ndarray  # (T,) shot index (global over videos)
    video: np.ndarray  # (T,) video index
    label: np.ndarray  # (T,) identity index; tracklets without identity get their own
    keys: list[tuple[str, str, str]] = field(default_factory=list)
    known: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (T,) identity known (labelled)
    span: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (T, 2) [first, last + 1) frame of its rows
    row_tracklet: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (rows,) tracklet of each table row

    @classmethod
    def from_table(cls, table: SampleTable) -> TrackletIndex:
        keys = table.tracklet_keys()
        uniq = sorted(set(keys))
        pos = {k: i for i, k in enumerate(uniq)}
        t_of_row = np.array([pos[k] for k in keys], int)
        order = np.argsort(t_of_row, kind="stable")
        bounds = np.searchsorted(t_of_row[order], np.arange(len(uniq) + 1))
        rows = [order[bounds[i] : bounds[i + 1]] for i in range(len(uniq))]
        videos = sorted({k[0] for k in uniq})
        shots = sorted({k[:2] for k in uniq})
        first = [r[0] for r in rows]
        idents = [table.identity[i] for i in first]
        names = sorted({x for x in idents if x is not None})
        lab = {x: i for i, x in enumerate(names)}
        label = [lab[x] if x is not None else len(names) + t for t, x in enumerate(idents)]
        shot_ix, video_ix = {k: i for i, k in enumerate(shots)}, {k: i for i, k in enumerate(videos)}
        frame = np.asarray(table.frame, np.int64)
        span = np.array([[frame[r].min(), frame[r].max() + 1] for r in rows], np.int64).reshape(-1, 2)
        return cls(rows, np.array([shot_ix[k[:2]] for k in uniq]), np.array([video_ix[k[0]] for k in uniq]),
                   np.array(label, np.int64), uniq, np.array([x is not None for x in idents], bool), span, t_of_row)

    def __len__(self) -> int:
        return len(self.rows)

    def may_be_negatives(self, a: np.ndarray, b: np.ndarray, unlabelled: UnlabelledNegatives = "any") -> np.ndarray:
        """(len a, len b) bool: tracklet pairs the loss may push apart. Two known identities: whenever they differ.
        A tracklet without identity (mined) is only known to differ from the tracklets in view at the same time
        (same video, overlapping frame spans), the rule the clustering keeps; a person who is lost and found
        again, or comes back, is another tracklet and would be a false negative. ``unlabelled``: "any" (every
        other tracklet), "cooccurring_or_other_video" (also every tracklet of another video: the easy
        negatives, wrong where people recur across videos), "cooccurring" (only those in view together)."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        differ = self.label[a][:, None] != self.label[b][None, :]
        if unlabelled == "any":
            return differ
        same_video = self.video[a][:, None] == self.video[b][None, :]
        spans = np.concatenate([self.span[a], self.span[b]])
        together = temporal_overlap(spans)[: len(a), len(a):] & same_video
        certain = (self.known[a][:, None] & self.known[b][None, :]) | together
        if unlabelled == "cooccurring_or_other_video":
            certain |= ~same_video
        return differ & certain


def shard_shots(index: TrackletIndex, world_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Tracklet indices of each rank: whole shots, balanced greedily by tracklet count."""
    shots = np.unique(index.shot)
    if len(shots) < world_size:
        raise ValueError(f"{len(shots)} shots cannot be split over {world_size} workers (whole shots per worker)")
    perm = np.random.default_rng([seed, epoch, 7]).permutation(shots)
    sizes = {s: int((index.shot == s).sum()) for s in perm}
    order = sorted(perm, key=lambda s: -sizes[s])  # stable: equal sizes keep the shuffled order
    load, owned = np.zeros(world_size, int), [[] for _ in range(world_size)]
    for s in order:
        r = int(np.argmin(load))
        owned[r].append(s)
        load[r] += sizes[s]
    return [np.flatnonzero(np.isin(index.shot, o)) for o in owned]


class PKSampler:
    """Iterate batches of row indices (P*K, tracklet-major) and their labels for one rank and epoch."""

    def __init__(self, index: TrackletIndex, cfg: SamplerConfig, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.index, self.cfg, self.seed, self.rank, self.world_size = index, cfg, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches_per_epoch(self) -> int:
        """Same on every rank (DDP steps together): the smallest shard // P, or the configured count."""
        if self.cfg.batches_per_epoch:
            return self.cfg.batches_per_epoch
        shards = shard_shots(self.index, self.world_size, self.seed, self.epoch)
        return max(1, min(len(s) for s in shards) // self.cfg.P)

    def __len__(self) -> int:
        return self.batches_per_epoch()

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        ix, P, K = self.index, self.cfg.P, self.cfg.K
        mine = shard_shots(ix, self.world_size, self.seed, self.epoch)[self.rank]
        n_labels = len(np.unique(ix.label[mine]))
        if n_labels < P:
            raise ValueError(f"rank {self.rank} has {n_labels} identities, fewer than P={P}: lower sampler.P or add data")
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        queue = rng.permutation(mine).tolist()
        by_shot = {int(s): mine[ix.shot[mine] == s] for s in np.unique(ix.shot[mine])}
        used: set[int] = set()
        n_same = max(1, int(round(P * self.cfg.same_shot_fraction)))
        head = 0
        for _ in range(self.batches_per_epoch()):
            while head < len(queue) and queue[head] in used:
                head += 1
            anchor = int(queue[head]) if head < len(queue) else int(rng.choice(mine))
            chosen = [anchor]
            shot_mates = by_shot[int(ix.shot[anchor])]
            # hard negatives: people of the anchor's shot it is known to differ from (in view with it, if unlabelled)
            shot_mates = shot_mates[ix.may_be_negatives([anchor], shot_mates, self.cfg.unlabelled_negatives)[0]]
            pools = [  # (candidates, how many to take from them)
                (shot_mates, n_same - 1),
                (mine[ix.video[mine] != ix.video[anchor]], int(round((P - n_same) * self.cfg.other_video_fraction))),
                (mine, P),
            ]
            for cands, want in pools:
                self._take(chosen, cands, min(want, P - len(chosen)), used, rng)
            used.update(chosen)
            rows = np.concatenate([self._views(t, K, rng) for t in chosen])
            yield rows, np.repeat(ix.label[chosen], K)

    def _take(self, chosen: list[int], cands: np.ndarray, want: int, used: set[int], rng: np.random.Generator) -> None:
        """Add up to ``want`` candidates, unused ones first, never a second tracklet of a chosen identity."""
        if want <= 0:
            return
        labels = {int(self.index.label[t]) for t in chosen}
        # A random slice of the candidates is plenty and keeps a batch O(P) on big shards; all of them if short.
        n_look = min(len(cands), 8 * want + 32)
        look = rng.choice(cands, n_look, replace=False) if n_look < len(cands) else rng.permutation(cands)
        before = len(chosen)
        self._take_from(chosen, look, want, used, labels)
        if len(chosen) - before < want and n_look < len(cands):
            self._take_from(chosen, rng.permutation(cands), want - (len(chosen) - before), used, labels)

    def _take_from(self, chosen: list[int], look: np.ndarray, want: int, used: set[int], labels: set[int]) -> None:
        for t in sorted(look.tolist(), key=lambda t: t in used):  # stable: unused first, shuffled within
            if want == 0:
                break
            lab = int(self.index.label[t])
            if lab not in labels:
                chosen.append(int(t))
                labels.add(lab)
                want -= 1

    def _views(self, t: int, K: int, rng: np.random.Generator) -> np.ndarray:
        rows = self.index.rows[t]
        return rng.choice(rows, K, replace=len(rows) < K)
