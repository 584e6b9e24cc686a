"""Circle loss (pytorch-metric-learning) with cross-worker gathering and a non-finite guard.

Gathering: PML's ``DistributedLossWrapper`` all-gathers embeddings and labels from every worker; the local
part keeps its gradient, the others are constants, and it multiplies the loss by world size so DDP's
gradient averaging gives the gradient of the loss over the global batch. Labels must therefore be global
(the sampler gives identity indices over the whole data set) and every worker's batch the same size
(``torch.distributed.all_gather`` needs equal shapes; the P x K sampler guarantees it).

Pairs: with labels alone every two views of different labels are a negative pair. Tracklets mined from
footage have no identity, and two of them may be one person (lost and found again, back after an exit):
``certain_pairs_loss`` gives the loss the positive pairs and only the negative pairs the sampler's
``may_be_negatives`` allows, as PML's ``indices_tuple`` over the gathered batch.

Non-finite losses: skip and count (choice). One poisoned batch should not kill a long run, but DDP would
hang if one worker stepped and another skipped, so the decision is all-reduced (skip if any worker saw
NaN/inf); ``NonFiniteGuard`` raises ``NonFiniteLossError`` after ``max_consecutive`` skips in a row.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from pytorch_metric_learning.losses import CircleLoss
from pytorch_metric_learning.utils.distributed import (
    DistributedLossWrapper,
    all_gather,
    is_distributed,
)

from reid_ray.config import LossConfig


class NonFiniteLossError(FloatingPointError):
    """Training produced NaN/inf losses repeatedly: lower the lr or gamma, or check the data for NaN patches."""


def make_circle_loss(cfg: LossConfig) -> torch.nn.Module:
    """CircleLoss(m, gamma) on cosine similarity; wrapped to gather across workers when DDP is initialised."""
    loss = CircleLoss(m=cfg.m, gamma=cfg.gamma)
    return DistributedLossWrapper(loss) if is_distributed() else loss


def certain_pair_indices(labels: torch.Tensor, tracklets: np.ndarray,
                         may_be_negative: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[torch.Tensor, ...]:
    """PML pair indices (a1, p, a2, n): every pair of one label, and the pairs of different labels whose
    tracklets ``may_be_negative(tracklets, tracklets)`` allows."""
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    neg = ~same & torch.as_tensor(may_be_negative(tracklets, tracklets), device=labels.device)
    a1, p = pos.nonzero(as_tuple=True)
    a2, n = neg.nonzero(as_tuple=True)
    return a1, p, a2, n


def certain_pairs_loss(loss_fn: torch.nn.Module, emb: torch.Tensor, labels: torch.Tensor, tracklets: np.ndarray,
                       may_be_negative: Callable[[np.ndarray, np.ndarray], np.ndarray] | None) -> torch.Tensor:
    """``loss_fn(emb, labels)`` on the pairs ``certain_pair_indices`` keeps (all pairs when ``may_be_negative`` is
    None). Under DDP the indices address the gathered batch in PML's order: this rank's rows, then the other
    ranks' in rank order (``all_gather`` drops this rank), which the wrapper's loss sees."""
    if may_be_negative is None:
        return loss_fn(emb, labels)
    all_labels, all_tracklets = labels, torch.as_tensor(tracklets, device=labels.device)
    if is_distributed() and torch.distributed.get_world_size() > 1:
        all_labels = torch.cat([labels, all_gather(labels)])
        all_tracklets = torch.cat([all_tracklets, all_gather(all_tracklets)])
    indices = certain_pair_indices(all_labels, all_tracklets.cpu().numpy(), may_be_negative)
    return loss_fn(emb, labels, indices)


def all_finite(loss: torch.Tensor) -> bool:
    """True when the loss is finite on every worker (one all-reduce under DDP, so all workers agree)."""
    bad = (~torch.isfinite(loss.detach())).any().to(torch.float32).reshape(1)
    if is_distributed():
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    return bool(bad.item() == 0)


class NonFiniteGuard:
    """Counts skipped steps; raises after ``max_consecutive`` non-finite losses in a row (0: at the first)."""

    def __init__(self, max_consecutive: int = 5) -> None:
        self.max_consecutive = max_consecutive
        self.skipped = 0
        self._run = 0

    def ok(self, loss: torch.Tensor) -> bool:
        if all_finite(loss):
            self._run = 0
            return True
        self.skipped += 1
        self._run += 1
        if self._run > self.max_consecutive:
            raise NonFiniteLossError(
                f"circle loss was NaN/inf on {self._run} consecutive steps ({self.skipped} skipped in all): "
                "lower optimizer.lr or loss.gamma, or check the training data for NaN/inf patches"
            )
        return False
