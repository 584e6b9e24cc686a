"""FOR BENCHMARKS ONLY, NEVER FOR DATA: a segmenter and an embedder that read the synthetic generator's ground
truth instead of looking at pixels (``segmenter.backend: bench_ground_truth``, ``embedder.backend:
bench_ground_truth``). Pairs mined with them describe scenes that exist only as ground truth, not the videos
their ids name; ``bench/bench_scale.py`` uses them to measure the job's pipeline (sources, clip pairs, actors,
proposal, routing, writes, report, review files) without a network's FLOPs.

How it works:

* Every video id is its own synthetic scene (``SyntheticSpec`` seeded from the id, ``BENCH_PEOPLE`` walkers,
  the probed file's size and fps), followed by ``synthetic.ground_truth_only``: no pixel is drawn.
* The decode stage, with this backend, decodes nothing: each frame it hands on is a small placeholder (at most
  ``FRAME_SIDE`` pixels on a side) whose first row carries its provenance (scene seed, frame index, source size,
  fps; ``placeholder_frames``). The segmenter reads it back, so the segment stage runs unchanged.
* The segmenter returns the ground-truth boxes at the placeholder's scale, identity in ``extra``.
* The embedder returns, per view, a deterministic function of the identity: the identity's vector, a slow drift
  (views seconds apart differ more than views in one clip) and per-view noise; a share of identities are
  look-alikes of another. Calibration and routing then behave like a real run: most matches decided
  automatically, a few sent to humans.
"""
from __future__ import annotations

import hashlib
import struct
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from reid_ray.records import Instances
from reid_ray.video.synthetic import ApproxBox, SyntheticSpec, ground_truth_only

BACKEND = "bench_ground_truth"
FRAME_SIDE = 64  # placeholder frames' longer side: small, so the object store carries little
BENCH_PEOPLE = 8  # walkers per scene
MIN_IN_FRAME = 0.3  # a figure with less of its box inside the frame is not detected
DIM = 32  # embedding size
DRIFT_FRAMES = 20  # a view's drift changes every this many frames
DRIFT, NOISE = 0.22, 0.2  # per-component scale of the drift and of the per-view noise (identity vectors: 1/sqrt(DIM))
LOOKALIKE_SHARE, LOOKALIKE_SPREAD = 0.2, 0.4  # identities drawn near another identity, and how near
SCENE_CACHE = 32  # scenes whose ground truth an actor keeps

_MAGIC = b"BGT1"
_HEADER = struct.Struct("<4sQqIId")  # magic, scene seed, frame index, source width, height, fps


def scene_seed(video_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"bench:{video_id}".encode()).digest()[:8], "little") >> 1


def scene_spec(seed: int, width: int, height: int, fps: float, n_frames: int = 10**9) -> SyntheticSpec:
    """The scene a bench video id stands for; ``n_frames`` only bounds the walk (it is followed lazily)."""
    return SyntheticSpec(video_id=f"bench_{seed:016x}", width=width, height=height, fps=fps, n_frames=n_frames,
                         n_people=BENCH_PEOPLE, seed=seed, occluders=False, exits_and_reentries=True)


