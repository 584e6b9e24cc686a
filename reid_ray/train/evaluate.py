"""Tracklet retrieval: mAP, Rank-1 and Rank-5 (CMC) of heads on a training-format table.

Protocol: every tracklet with a known identity is a query (the L2-normalised mean of its frame
embeddings); the gallery is all tracklets from OTHER shots (same-shot items are excluded, as ReID
protocols exclude same-camera ones), ranked by cosine similarity. Queries with no true match in their
gallery, or with nothing but true matches, are left out. AP per query is sklearn's ``average_precision_score``
(step-wise, no interpolation: the same number as the Market-1501 evaluation code when there are no ties); the
CMC hit ranks are written here (a few lines: rank of the first true match).

Footage without labels (``half_split``) has two galleries, both proxies reported apart from labelled figures:
``"other_shots"`` holds every other tracklet, so fragments of one person (a lost track, a re-entry, one actor
in two clips) count as negatives, and a head that brings them together scores lower; ``"cooccurring"`` holds
only negatives that are certain (people in view at the same time), and fewer of them.

    python -m reid_ray.train.evaluate --data samples.parquet --checkpoint head.pt [--half-split [--gallery cooccurring]]
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Literal, get_args

import numpy as np
from sklearn.metrics import average_precision_score

from reid_ray.models.base import Head
from reid_ray.models.heads import MeanPoolHead, l2_normalise
from reid_ray.tracking.clustering import temporal_overlap
from reid_ray.train.data import SampleTable, read_samples
from reid_ray.train.sampler import TrackletIndex


def tracklet_embeddings(table: SampleTable, head: Head, index: TrackletIndex | None = None) -> np.ndarray:
    """(T, dim): mean of each tracklet's frame embeddings, L2-normalised."""
    index = index or TrackletIndex.from_table(table)
    frames = head.pool(table.patches)
    return l2_normalise(np.stack([frames[r].mean(0) for r in index.rows]).astype(np.float32))


Gallery = Literal["other_shots", "cooccurring"]


def retrieval_metrics(emb: np.ndarray, identity: np.ndarray, shot: np.ndarray, ranks: tuple[int, ...] = (1, 5),
                      gallery: np.ndarray | None = None) -> dict:
    """mAP and CMC@ranks over tracklets; ``identity`` < 0 marks tracklets that are never queries. ``gallery``:
    (T, T) bool, row q = the gallery of query q; default: the tracklets of other shots."""
    sims = emb @ emb.T
    if gallery is None:
        gallery = shot[:, None] != shot[None, :]
    aps, first_hits, sizes = [], [], []
    for q in range(len(emb)):
        if identity[q] < 0:
            continue
        truth = identity[gallery[q]] == identity[q]
        if not truth.any() or truth.all():  # AP is 1 whatever the head when nothing can be ranked above a match
            continue
        s = sims[q, gallery[q]]
        sizes.append(len(s))
        aps.append(average_precision_score(truth, s))
        order = np.argsort(-s, kind="stable")
        first_hits.append(int(np.flatnonzero(truth[order])[0]))
    hits = np.asarray(first_hits)
    out = {"mAP": float(np.mean(aps)) if aps else float("nan"), "n_queries": len(aps),
           "mean_gallery": float(np.mean(sizes)) if sizes else 0.0}
    for k in ranks:
        out[f"rank{k}"] = float(np.mean(hits < k)) if len(hits) else float("nan")
    return out


def half_split(table: SampleTable, min_frames: int = 4) -> SampleTable:
    """Proxy protocol for footage without labels: each tracklet of at least ``min_frames`` rows becomes two, its
    first and second half in time, each half its own "shot" with the tracklet as identity. A half queries for
    the other; the default gallery holds the other half and every other tracklet (of any shot), and
    ``cooccurring_gallery`` only the certain negatives. Figures from it are a proxy (temporal neighbours look
    alike) and are reported apart from labelled ones."""
    index = TrackletIndex.from_table(table)
    keep, shot, ident = [], table.shot_id.astype(object).copy(), np.full(len(table), None, object)
    for rows in index.rows:
        if len(rows) < min_frames:
            continue
        rows = np.asarray(rows)[np.argsort(table.frame[rows], kind="stable")]
        key = f"{table.video_id[rows[0]]}/{table.shot_id[rows[0]]}/{table.tracklet_id[rows[0]]}"
        half = len(rows) // 2
        for part, rr in (("a", rows[:half]), ("b", rows[half:])):
            shot[rr] = f"{key}/{part}"
            ident[rr] = key
        keep.extend(rows.tolist())
    keep = np.sort(np.asarray(keep, int))
    return SampleTable(table.video_id[keep], shot[keep], table.tracklet_id[keep], ident[keep], table.frame[keep],
                       [table.patches[i] for i in keep])


