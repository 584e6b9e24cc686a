"""A video's identities in the formats annotation teams load: MOTChallenge text (written by ``reid_ray.mot_format``,
the one module that reads and writes MOTChallenge files), COCO video (YouTube-VIS) JSON, YOLO per-frame labels with
the track id as a sixth column (as Ultralytics' tracker saves them) and CVAT for video 1.1 XML.

Every writer takes one typed, format-neutral record, ``VideoTracks`` (one row per identity per frame), so none
knows where boxes and masks came from; ``VideoTracks.from_tracklets`` is the adapter from the long-video job.
``write_track_exports`` writes the chosen formats under a video's folder, each file through ``reid_ray.io``'s
atomic writers, and a rerun replaces them whole (stale YOLO frame files are removed).

Conventions: frames are 0-based everywhere except MOTChallenge (1-based frames and pixels); a frame image is named
``{frame:06d}.jpg`` in COCO's ``file_names`` and YOLO's label files. Masks are COCO RLE at any size (the
segmenter's are at model size) and are written at the video's size.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args
from xml.sax.saxutils import escape, quoteattr

import cv2
import numpy as np
import yaml
from pycocotools import mask as mask_utils

from reid_ray.io import write_text_atomic
from reid_ray.mot_format import write_mot
from reid_ray.records import mask_to_rle, rle_to_mask

if TYPE_CHECKING:
    from reid_ray.records import Instances
    from reid_ray.tracking.tracklets import Tracklet
    from reid_ray.video.decode import VideoInfo

TrackFormat = Literal["mot", "coco_vis", "yolo", "cvat"]
TRACK_FORMATS: tuple[str, ...] = get_args(TrackFormat)

MOT_FILE = "identities.txt"
COCO_VIS_FILE = "identities_coco_vis.json"
CVAT_FILE = "identities_cvat_video.xml"
YOLO_DIR = "identities_yolo"


def frame_name(frame: int) -> str:
    """A frame's image stem (0-based), as ``ffmpeg -start_number 0 %06d.jpg`` names extracted frames."""
    return f"{int(frame):06d}"