def model_size(width: int, height: int) -> tuple[int, int, float]:
    """Placeholder height, width and scale (placeholder / source) for a source frame size."""
    s = min(1.0, FRAME_SIDE / max(width, height))
    return max(2, int(round(height * s))), max(_HEADER.size // 3 + 1, int(round(width * s))), s


def placeholder_frames(video_id: str, frame_indices: Sequence[int], width: int, height: int, fps: float) -> dict:
    """The decode stage's frame fields for these frames of a bench video, no pixel decoded."""
    h, w, scale = model_size(width, height)
    seed = scene_seed(video_id)
    stack = np.zeros((len(frame_indices), h, w, 3), np.uint8)
    for k, i in enumerate(frame_indices):
        header = _HEADER.pack(_MAGIC, seed, int(i), width, height, float(fps))
        stack[k, 0].reshape(-1)[: len(header)] = np.frombuffer(header, np.uint8)
    return {"frames": stack.tobytes(), "frame_indices": np.asarray(frame_indices, np.int64).tobytes(),
            "frame_height": h, "frame_width": w, "scale": w / width}


def read_header(frame: np.ndarray) -> tuple[int, int, int, int, float]:
    """(scene seed, frame index, source width, height, fps) of a placeholder frame."""
    raw = np.ascontiguousarray(frame[0]).reshape(-1)[: _HEADER.size].tobytes()
    magic, seed, index, width, height, fps = _HEADER.unpack(raw)
    if magic != _MAGIC:
        raise ValueError(f"segmenter.backend '{BACKEND}' got a real frame: it only reads the placeholders the decode "
                         "stage makes with this backend (benchmarks only)")
    return seed, index, width, height, fps


class _Scene:
    """One scene's ground truth, followed as far as asked."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self._walk: Iterator[list[ApproxBox]] = ground_truth_only(spec)
        self._frames: list[list[ApproxBox]] = []

    def at(self, frame: int) -> list[ApproxBox]:
        while len(self._frames) <= frame:
            self._frames.append(next(self._walk))
        return self._frames[frame]


class BenchGroundTruthSegmenter:
    """Implements ``Segmenter`` on placeholder frames: the scene's ground-truth people, boxes at model size."""

    real_masks = False

    def __init__(self, category: str = "person", score: float = 0.9, seconds_per_frame: float = 0.0) -> None:
        self.category, self.score, self.seconds_per_frame = category, score, seconds_per_frame
        self._scenes: OrderedDict[tuple, _Scene] = OrderedDict()

    def boxes_at(self, seed: int, frame: int, width: int, height: int, fps: float) -> list[ApproxBox]:
        """Ground truth of one source frame (boxes in source pixels)."""
        key = (seed, width, height, fps)
        scene = self._scenes.get(key)
        if scene is None:
            scene = self._scenes[key] = _Scene(scene_spec(seed, width, height, fps))
            if len(self._scenes) > SCENE_CACHE:
                self._scenes.popitem(last=False)
        self._scenes.move_to_end(key)
        return [b for b in scene.at(frame) if b.in_frame_share >= MIN_IN_FRAME]

    def segment(self, frames: Sequence[np.ndarray]) -> list[Instances]:
        if self.seconds_per_frame:
            time.sleep(self.seconds_per_frame * len(frames))  # a model's time, without its CPU
        out = []
        for frame in frames:
            seed, index, width, height, fps = read_header(frame)
            rows = self.boxes_at(seed, index, width, height, fps)
            fh, fw = frame.shape[:2]
            s = fw / width
            boxes = np.asarray([b.full_box for b in rows], np.float32).reshape(-1, 4) * s
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, fw)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, fh)
            inst = Instances.from_arrays(boxes, [self.score] * len(rows), [self.category] * len(rows))
            n = len(rows)
            out.append(Instances(inst.boxes, inst.scores, inst.categories, extra={
                "identity": np.asarray([b.id for b in rows], np.int64),
                "scene_seed": np.full(n, seed, np.uint64),
                "frame": np.full(n, index, np.int64),
            }))
        return out


_NOISE_TABLE = np.random.default_rng(20261202).standard_normal((1 << 14, DIM)).astype(np.float32)


def _row(*key: int) -> np.ndarray:
    """A fixed standard-normal vector per integer key (a table lookup: cheap and deterministic)."""
    return _NOISE_TABLE[hash(key) & ((1 << 14) - 1)]


class BenchGroundTruthEmbedder:
    """Implements ``PatchEmbedder``: one 'patch' per instance, a deterministic function of its identity."""

    dim = DIM

    def __init__(self) -> None:
        self._identities: dict[tuple[int, int], np.ndarray] = {}

    def identity_vector(self, seed: int, identity: int) -> np.ndarray:
        key = (seed, identity)
        v = self._identities.get(key)
        if v is None:
            rng = np.random.default_rng([seed, identity, 7])
            own = rng.standard_normal(DIM).astype(np.float32)
            if identity > 1 and rng.random() < LOOKALIKE_SHARE:  # near an identity of the same scene
                other = self.identity_vector(seed, int(rng.integers(1, identity)))
                own = other + LOOKALIKE_SPREAD * own / np.linalg.norm(own)
            v = self._identities[key] = own / np.linalg.norm(own)
        return v

    def patch_sets(self, frame: np.ndarray, instances: Instances) -> list[np.ndarray]:
        if "identity" not in instances.extra:
            raise ValueError(f"embedder.backend '{BACKEND}' embeds only instances of segmenter.backend '{BACKEND}'")
        out = []
        for identity, seed, index in zip(instances.extra["identity"], instances.extra["scene_seed"], instances.extra["frame"]):
            identity, seed, index = int(identity), int(seed), int(index)
            v = (self.identity_vector(seed, identity) + DRIFT * _row(seed, identity, index // DRIFT_FRAMES) / np.sqrt(DIM)
                 + NOISE * _row(seed, identity, index, 1) / np.sqrt(DIM))
            out.append(v[None, :])
        return out
