"""Tracklet-to-tracklet distances for long-video re-identification (each tracklet: the per-frame
embeddings of one person's track inside one shot, an (n x d) array).

Definitions (what every function here computes):

* Frame distance. For frames a_i of A (n x d) and b_j of B (m x d), with S_ij the cosine similarity of the
  L2-normalised rows, D_ij = arccos(clip(S_ij, -1, 1)) / pi, an angle in [0, 1] (0: same direction,
  0.5: orthogonal, 1: opposite). S is clipped because rounding can push |S| a hair past 1 (arccos: NaN).
* Chamfer-q, the seed's "Chamfer-10" (method "chamfer", q = 10 by default). With the nearest-neighbour
  distances of each frame in the other tracklet, r_i = min_j D_ij (i = 1..n) and c_j = min_i D_ij (j = 1..m),
  pooled into one set of n + m values:

      chamfer_q(A, B) = percentile_q(r_1..r_n, c_1..c_m)   (numpy's default linear interpolation)

  A low percentile looks only at the best-matched frames and ignores bad ones (blur, occlusion, a turned
  head): "pay attention only to the frames that have the highest similarity".
* Power-Chamfer-p (method "power_chamfer"). The power mean M_p(x) = (mean_k x_k ** p) ** (1 / p) of each
  direction's nearest-neighbour distances:

      power_chamfer_p(A, B) = 0.5 * (M_p(r) + M_p(c))

  p = 1 is the classic (symmetric, averaged) Chamfer distance 0.5 * (mean_i r_i + mean_j c_j); a larger p
  weights the worst-matched frames more (p -> inf: the mean of the two directed Hausdorff distances): the
  opposite emphasis of the seed's Chamfer-q.
* Percentile-q. np.percentile(D, q) over all n * m frame pairs, numpy's default linear interpolation.
* A matrix's diagonal is 0 by convention (a tracklet is the same tracklet as itself); it is not computed.
  Both distances are symmetric, and matrices are made exactly symmetric (upper triangle, mirrored).

`tracklet_distance` is the float64 per-pair reference. `distance_matrix` is the fast kernel: all frames in
one matrix, cut into tiles of ~2048 x 2048 frames along tracklet boundaries (upper triangle only); per
tile one float32 matrix product (numpy BLAS), then per-tracklet-segment reductions (numpy `reduceat` / `torch.topk`). Because arccos is decreasing, min D = f(max S) and the k-th smallest D is
f(k-th largest S), so the reductions run on S and arccos only on the small reduced arrays. Accuracy: the
float32 product rounds S by ~1e-7, so D differs from the reference by ~1e-7 except where S is within ~1e-6
of 1 (near-duplicate frames), where arccos' infinite slope turns that into up to ~1e-4 (on a D near 0).
`sharded_distance_matrix` splits the upper triangle into tracklet blocks run as Ray tasks.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import ray

if TYPE_CHECKING:
    import torch  # imported inside the all-pairs percentile path: actors that only propose stay free of torch's start-up time and memory

from reid_ray.config.sections import DistanceMethod as Method

# A set of tracklets as the kernel and the object store hold it: (frames F x d float32, L2-normalised;
# lengths T int64). Two plain arrays, so Ray stores them without pickling and tasks read them zero-copy.
Packed = tuple[np.ndarray, np.ndarray]

# Frames per side of a similarity tile (2048^2 float32 = 16 MiB): tiles this size keep the product near full speed
# and the reductions in cache; larger row chunks ran slower end to end (README, Measured).
DEFAULT_TILE_FRAMES = 2048


# ---------------------------------------------------------------- reference (per pair, float64)


METHODS = ("chamfer", "power_chamfer", "percentile")


def _check(method: str, p: float, q: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not p > 0:
        raise ValueError(f"p must be > 0, got {p}")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")


def _normalise(x: np.ndarray) -> np.ndarray:
    # Cosine similarity needs unit rows; a zero row stays zero (similarity 0, distance 0.5 to everything).
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, np.finfo(x.dtype).tiny)


def _as_tracklet(x: np.ndarray, dtype: type) -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"a tracklet must be a non-empty (frames x dim) array, got shape {x.shape}")
    return x


def frame_angle_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """D (n x m, float64): angle between every frame of `a` and every frame of `b`, divided by pi."""
    a, b = _normalise(_as_tracklet(a, np.float64)), _normalise(_as_tracklet(b, np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding dims differ: {a.shape[1]} vs {b.shape[1]}")
    return np.arccos(np.clip(a @ b.T, -1.0, 1.0)) / np.pi


def power_mean(x: np.ndarray, p: float, axis: int | None = None) -> np.ndarray:
    """(mean x**p) ** (1/p) for x >= 0. No rescaling: x**p underflows float64 only below ~1e-30 for p = 10."""
    return np.mean(np.power(x, p), axis=axis) ** (1.0 / p)


def tracklet_distance(a: np.ndarray, b: np.ndarray, method: Method = "chamfer", p: float = 10, q: float = 10) -> float:
    """Distance between two tracklets (module docstring); the reference the kernel is tested against."""
    _check(method, p, q)
    d = frame_angle_distances(a, b)
    if method == "chamfer":
        return float(np.percentile(np.concatenate([d.min(axis=1), d.min(axis=0)]), q))
    if method == "power_chamfer":
        return float(0.5 * (power_mean(d.min(axis=1), p) + power_mean(d.min(axis=0), p)))
    return float(np.percentile(d, q))


# ---------------------------------------------------------------- kernel (blocks of tracklets, float32)


def pack(tracklets: Sequence[np.ndarray]) -> Packed:
    """Concatenate tracklets into one normalised float32 frame matrix plus their lengths."""
    arrays = [_as_tracklet(t, np.float32) for t in tracklets]
    if not arrays:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    if len({a.shape[1] for a in arrays}) > 1:
        raise ValueError("all tracklets must have the same embedding dim")
    return _normalise(np.concatenate(arrays)), np.array([len(a) for a in arrays], np.int64)


def _starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def _angle(s: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip(s.astype(np.float64), -1.0, 1.0)) / np.pi


def _reduce_row_segments(x: np.ndarray, lengths: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """Per row segment, `ufunc` reduced over its rows (Tr x columns). A loop of contiguous reductions:
    `ufunc.reduceat` along axis 0 is far slower (it walks the array in a cache-hostile order; README, Measured)."""
    bounds = np.cumsum(lengths)
    return np.stack([ufunc.reduce(x[b - n : b], axis=0) for b, n in zip(bounds, lengths)])


def _power_chamfer_block(s: np.ndarray, row_len: np.ndarray, col_len: np.ndarray, p: float) -> np.ndarray:
    """Power-Chamfer-p of every (row tracklet, column tracklet) pair from their frame similarities s (R x C)."""
    r = _angle(np.maximum.reduceat(s, _starts(col_len), axis=1))  # (R x Tc): each row frame's best match
    c = _angle(_reduce_row_segments(s, row_len, np.maximum))  # (Tr x C): each column frame's best match
    r_mean = _reduce_row_segments(np.power(r, p), row_len, np.add) / row_len[:, None]
    c_mean = np.add.reduceat(np.power(c, p), _starts(col_len), axis=1) / col_len[None, :]
    return 0.5 * (r_mean ** (1.0 / p) + c_mean ** (1.0 / p))


def _padded_index_np(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each tracklet's k-th frame (T x max_len; past its end clamped) and the padding mask."""
    k = np.arange(int(lengths.max()))
    idx = _starts(lengths)[:, None] + k[None, :]
    return np.minimum(idx, int(lengths.sum()) - 1), k[None, :] >= lengths[:, None]


