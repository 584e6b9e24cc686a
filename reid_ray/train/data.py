"""Training data for set heads: one row per (tracklet, frame) with the patch set of that view.

Parquet schema (a file, or a folder of files read as one table)::

    video_id: string     shot_id: string     tracklet_id: string (unique within the shot)
    identity: string, null where unknown (mined tracklets); a data-set-wide person key where known
              (synthetic ground truth "video/id", Market-1501 "market1501/0001"): tracklets sharing it are
              positives of each other, so one person in two shots is never used as a negative
    frame: int64         n_patches: int32        dim: int32
    patches: list<float32>  flat, n_patches * dim values, row-major

Flat rather than list<list<float32>>: the reader turns the whole column into one numpy buffer (values +
offsets) and each set is a reshaped view, no per-row Python conversion.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reid_ray.models.base import PatchEmbedder
from reid_ray.records import Instances

if TYPE_CHECKING:  # the tracker loads models: imported where mining runs
    from reid_ray.reid.tracker import VideoTracker

# Where a synthetic training view's patches come from: the exact visible mask, or a mask made from its box.
MaskSource = Literal["exact", "box", "core"]

SCHEMA = pa.schema([
    ("video_id", pa.string()), ("shot_id", pa.string()), ("tracklet_id", pa.string()), ("identity", pa.string()),
    ("frame", pa.int64()), ("n_patches", pa.int32()), ("dim", pa.int32()), ("patches", pa.list_(pa.float32())),
])


@dataclass
class SampleTable:
    """Columns of the training table in memory; ``patches[i]`` is (n_i, dim) float32."""

    video_id: np.ndarray
    shot_id: np.ndarray
    tracklet_id: np.ndarray
    identity: np.ndarray  # object: str or None
    frame: np.ndarray
    patches: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def dim(self) -> int:
        return int(self.patches[0].shape[1]) if self.patches else 0

    def tracklet_keys(self) -> list[tuple[str, str, str]]:
        return list(zip(self.video_id.tolist(), self.shot_id.tolist(), self.tracklet_id.tolist()))


def to_arrow(rows: Iterable[dict]) -> pa.Table:
    """Rows {video_id, shot_id, tracklet_id, identity?, frame, patches: (n, dim) array} -> an Arrow table."""
    cols: dict[str, list] = {name: [] for name in SCHEMA.names}
    flats = []
    for r in rows:
        p = np.asarray(r["patches"], np.float32)
        if p.ndim != 2 or len(p) == 0:
            raise ValueError(f"patches of {r['video_id']}/{r['tracklet_id']} frame {r['frame']}: need (n>0, dim), got {p.shape}")
        for k in ("video_id", "shot_id", "tracklet_id"):
            cols[k].append(str(r[k]))
        cols["identity"].append(None if r.get("identity") is None else str(r["identity"]))
        cols["frame"].append(int(r["frame"]))
        cols["n_patches"].append(len(p))
        cols["dim"].append(p.shape[1])
        flats.append(p.reshape(-1))
    values = np.concatenate(flats) if flats else np.zeros(0, np.float32)
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in flats])]).astype(np.int32)
    arrays = [pa.array(cols[k], type=SCHEMA.field(k).type) for k in SCHEMA.names[:-1]]
    arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32())))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def write_samples(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_arrow(rows), path)
    return path


def from_arrow(table: pa.Table) -> SampleTable:
    col = table.column("patches").combine_chunks()
    values = col.values.to_numpy(zero_copy_only=False)
    offsets = col.offsets.to_numpy()
    n = table.column("n_patches").to_numpy()
    d = table.column("dim").to_numpy()
    patches = [values[offsets[i] : offsets[i + 1]].reshape(int(n[i]), int(d[i])) for i in range(len(n))]
    as_obj = lambda name: np.asarray(table.column(name).to_pylist(), dtype=object)
    return SampleTable(as_obj("video_id"), as_obj("shot_id"), as_obj("tracklet_id"), as_obj("identity"),
                       table.column("frame").to_numpy().astype(np.int64), patches)


TRAINING_SET_SAMPLES = "samples"  # the Parquet folder of a ``jobs/build_training_set.py`` output


def samples_location(path: str | os.PathLike) -> str:
    """A Parquet file or folder; a local output folder of ``jobs/build_training_set.py`` means its ``samples/``
    (on S3, name ``<out>/samples`` itself: no listing is made here)."""
    path = str(path)
    if "://" not in path and (Path(path) / TRAINING_SET_SAMPLES).is_dir():
        return str(Path(path) / TRAINING_SET_SAMPLES)
    return path


def read_samples(path: str | os.PathLike) -> SampleTable:
    """A Parquet file or folder (local path or a pyarrow URI such as s3://...), or a training-set job's output."""
    return from_arrow(pq.read_table(samples_location(path), schema=SCHEMA))


# ------------------------------------------------------------------------------------------- synthetic


def synthetic_tracklet_rows(video, embedder: PatchEmbedder, every_k: int = 3, min_visibility: float = 0.3,
                            min_height_px: int = 24, mask: MaskSource = "exact") -> list[dict]:
    """Rows of one ``SyntheticVideo``: GT tracklets (one identity's frames in one shot between exits), every k-th
    frame, patch sets inside the GT visible masks (``mask='exact'``) or inside masks made from the GT visible boxes
    the way a box-only backend makes them (``'box'``, ``'core'``: ``Instances.with_masks``). A head serves the
    patches its job feeds it: train it on box masks for a job whose detector gives boxes. Slivers (low visibility,
    tiny boxes) are left out."""
    import cv2

    gt = video.ground_truth
    exits = {int(d["id"]): sorted(e["exit_frame"] for e in d["exits"]) for d in gt.meta["identities"]}
    rows = []
    cap = cv2.VideoCapture(str(video.video_path))
    try:
        for f in range(gt.n_frames):
            ok, bgr = cap.read()
            if not ok:
                raise RuntimeError(f"{video.video_path}: frame {f} does not decode")
            if f % every_k:
                continue
            inst = gt.instances(f)
            keep = [i for i in range(len(inst)) if inst.extra["visibility"][i] >= min_visibility
                    and inst.boxes[i, 3] - inst.boxes[i, 1] >= min_height_px]
            if not keep:
                continue
            sub = Instances(inst.boxes[keep], inst.scores[keep], inst.categories[keep],
                            masks=inst.masks[keep] if mask == "exact" else None, track_ids=inst.track_ids[keep])
            sub = sub.with_masks(bgr.shape[:2], mask)  # no-op for exact masks
            sets = embedder.patch_sets(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), sub)
            shot = gt.shot_of(f)
            for pid, patches in zip(sub.track_ids.tolist(), sets):
                run = int(np.searchsorted(exits.get(pid, []), f, side="right"))  # exits before f: which stay
                rows.append({"video_id": video.video_id, "shot_id": f"shot{shot:03d}", "tracklet_id": f"id{pid}_r{run}",
                             "identity": f"{video.video_id}/{pid}", "frame": f, "patches": patches})
    finally:
        cap.release()
    return rows