def cooccurring_gallery(halves: SampleTable, index: TrackletIndex | None = None) -> np.ndarray:
    """(T, T) galleries of certain negatives for ``half_split`` output: a half's gallery is the other half of its
    tracklet (the one true match) and both halves of every tracklet of the same video in view at the same time
    (its rows' frame span overlaps), since two people in one frame are never one identity (the rule the
    clustering keeps). Fragments of one person never overlap in time, so none is ever counted as a negative.
    Spans come from the table's rows, a subset of each tracklet's frames: an overlap found is a true one."""
    index = index or TrackletIndex.from_table(halves)
    parent = np.array([halves.identity[r[0]] for r in index.rows], object)  # half_split: identity = whole tracklet
    if any(p is None for p in parent):
        raise ValueError("cooccurring_gallery needs half_split output (every row has its tracklet as identity)")
    names, parent_ix = np.unique(parent.astype(str), return_inverse=True)
    spans = np.stack([np.full(len(names), np.iinfo(np.int64).max), np.full(len(names), np.iinfo(np.int64).min)], 1)
    np.minimum.at(spans[:, 0], parent_ix, index.span[:, 0])  # a tracklet spans both of its halves
    np.maximum.at(spans[:, 1], parent_ix, index.span[:, 1])
    video = np.zeros(len(names), np.int64)
    video[parent_ix] = index.video
    together = temporal_overlap(spans) & (video[:, None] == video[None, :])
    gallery = together[parent_ix][:, parent_ix] | (parent_ix[:, None] == parent_ix[None, :])
    np.fill_diagonal(gallery, False)
    return gallery


def evaluate_heads(table: SampleTable, heads: Mapping[str, Head], gallery: Gallery = "other_shots") -> dict[str, dict]:
    """Metrics of each head on the same tracklets (identity = the table's identity column); ``gallery`` as in the
    module docstring ("cooccurring" takes ``half_split`` output)."""
    index = TrackletIndex.from_table(table)
    names = [table.identity[r[0]] for r in index.rows]
    known = {n: i for i, n in enumerate(sorted({n for n in names if n is not None}))}
    ident = np.array([known[n] if n is not None else -1 for n in names])
    rule = cooccurring_gallery(table, index) if gallery == "cooccurring" else None
    return {name: retrieval_metrics(tracklet_embeddings(table, h, index), ident, index.shot, gallery=rule)
            for name, h in heads.items()}


def default_heads(checkpoint: str | None) -> dict[str, Head]:
    """The trained head, the same architecture untrained (seed 0), and mean pooling of the backbone patches."""
    heads: dict[str, Head] = {"mean_pool": MeanPoolHead()}
    if checkpoint:
        import tempfile
        from pathlib import Path

        import torch

        from reid_ray.models.set_heads import TrainedHead, build_head, save_head

        trained = TrainedHead(checkpoint)
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            untrained = TrainedHead(save_head(Path(tmp) / "untrained.pt", build_head(trained.spec), trained.spec))
        heads = {"trained": trained, "untrained_head": untrained, **heads}
    return heads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Tracklet retrieval mAP / Rank-k of set heads.")
    ap.add_argument("--data", required=True)
    ap.add_argument("--checkpoint", default=None, help="head.pt of a training checkpoint")
    ap.add_argument("--half-split", action="store_true", help="unlabelled data: the half-tracklet proxy")
    ap.add_argument("--gallery", choices=get_args(Gallery), default="other_shots",
                    help="cooccurring (with --half-split): only certain negatives, people in view at the same time")
    args = ap.parse_args(argv)
    if args.gallery == "cooccurring" and not args.half_split:
        ap.error("--gallery cooccurring needs --half-split")
    table = read_samples(args.data)
    table = half_split(table) if args.half_split else table
    print(json.dumps(evaluate_heads(table, default_heads(args.checkpoint), args.gallery), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
