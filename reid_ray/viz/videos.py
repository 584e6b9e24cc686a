"""The two review videos of the re-identification job: people coloured by tracklet (what the tracker saw) and
by identity (what clustering concluded); a person's mask is filled in its colour where the segmenter gave one
(SAM3), its box outlined otherwise. A colour is a pure function of its id, so one identity keeps its
colour across cuts and in every run."""
from __future__ import annotations

import colorsys
from collections.abc import Iterable, Mapping
from pathlib import Path

import cv2
import numpy as np

Box = tuple  # (xyxy box, colour key, label text[, COCO RLE of its mask (dict: size, counts) or None])
MASK_ALPHA = 0.55  # share of the colour in a filled mask: the person stays recognisable under it


def colour_for(key: int) -> tuple[int, int, int]:
    """A saturated BGR colour for an id; golden-ratio hue steps keep consecutive ids far apart."""
    hue = (int(key) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def _fill(out: np.ndarray, rle: dict, colour: tuple[int, int, int]) -> None:
    from reid_ray.records import rle_to_mask

    mask = rle_to_mask(rle)
    if mask.shape != out.shape[:2]:  # masks are kept at model size
        mask = cv2.resize(mask.astype(np.uint8), (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    out[mask] = (out[mask] * (1 - MASK_ALPHA) + np.asarray(colour, np.float32) * MASK_ALPHA).astype(np.uint8)


def draw_boxes(frame_bgr: np.ndarray, boxes: Iterable[Box]) -> np.ndarray:
    out = frame_bgr.copy()
    for box, key, text, *rest in boxes:
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        c = colour_for(key)
        if rest and rest[0] is not None:
            _fill(out, rest[0], c)
        else:
            cv2.rectangle(out, (x1, y1), (x2, y2), c, 2)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = max(th + 3, y1)
        cv2.rectangle(out, (x1, ty - th - 3), (x1 + tw + 4, ty), c, -1)
        cv2.putText(out, text, (x1 + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def write_box_videos(
    frames: Iterable[tuple[int, np.ndarray]],
    fps: float,
    layers: Mapping[str | Path, Mapping[int, list[Box]]],
) -> list[Path]:
    """One pass over ``frames`` ((index, RGB)) writes one mp4 (mp4v) per layer: path -> frame -> boxes."""
    writers: dict[Path, cv2.VideoWriter] = {}
    try:
        for idx, rgb in frames:
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            for path, per_frame in layers.items():
                path = Path(path)
                if path not in writers:
                    h, w = bgr.shape[:2]
                    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
                    writers[path] = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    if not writers[path].isOpened():
                        raise RuntimeError(f"cv2.VideoWriter could not open {tmp}")
                writers[path].write(draw_boxes(bgr, per_frame.get(idx, [])))
    finally:
        for w in writers.values():
            w.release()
    for path in writers:  # renamed only when complete: a crash leaves no half video under the final name
        path.with_name(f".{path.stem}.tmp{path.suffix}").replace(path)
    return list(writers)