def _padded_index(lengths: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    idx, pad = _padded_index_np(lengths)
    return torch.from_numpy(idx), torch.from_numpy(pad)


def _percentile_block(s: np.ndarray, row_len: np.ndarray, col_len: np.ndarray, q: float) -> np.ndarray:
    """q-th percentile of D for every pair, numpy's linear interpolation between two order statistics.

    Written here because no library takes percentiles over ragged 2-D segments: each pair's frame pairs are
    gathered into one padded row of a (Tr*Tc x max_n*max_m) tensor (padding sorts last), and `torch.topk`
    finds the k-th largest S = k-th smallest D. For q > 50 the order is flipped so k stays small."""
    import torch

    s = torch.from_numpy(s)
    (ri, r_pad), (ci, c_pad) = _padded_index(row_len), _padded_index(col_len)
    flip = q > 50  # look from the large-D end: the needed rank is then at most half the pairs
    g = s[ri[:, None, :, None], ci[None, :, None, :]]  # (Tr, Tc, max_n, max_m), contiguous
    g.masked_fill_(r_pad[:, None, :, None] | c_pad[None, :, None, :], torch.inf if flip else -torch.inf)
    g = g.reshape(len(row_len) * len(col_len), -1)
    count = (row_len[:, None] * col_len[None, :]).ravel()  # frame pairs per tracklet pair
    pos = q / 100.0 * (count - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, count - 1)
    frac = pos - lo
    if flip:
        lo, hi = count - 1 - lo, count - 1 - hi
    top = torch.topk(g, int(max(lo.max(), hi.max())) + 1, dim=1, largest=not flip).values.numpy()
    pair = np.arange(len(count))
    d_lo, d_hi = _angle(top[pair, lo]), _angle(top[pair, hi])
    return (d_lo + (d_hi - d_lo) * frac).reshape(len(row_len), len(col_len))


def _chamfer_block(s: np.ndarray, row_len: np.ndarray, col_len: np.ndarray, q: float) -> np.ndarray:
    """The seed's Chamfer-q of every pair: q-th percentile of its pooled nearest-neighbour distances.

    Written here for the same reason as the percentile above (no library takes percentiles over ragged
    segments): each pair's n + m best-match similarities are gathered into one padded row (padding sorts
    first), sorted, and the two order statistics around the percentile read per row."""
    best_in_col = np.maximum.reduceat(s, _starts(col_len), axis=1)  # (R x Tc): each row frame's best match
    best_in_row = _reduce_row_segments(s, row_len, np.maximum)  # (Tr x C): each column frame's best match
    r_idx, r_pad = _padded_index_np(row_len)
    c_idx, c_pad = _padded_index_np(col_len)
    from_rows = best_in_col[r_idx].transpose(0, 2, 1)  # (Tr, Tc, max_n)
    from_cols = best_in_row[:, c_idx]  # (Tr, Tc, max_m)
    from_rows = np.where(r_pad[:, None, :], -np.inf, from_rows)
    from_cols = np.where(c_pad[None, :, :], -np.inf, from_cols)
    pooled = np.sort(np.concatenate([from_rows, from_cols], axis=2), axis=2)  # ascending S: padding first
    width = pooled.shape[2]
    count = row_len[:, None] + col_len[None, :]  # values pooled per pair
    pos = q / 100.0 * (count - 1)  # rank in ascending D = descending S
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, count - 1)
    frac = pos - lo
    d_lo = _angle(np.take_along_axis(pooled, (width - 1 - lo)[..., None], axis=2)[..., 0])
    d_hi = _angle(np.take_along_axis(pooled, (width - 1 - hi)[..., None], axis=2)[..., 0])
    return d_lo + (d_hi - d_lo) * frac