@dataclass(frozen=True)
class VideoTracks:
    """Identities of one video: one row per identity per frame, ordered by (frame, identity)."""

    video_id: str
    width: int
    height: int
    fps: float
    n_frames: int
    frames: np.ndarray  # (n,) int64, 0-based
    identities: np.ndarray  # (n,) int64, 1-based (the MOTChallenge ids)
    boxes: np.ndarray  # (n, 4) float64 x1, y1, x2, y2 in 0-based source pixels
    scores: np.ndarray  # (n,) float64
    categories: np.ndarray | None = None  # (n,) str class names; None: all "person"
    masks: tuple[dict | None, ...] | None = None  # per row COCO RLE (any size) or None; None: boxes only

    def __post_init__(self) -> None:
        n = len(self.frames)
        cats = np.full(n, "person", object) if self.categories is None else np.asarray(self.categories, object)
        cols = {"frames": np.asarray(self.frames, np.int64).reshape(-1),
                "identities": np.asarray(self.identities, np.int64).reshape(-1),
                "boxes": np.asarray(self.boxes, np.float64).reshape(-1, 4),
                "scores": np.asarray(self.scores, np.float64).reshape(-1), "categories": cats}
        masks = None if self.masks is None else tuple(self.masks)
        if any(len(v) != n for v in cols.values()) or (masks is not None and len(masks) != n):
            raise ValueError(f"VideoTracks: every column needs {n} rows")
        order = np.lexsort((cols["identities"], cols["frames"]))
        f, i = cols["frames"][order], cols["identities"][order]
        if ((np.diff(f) == 0) & (np.diff(i) == 0)).any():
            raise ValueError("VideoTracks: an identity appears twice in one frame")
        if n and (cols["frames"].min() < 0 or cols["frames"].max() >= self.n_frames):
            raise ValueError(f"VideoTracks: frames must lie in [0, {self.n_frames})")
        for name, values in cols.items():
            object.__setattr__(self, name, values[order])
        object.__setattr__(self, "masks", None if masks is None else tuple(masks[i] for i in order))

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def classes(self) -> list[str]:
        """Class names in index order (YOLO class k, COCO category k + 1)."""
        return sorted({str(c) for c in self.categories}) or ["person"]

    def identity_rows(self) -> Iterable[tuple[int, np.ndarray]]:
        """(identity, its row indices in frame order) for each identity, in id order."""
        order = np.argsort(self.identities, kind="stable")  # stable: rows are in frame order already
        ids, starts = np.unique(self.identities[order], return_index=True)
        yield from ((int(i), rows) for i, rows in zip(ids, np.split(order, starts[1:])))

    def at_video_size(self) -> VideoTracks:
        """The same tracks with every mask as RLE at the video's size (decoded, resized, encoded once)."""
        if self.masks is None:
            return self
        masks = tuple(None if m is None else _rle_at(m, self.height, self.width) for m in self.masks)
        return replace(self, masks=masks)

    @classmethod
    def from_tracklets(cls, video_id: str, video: VideoInfo, tracklets: Sequence[Tracklet], identity: np.ndarray,
                       filled: Sequence[tuple] = (), detections: Sequence[Instances] | None = None,
                       category: str = "person") -> VideoTracks:
        """The long-video job's identities: each tracklet's detections under its identity, plus the boxes filled into
        short gaps ((identity, frames, x1 y1 x2 y2 score rows), no mask). A detection's mask is the segmenter's RLE in
        its frame's ``Instances.extra`` (``mask_rle``, ``mask_size``: SAM3's, at model size) where there is one."""
        frames, ids, boxes, scores, masks = [], [], [], [], []
        for tk, ident in zip(tracklets, identity):
            frames.append(tk.frames)
            ids.append(np.full(len(tk), int(ident)))
            boxes.append(tk.boxes)
            scores.append(tk.scores)
            masks.extend(_detection_mask(detections, int(f), int(i)) for f, i in zip(tk.frames, tk.det_index))
        for ident, f, v in filled:
            frames.append(f)
            ids.append(np.full(len(f), int(ident)))
            boxes.append(np.asarray(v)[:, :4])
            scores.append(np.asarray(v)[:, 4])
            masks.extend([None] * len(f))

        def cat(parts: list, width: int = 0) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros((0, width) if width else 0)

        return cls(video_id, int(video.width), int(video.height), float(video.fps), int(video.n_frames), cat(frames), cat(ids),
                   cat(boxes, 4), cat(scores), np.full(len(masks), category, object),
                   tuple(masks) if any(m is not None for m in masks) else None)


def _detection_mask(detections: Sequence[Instances] | None, frame: int, i: int) -> dict | None:
    extra = detections[frame].extra if detections is not None else {}
    if "mask_rle" not in extra:
        return None
    return {"size": [int(v) for v in extra["mask_size"][i]], "counts": extra["mask_rle"][i]}


def _rle_at(rle: dict, height: int, width: int) -> dict:
    """A mask's RLE at the video's size: nearest-neighbour resize keeps it binary."""
    if [int(v) for v in rle["size"]] == [height, width]:
        return {"size": [height, width], "counts": rle["counts"]}
    mask = cv2.resize(rle_to_mask(rle).astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return mask_to_rle(mask.astype(bool))


# ---------------------------------------------------------------------------------------------- COCO video


def to_coco_vis(tracks: VideoTracks) -> dict:
    """YouTube-VIS: one annotation per identity (its ``id`` the identity), per-frame lists over the whole video with
    null where it is absent; ``segmentations`` as compressed RLE where a mask exists, else null."""
    tracks = tracks.at_video_size()
    n, classes = tracks.n_frames, tracks.classes
    video = {"id": 1, "name": tracks.video_id, "width": tracks.width, "height": tracks.height, "length": n,
             "fps": tracks.fps, "file_names": [f"{frame_name(f)}.jpg" for f in range(n)]}
    annotations = []
    for ident, rows in tracks.identity_rows():
        segs, bboxes, areas = [None] * n, [None] * n, [None] * n
        for r in rows:
            f, (x1, y1, x2, y2) = int(tracks.frames[r]), tracks.boxes[r]
            bboxes[f] = [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)]
            mask = tracks.masks[r] if tracks.masks is not None else None
            segs[f] = mask
            # COCO's area is the mask's pixel count where there is a mask, else the box's
            areas[f] = float(mask_utils.area(_coco_rle(mask))) if mask is not None else round(float((x2 - x1) * (y2 - y1)), 2)
        annotations.append({"id": ident, "video_id": 1, "category_id": classes.index(str(tracks.categories[rows[0]])) + 1,
                            "iscrowd": 0, "width": tracks.width, "height": tracks.height, "length": 1,
                            "segmentations": segs, "bboxes": bboxes, "areas": areas})
    return {"info": {"description": f"identities of {tracks.video_id} (reid-ray)"}, "licenses": [], "videos": [video],
            "categories": [{"id": k + 1, "name": c, "supercategory": c} for k, c in enumerate(classes)],
            "annotations": annotations}


