"""Trainable heads that pool a variable-length patch set into one L2-normalised vector.

Input everywhere is a padded batch ``x`` (B, L, D) with ``valid`` (B, L) bool, True on real patches
(``pad_sets`` builds both). Every head returns (B, out_dim) normalised embeddings, and
``pool_with_weights`` also the per-patch weights the output was built from (B, L), zero on padding and
summing to 1 over valid patches: the pooling weights (MeanPool, AttentionPool) or the summary token's
last-layer attention (TransformerHead), for attention pictures.

``TrainedHead`` implements the ``Head`` protocol from a checkpoint file written by ``save_head``.
Written here (no library offers masked set pooling with these checkpoints); layers are torch's own.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHECKPOINT_FORMAT = "reid_ray.set_head/1"


def pad_sets(sets: Sequence[np.ndarray], dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_i, D) arrays -> zero-padded (B, Lmax, D) float32 tensor and (B, Lmax) bool mask of real patches."""
    if not len(sets):
        d = dim or 0
        return torch.zeros((0, 1, d)), torch.zeros((0, 1), dtype=torch.bool)
    d = dim or int(sets[0].shape[1])
    lengths = [len(s) for s in sets]
    if min(lengths) == 0:
        raise ValueError("pad_sets: an empty patch set has no embedding (embedders always keep one cell)")
    x = np.zeros((len(sets), max(lengths), d), np.float32)
    valid = np.zeros((len(sets), max(lengths)), bool)
    for i, s in enumerate(sets):
        if s.ndim != 2 or s.shape[1] != d:
            raise ValueError(f"pad_sets: set {i} has shape {s.shape}, expected (n, {d})")
        x[i, : len(s)] = s
        valid[i, : len(s)] = True
    return torch.from_numpy(x), torch.from_numpy(valid)