def _pair_block(s: np.ndarray, row_len: np.ndarray, col_len: np.ndarray, method: Method, p: float, q: float) -> np.ndarray:
    if method == "chamfer":
        return _chamfer_block(s, row_len, col_len, q)
    if method == "power_chamfer":
        return _power_chamfer_block(s, row_len, col_len, p)
    return _percentile_block(s, row_len, col_len, q)


def _groups(lengths: np.ndarray, tile_frames: int, padded: bool) -> list[tuple[int, int]]:
    """Consecutive tracklet ranges of at most tile_frames frames (at least one tracklet each); padded:
    counted as count x longest, the size of the percentile's padded layout."""
    groups, start, frames, longest = [], 0, 0, 0
    for t, n in enumerate(lengths):
        n = int(n)
        size = (t - start + 1) * max(longest, n) if padded else frames + n
        if t > start and size > tile_frames:
            groups.append((start, t))
            start, frames, longest = t, 0, 0
        frames, longest = frames + n, max(longest, n)
    groups.append((start, len(lengths)))
    return groups


def _frames(lengths: np.ndarray, t0: int, t1: int) -> slice:
    start = int(lengths[:t0].sum())
    return slice(start, start + int(lengths[t0:t1].sum()))


def _by_length(packed: Packed) -> tuple[Packed, np.ndarray]:
    """Tracklets reordered by length, and the order: a tile of similar lengths pads little."""
    frames, lengths = packed
    order = np.argsort(lengths, kind="stable")
    starts = _starts(lengths)
    frame_idx = np.concatenate([np.arange(starts[t], starts[t] + lengths[t]) for t in order])
    return (frames[frame_idx], lengths[order]), order


def _tiled(rows: Packed, cols: Packed | None, method: Method, p: float, q: float, tile_frames: int) -> np.ndarray:
    """Tile loop: one product per (row group, column group) tile, upper triangle only when cols is None."""
    same = cols is None
    (rf, rl), (cf, cl) = rows, (rows if same else cols)
    out = np.zeros((len(rl), len(cl)))
    padded = method != "power_chamfer"  # the percentile methods gather padded per-pair rows
    r_groups = _groups(rl, tile_frames, padded)
    c_groups = r_groups if same else _groups(cl, tile_frames, padded)
    for a, (r0, r1) in enumerate(r_groups):
        for c0, c1 in c_groups[a:] if same else c_groups:
            s = rf[_frames(rl, r0, r1)] @ cf[_frames(cl, c0, c1)].T  # the one product per tile (float32 BLAS)
            out[r0:r1, c0:c1] = _pair_block(s, rl[r0:r1], cl[c0:c1], method, p, q)
    if same:
        out = np.triu(out, 1)
        out += out.T
    return out