def _coco_rle(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


# ---------------------------------------------------------------------------------------------- YOLO


def to_yolo(tracks: VideoTracks) -> dict[int, str]:
    """Per frame with anyone in it: ``class cx cy w h id`` rows, normalised by the video's size, clipped to the frame
    (YOLO cannot say 'outside'), the identity in the sixth column as Ultralytics' ``track --save-txt`` writes it."""
    classes = tracks.classes
    size = np.array([tracks.width, tracks.height, tracks.width, tracks.height], np.float64)
    boxes = np.clip(tracks.boxes, 0, size) / size
    out: dict[int, list[str]] = {}
    for f, i, c, (x1, y1, x2, y2) in zip(tracks.frames, tracks.identities, tracks.categories, boxes):
        out.setdefault(int(f), []).append(
            f"{classes.index(str(c))} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f} {i}")
    return {f: "".join(line + "\n" for line in lines) for f, lines in out.items()}


def yolo_data_yaml(tracks: VideoTracks) -> str:
    """Ultralytics' dataset file: the class names, images expected beside ``labels/`` under the same stems."""
    classes = tracks.classes
    return yaml.safe_dump({"path": ".", "train": "images", "val": "images", "nc": len(classes),
                           "names": dict(enumerate(classes))}, sort_keys=False)


def write_yolo(tracks: VideoTracks, folder: Path) -> Path:
    """``folder/labels/<frame>.txt``, ``folder/classes.txt`` (one name a line, class k on line k) and
    ``folder/data.yaml``; label files of frames no longer annotated are removed, so a rerun leaves no stale frame."""
    folder, labels = Path(folder), Path(folder) / "labels"
    files = to_yolo(tracks)
    for f, text in files.items():
        write_text_atomic(text, labels / f"{frame_name(f)}.txt")
    keep = {f"{frame_name(f)}.txt" for f in files}
    for old in labels.glob("*.txt") if labels.is_dir() else ():
        if old.name not in keep:
            old.unlink(missing_ok=True)
    write_text_atomic("".join(c + "\n" for c in tracks.classes), folder / "classes.txt")
    write_text_atomic(yolo_data_yaml(tracks), folder / "data.yaml")
    return folder


# ---------------------------------------------------------------------------------------------- CVAT for video


def cvat_mask_rle(mask: np.ndarray) -> tuple[list[int], int, int, int, int] | None:
    """CVAT's mask encoding: run lengths over the mask's tight box in row order, the first run counting zeros
    (0 when the box's first pixel is set); with left, top, width, height. None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    top, left, bottom, right = int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1
    flat = mask[top:bottom, left:right].ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return ([0] + runs if flat[0] else runs), left, top, right - left, bottom - top


def _cvat_meta(tracks: VideoTracks) -> list[str]:
    labels = "".join(f"<label><name>{escape(c)}</name><type>any</type><attributes></attributes></label>" for c in tracks.classes)
    return ["  <meta>", "    <task>", f"      <name>{escape(tracks.video_id)}</name>", f"      <size>{tracks.n_frames}</size>",
            "      <mode>interpolation</mode>", "      <overlap>0</overlap>", "      <start_frame>0</start_frame>",
            f"      <stop_frame>{max(tracks.n_frames - 1, 0)}</stop_frame>", f"      <labels>{labels}</labels>",
            f"      <original_size><width>{tracks.width}</width><height>{tracks.height}</height></original_size>",
            "    </task>", "  </meta>"]


def _cvat_box(frame: int, box: np.ndarray, outside: bool) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (f'    <box frame="{frame}" keyframe="1" outside="{int(outside)}" occluded="0" '
            f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0"></box>')


def _cvat_identity_track(tracks: VideoTracks, ident: int, rows: np.ndarray, grouped: bool) -> list[str]:
    """One track per identity: every box a keyframe (each is a detection or the job's own interpolation), and an
    outside keyframe on the frame after each run of frames, so CVAT does not interpolate across the gap."""
    label = quoteattr(str(tracks.categories[rows[0]]))
    group = f' group_id="{ident}"' if grouped else ""
    lines = [f'  <track id="{ident}" label={label} source="auto"{group}>']
    frames = tracks.frames[rows]
    for k, r in enumerate(rows):
        f = int(frames[k])
        lines.append(_cvat_box(f, tracks.boxes[r], outside=False))
        ends = k + 1 == len(rows) or frames[k + 1] != f + 1
        if ends and f + 1 < tracks.n_frames:
            lines.append(_cvat_box(f + 1, tracks.boxes[r], outside=True))
    lines.append("  </track>")
    return lines


def _cvat_mask_track(track_id: int, label: str, ident: int, frame: int, rle: dict, n_frames: int) -> list[str]:
    """A mask as CVAT writes a lone shape in its video format: a track of one keyframe (plus its outside keyframe).
    CVAT's importer keeps only the first shape of a mask track, so one track per mask keeps every mask;
    ``group_id`` ties it to its identity's box track."""
    enc = cvat_mask_rle(rle_to_mask(rle))
    if enc is None:
        return []
    runs, left, top, w, h = enc
    attrs = f'rle="{", ".join(map(str, runs))}" left="{left}" top="{top}" width="{w}" height="{h}" z_order="0"'
    lines = [f'  <track id="{track_id}" label={quoteattr(label)} source="auto" group_id="{ident}">',
             f'    <mask frame="{frame}" keyframe="1" outside="0" occluded="0" {attrs}></mask>']
    if frame + 1 < n_frames:
        lines.append(f'    <mask frame="{frame + 1}" keyframe="1" outside="1" occluded="0" {attrs}></mask>')
    return lines + ["  </track>"]


def to_cvat_video(tracks: VideoTracks) -> str:
    """CVAT for video 1.1: box tracks with the identity as track id; with masks, one mask track per mask after them
    (ids above the largest identity), grouped with its identity's box track."""
    tracks = tracks.at_video_size()
    grouped = tracks.masks is not None
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>", *_cvat_meta(tracks)]
    for ident, rows in tracks.identity_rows():
        lines.extend(_cvat_identity_track(tracks, ident, rows, grouped))
    next_id = int(tracks.identities.max()) + 1 if len(tracks) else 1
    for r, rle in enumerate(tracks.masks or ()):
        if rle is not None:
            track = _cvat_mask_track(next_id, str(tracks.categories[r]), int(tracks.identities[r]), int(tracks.frames[r]),
                                     rle, tracks.n_frames)
            next_id += bool(track)
            lines.extend(track)
    lines.append("</annotations>")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- all formats


def write_coco_vis(tracks: VideoTracks, path: Path) -> Path:
    return write_text_atomic(json.dumps(to_coco_vis(tracks), separators=(",", ":")), path)  # compact: per-frame lists


def write_cvat_video(tracks: VideoTracks, path: Path) -> Path:
    return write_text_atomic(to_cvat_video(tracks), path)


# format -> (file or folder under a video's outputs, writer); adding a format is one writer and one line here
WRITERS: dict[str, tuple[str, Callable[[VideoTracks, Path], Path]]] = {
    "mot": (MOT_FILE, write_mot),
    "coco_vis": (COCO_VIS_FILE, write_coco_vis),
    "yolo": (YOLO_DIR, write_yolo),
    "cvat": (CVAT_FILE, write_cvat_video),
}


def write_track_exports(out: Path, formats: Sequence[str], tracks: VideoTracks) -> dict[str, str]:
    """Write each chosen format under ``out``; returns format -> file or folder written (relative to ``out``)."""
    unknown = set(formats) - set(WRITERS)
    if unknown:
        raise ValueError(f"unknown track formats {sorted(unknown)}; known: {list(WRITERS)}")
    if {"coco_vis", "cvat"} & set(formats):
        tracks = tracks.at_video_size()  # once for both: decoding and resizing masks is the costly part
    written = {}
    for fmt in dict.fromkeys(formats):
        name, write = WRITERS[fmt]
        write(tracks, Path(out) / name)
        written[fmt] = name
    return written