def build_from_synthetic(out_path: str | os.PathLike, n_videos: int, seed: int, embedder: PatchEmbedder | None = None,
                         every_k: int = 3, work_dir: str | os.PathLike | None = None, mask: MaskSource = "exact",
                         **spec_overrides) -> Path:
    """Render ``n_videos`` synthetic videos (``generate_corpus``), embed GT tracklets, write one Parquet file.
    ``mask`` as in ``synthetic_tracklet_rows``; ``spec_overrides`` go to ``SyntheticSpec`` (e.g. n_frames,
    cut_every_s, width, height)."""
    from reid_ray.video.synthetic import generate_corpus

    if embedder is None:
        from reid_ray.models.efficientnet import EfficientNetPatchEmbedder

        embedder = EfficientNetPatchEmbedder()
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        rows = []
        for video in generate_corpus(tmp, n_videos=n_videos, seed=seed, **spec_overrides):
            rows += synthetic_tracklet_rows(video, embedder, every_k, mask=mask)
    return write_samples(out_path, rows)


def mined_tracklet_rows(tracker: VideoTracker, uri: str, video_id: str, every_k: int = 3, clean_only: bool = True) -> list[dict]:
    """Rows from any video, no labels (``mine_video`` without the preview)."""
    return mine_video(tracker, uri, video_id, every_k, clean_only).rows


@dataclass
class MinedVideo:
    rows: list[dict]  # training rows (module docstring), identity null
    preview: list[tuple[str, str, list[np.ndarray]]]  # (shot id, tracklet id, RGB crops of a few of its views)
    n_tracklets: int  # tracklets with at least one view kept
    n_shots: int