class SetHead(nn.Module):
    """Common interface: ``forward(x, valid) -> (B, out_dim)``; ``pool_with_weights`` adds (B, L) weights."""

    in_dim: int
    out_dim: int

    def pool_with_weights(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.pool_with_weights(x, valid)[0]


def _masked_softmax(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    # -inf on padding gives exact zeros there, so padding never changes the weights of real patches.
    return torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)


class MeanPool(SetHead):
    """Masked mean, optionally projected to ``out_dim`` (a linear map; identity when out_dim == in_dim)."""

    def __init__(self, in_dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim or in_dim
        self.proj = nn.Identity() if self.out_dim == in_dim else nn.Linear(in_dim, self.out_dim)

    def pool_with_weights(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = valid.float() / valid.sum(1, keepdim=True).clamp(min=1)
        pooled = torch.einsum("bl,bld->bd", w, x)
        return F.normalize(self.proj(pooled), dim=-1), w


class AttentionPool(SetHead):
    """One learned query attends over the (key-projected) patches; the softmax-weighted patch mean is projected."""

    def __init__(self, in_dim: int, out_dim: int, key_dim: int = 64) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.key = nn.Linear(in_dim, key_dim)
        self.query = nn.Parameter(torch.randn(key_dim) / math.sqrt(key_dim))
        self.proj = nn.Linear(in_dim, out_dim)

    def pool_with_weights(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.key(x) @ self.query / math.sqrt(self.query.numel())
        w = _masked_softmax(scores, valid)
        pooled = torch.einsum("bl,bld->bd", w, x)
        return F.normalize(self.proj(pooled), dim=-1), w


class TransformerHead(SetHead):
    """Input projection, a learned summary token, ``nn.TransformerEncoder`` with ``src_key_padding_mask``;
    the summary token's output goes through LayerNorm and a linear map to ``out_dim``. No positional
    encoding: a patch set is a set (the mask cells' grid positions are not kept in the data).

    With ``residual_mean`` the output is a linear map of the masked patch mean plus the transformer's term,
    which starts at zero: training begins at (projected) mean pooling and learns a correction to it. Over
    OSNet patches, already trained for ReID, the plain transformer fell below mean pooling (bench/ablation_heads.py)."""

    def __init__(
        self, in_dim: int, out_dim: int, d_model: int = 128, layers: int = 2, heads: int = 4,
        ff_mult: int = 2, dropout: float = 0.1, residual_mean: bool = False,
    ) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.residual = nn.Linear(in_dim, out_dim) if residual_mean else None
        self.inp = nn.Linear(in_dim, d_model)
        self.summary = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=ff_mult * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        # No nested tensors: their fast path only runs in eval and would make train/eval numerics differ.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, out_dim)
        if residual_mean:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def _tokens(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = torch.cat([self.summary.expand(len(x), -1, -1), self.inp(x)], 1)
        pad = torch.cat([torch.zeros_like(valid[:, :1]), ~valid], 1)  # True = ignore (torch's convention)
        return tokens, pad

    def _finish(self, h: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        y = self.out(self.norm(h[:, 0]))
        if self.residual is not None:
            w = valid.float() / valid.sum(1, keepdim=True).clamp(min=1)
            y = y + self.residual(torch.einsum("bl,bld->bd", w, x))
        return F.normalize(y, dim=-1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        tokens, pad = self._tokens(x, valid)
        return self._finish(self.encoder(tokens, src_key_padding_mask=pad), x, valid)

    def pool_with_weights(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same output as ``forward``; weights = the last layer's summary-token attention over the patches
        (mean over heads, renormalised without the token's attention to itself)."""
        h, pad = self._tokens(x, valid)
        *first, last = self.encoder.layers
        for layer in first:
            h = layer(h, src_key_padding_mask=pad)
        q = last.norm1(h) if last.norm_first else h
        _, attn = last.self_attn(q[:, :1], q, q, key_padding_mask=pad, need_weights=True, average_attn_weights=True)
        w = attn[:, 0, 1:]
        w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
        h = last(h, src_key_padding_mask=pad)
        return self._finish(h, x, valid), w


HEAD_KINDS: dict[str, type[SetHead]] = {"mean": MeanPool, "attention": AttentionPool, "transformer": TransformerHead}


def build_head(spec: dict[str, Any]) -> SetHead:
    """``spec``: {"kind": ..., "in_dim": ..., "out_dim": ..., plus the kind's own arguments}."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind not in HEAD_KINDS:
        raise ValueError(f"head kind '{kind}' is not one of {sorted(HEAD_KINDS)}")
    return HEAD_KINDS[kind](**spec)


def save_head(path: str | Path, model: SetHead, spec: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """One file: the format tag, the JSON-able spec that rebuilds the module, and its state dict."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "spec": dict(spec), "state_dict": state, "extra": extra or {}}, path)
    return path


def load_head(path: str | Path, device: str = "cpu") -> tuple[SetHead, dict[str, Any]]:
    # weights_only: a checkpoint is data (tensors, str, numbers), never code to run.
    ckpt = torch.load(Path(path), map_location=device, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} head checkpoint")
    model = build_head(ckpt["spec"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt["spec"]


class TrainedHead:
    """Implements ``Head`` from a checkpoint (``embedder.head: <path>``): pools numpy patch sets in batches.

    Sets are batched in length order so each batch pads little; results come back in input order.
    """

    def __init__(self, path: str | Path, device: str = "cpu", batch_size: int = 256) -> None:
        self.model, self.spec = load_head(path, device)
        self.device, self.batch_size = device, batch_size
        self.dim = self.model.out_dim

    @torch.inference_mode()
    def _run(self, patch_sets: Sequence[np.ndarray], weights: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        n = len(patch_sets)
        emb = np.zeros((n, self.dim), np.float32)
        ws: list[np.ndarray] = [np.zeros(0, np.float32)] * n
        order = np.argsort([len(p) for p in patch_sets], kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            x, valid = pad_sets([np.asarray(patch_sets[i], np.float32) for i in idx], self.model.in_dim)
            x, valid = x.to(self.device), valid.to(self.device)
            if weights:
                e, w = self.model.pool_with_weights(x, valid)
                for row, i in enumerate(idx):
                    ws[i] = w[row, : len(patch_sets[i])].float().cpu().numpy()
            else:
                e = self.model(x, valid)
            emb[idx] = e.float().cpu().numpy()
        return emb, ws

    def pool(self, patch_sets: Sequence[np.ndarray]) -> np.ndarray:
        if not len(patch_sets):
            return np.zeros((0, self.dim), np.float32)
        return self._run(patch_sets, weights=False)[0]

    def attention(self, patch_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Embeddings and each set's per-patch weights (n_i,), for attention pictures."""
        return self._run(patch_sets, weights=True)