def block_distances(
    rows: Packed,
    cols: Packed | None = None,
    method: Method = "chamfer",
    p: float = 10,
    q: float = 10,
    tile_frames: int = DEFAULT_TILE_FRAMES,
) -> np.ndarray:
    """Distances between packed row tracklets and packed column tracklets (Tr x Tc).

    cols None: the rows against themselves; only tiles on or above the diagonal are computed, then the
    upper triangle is mirrored, with a zero diagonal."""
    _check(method, p, q)
    if len(rows[1]) == 0 or (cols is not None and len(cols[1]) == 0):
        return np.zeros((len(rows[1]), len(rows[1] if cols is None else cols[1])))
    if method == "power_chamfer":
        return _tiled(rows, cols, method, p, q, tile_frames)
    rows, r_order = _by_length(rows)
    cols, c_order = (None, r_order) if cols is None else _by_length(cols)
    out = np.empty((len(r_order), len(c_order)))
    out[np.ix_(r_order, c_order)] = _tiled(rows, cols, method, p, q, tile_frames)
    return out


def _index_range(n: int, sel: slice | None) -> range:
    return range(n)[sel if sel is not None else slice(None)]


def distance_matrix(
    embeddings: Sequence[np.ndarray],
    method: Method = "chamfer",
    p: float = 10,
    q: float = 10,
    rows: slice | None = None,
    cols: slice | None = None,
    tile_frames: int = DEFAULT_TILE_FRAMES,
) -> np.ndarray:
    """Tracklet distance matrix (len(rows) x len(cols)); entry [i, j] matches
    `tracklet_distance(embeddings[i], embeddings[j])` to ~1e-7 (module docstring), and is 0 where the
    global row and column index are the same tracklet. rows/cols: slices of the tracklet list (None: all)."""
    r_idx, c_idx = _index_range(len(embeddings), rows), _index_range(len(embeddings), cols)
    if r_idx == c_idx:
        return block_distances(pack([embeddings[i] for i in r_idx]), None, method, p, q, tile_frames)
    out = block_distances(
        pack([embeddings[i] for i in r_idx]), pack([embeddings[j] for j in c_idx]), method, p, q, tile_frames
    )
    same = np.asarray(r_idx)[:, None] == np.asarray(c_idx)[None, :]  # overlapping slices: diagonal is 0
    out[same] = 0.0
    return out


# ---------------------------------------------------------------- sharded over Ray tasks


@ray.remote
def _block_task(rows: Packed, cols: Packed | None, method: Method, p: float, q: float) -> np.ndarray:
    # Ray resolves the two refs to zero-copy views of the object store; one task = one block of the matrix.
    return block_distances(rows, cols, method, p, q)


def sharded_distance_matrix(
    embeddings: Sequence[np.ndarray],
    block: int,
    method: Method = "chamfer",
    p: float = 10,
    q: float = 10,
) -> np.ndarray:
    """The same matrix as `distance_matrix`, computed by Ray tasks over blocks of `block` tracklets.

    Each block of tracklets is put into the object store once; a task gets only the refs of its row block
    and column block (upper triangle incl. diagonal blocks); results are mirrored into the lower triangle.
    Uses the Ray the caller started (`ray.init`); without one Ray starts a local instance on first use."""
    _check(method, p, q)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    n = len(embeddings)
    starts = list(range(0, n, block))
    refs = [ray.put(pack(embeddings[s : s + block])) for s in starts]
    pending = {}
    for bi in range(len(starts)):
        for bj in range(bi, len(starts)):
            ref = _block_task.remote(refs[bi], None if bi == bj else refs[bj], method, p, q)
            pending[ref] = (starts[bi], starts[bj])
    out = np.zeros((n, n))
    while pending:  # fill blocks as they finish, so finished results need not wait in the store
        (done,), _ = ray.wait(list(pending), num_returns=1)
        i0, j0 = pending.pop(done)
        part = ray.get(done)
        out[i0 : i0 + part.shape[0], j0 : j0 + part.shape[1]] = part
        out[j0 : j0 + part.shape[1], i0 : i0 + part.shape[0]] = part.T
    return out