def mine_video(tracker: VideoTracker, uri: str, video_id: str, every_k: int = 3, clean_only: bool = True, preview_tracklets: int = 0,
               preview_views: int = 6) -> MinedVideo:
    """Rows from any video, no labels: the long-video job's own shots and tracklets (``VideoTracker.track``),
    then, on a second decoding pass, the patch sets of every k-th frame of each tracklet inside its mask.
    ``identity`` is null: a tracklet's views are positives of each other, other tracklets of its shot hard
    negatives, other videos easy ones. Occluded views are left out by default (their patches show two people).

    ``preview_tracklets`` > 0: crops of up to ``preview_views`` views of that many tracklets of the shot with the
    most tracklets (hard negatives of each other), for the data set's sample picture."""
    from reid_ray.video.decode import iter_frames, local_video

    with local_video(uri, tracker.cfg.sources) as local:
        tracked = tracker.track(local)
        detections, tracklets = tracked.detections, tracked.tracklets
        wanted: dict[int, list[tuple[int, int]]] = {}
        views: dict[int, list[int]] = {}  # tracklet id -> frames kept
        for tk in tracklets:
            for k, (f, i) in enumerate(zip(tk.frames.tolist(), tk.det_index.tolist())):
                if k % every_k == 0 and (tk.clean[k] or not clean_only):
                    wanted.setdefault(f, []).append((tk.tracklet_id, i))
                    views.setdefault(tk.tracklet_id, []).append(f)
        shot_of = {tk.tracklet_id: tk.shot_id for tk in tracklets}
        shown = _preview_choice(views, shot_of, preview_tracklets, preview_views)
        crops: dict[int, list[np.ndarray]] = {t: [] for t in shown}
        rows = []
        for f, frame in iter_frames(local):
            if f not in wanted:
                continue
            members = wanted[f]
            inst = detections[f].select(np.array([i for _, i in members]))
            masked = inst.with_masks(frame.shape[:2], tracker.cfg.segmenter.box_mask)
            for (tid, _), patches, box in zip(members, tracker.embedder.patch_sets(frame, masked), inst.boxes):
                rows.append({"video_id": video_id, "shot_id": f"shot{shot_of[tid]:03d}", "tracklet_id": f"t{tid}",
                             "identity": None, "frame": f, "patches": patches})
                if f in shown.get(tid, ()):
                    crops[tid].append(_crop(frame, box))
    preview = [(f"shot{shot_of[t]:03d}", f"t{t}", crops[t]) for t in shown]
    return MinedVideo(rows, preview, len(views), len({shot_of[t] for t in views}))


def _preview_choice(views: dict[int, list[int]], shot_of: dict[int, int], n_tracklets: int, n_views: int) -> dict[int, set[int]]:
    """Tracklet id -> the frames shown: the shot with the most tracklets of two views or more, its longest ones."""
    if n_tracklets <= 0:
        return {}
    by_shot: dict[int, list[int]] = {}
    for t, frames in views.items():
        if len(frames) >= 2:
            by_shot.setdefault(shot_of[t], []).append(t)
    if not by_shot:
        return {}
    shot = max(by_shot, key=lambda s: (len(by_shot[s]), -s))
    chosen = sorted(by_shot[shot], key=lambda t: (-len(views[t]), t))[:n_tracklets]
    return {t: set(np.asarray(views[t])[np.linspace(0, len(views[t]) - 1, min(n_views, len(views[t]))).round().astype(int)].tolist())
            for t in chosen}


def _crop(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = np.clip(np.round(box).astype(int), 0, [w, h, w, h])
    return frame[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)].copy()


# ------------------------------------------------------------------------------------------- Market-1501

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)s(\d+)_(\d+)_(\d+)\.jpg$")


def parse_market1501_name(name: str) -> tuple[int, int, int, int] | None:
    """'0001_c1s1_000151_01.jpg' -> (person 1, camera 1, sequence 1, frame 151); None for other names."""
    m = MARKET_NAME.match(Path(name).name)
    if not m:
        return None
    pid, cam, seq, frame, _ = (int(g) for g in m.groups())
    return pid, cam, seq, frame


def market1501_rows(folder: str | os.PathLike, embedder: PatchEmbedder, batch: int = 32) -> list[dict]:
    """Each image is a one-frame sample with a whole-image mask. Junk (-1) and distractors (0000) are skipped.

    Camera + sequence ('c1s1') is the shot, (person, shot) the tracklet, the person the identity: the
    retrieval protocol here then excludes same-shot gallery items (Market-1501's own excludes same camera).
    """
    import cv2

    folder = Path(folder)
    rows = []
    for path in sorted(folder.glob("*.jpg")):
        parsed = parse_market1501_name(path.name)
        if parsed is None or parsed[0] <= 0:
            continue
        pid, cam, seq, frame = parsed
        bgr = cv2.imread(str(path))
        if bgr is None:
            raise ValueError(f"{path} is not a readable image")
        h, w = bgr.shape[:2]
        inst = Instances.from_arrays([[0, 0, w, h]], [1.0], ["person"], masks=np.ones((1, h, w), bool))
        patches = embedder.patch_sets(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), inst)[0]
        shot = f"c{cam}s{seq}"
        rows.append({"video_id": f"market1501/{folder.name}", "shot_id": shot, "tracklet_id": f"{pid:04d}_{shot}",
                     "identity": f"market1501/{pid:04d}", "frame": frame, "patches": patches})
    return rows


def ingest_market1501(folder: str | os.PathLike, embedder: PatchEmbedder, out_path: str | os.PathLike) -> Path:
    rows = market1501_rows(folder, embedder)
    if not rows:
        raise ValueError(f"{folder}: no Market-1501 images named like 0001_c1s1_000151_01.jpg")
    return write_samples(out_path, rows)


def subset(table: SampleTable, idx: Sequence[int]) -> SampleTable:
    idx = np.asarray(idx, int)
    return SampleTable(table.video_id[idx], table.shot_id[idx], table.tracklet_id[idx], table.identity[idx],
                       table.frame[idx], [table.patches[i] for i in idx])
