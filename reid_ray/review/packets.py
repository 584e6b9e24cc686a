"""Review packets: one PNG per uncertain pair that an annotator answers ("same entity?") at a glance.

Layout (top to bottom): a header with the question, then side A and side B next to each other, each a
thumbnail cropped around its box with context, a caption strip (side, time, frame) and a small overview of the
whole frame with the box and the thumbnail's window marked. Boxes are drawn on the resized thumbnail, so
lines stay 2 px crisp whatever the zoom.
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from reid_ray.config import ReviewConfig
from reid_ray.names import packet_file_name

BOX_RGB = (0, 255, 0)  # pure green: rare in indoor/street footage, reads well on grey and dark scenes
MASK_RGB = (255, 0, 255)  # magenta contour: distinct from the box where both are drawn
WINDOW_RGB = (255, 255, 255)  # the thumbnail's window on the overview
BACKGROUND_RGB = (34, 34, 38)
HEADER_RGB = (16, 16, 20)
TEXT_RGB = (240, 240, 240)
MUTED_RGB = (170, 170, 178)
SIDE_RGB = {"A": (66, 133, 244), "B": (244, 160, 0)}  # chip colours, so A and B are told apart at a glance

MAX_UPSCALE = 6.0  # beyond this, cubic upscaling only invents blur: show more context instead
MAX_ASPECT = 2.5  # a thumbnail at most this many times as wide as tall (wide boxes are scaled down)
FONT = cv2.FONT_HERSHEY_DUPLEX  # heavier strokes than SIMPLEX: readable at small sizes
GAP = 12  # px between and around panels


@dataclass(frozen=True)
class SideInfo:
    """What the caption of one side says; all optional."""

    frame: int | None = None
    t_s: float | None = None
    note: str = ""  # e.g. "track 3"


@dataclass(frozen=True)
class _Window:
    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def w(self) -> int:
        return self.x2 - self.x1

    @property
    def h(self) -> int:
        return self.y2 - self.y1


def render_pair_png(
    frame_a: np.ndarray,
    bbox_a: Sequence[float],
    frame_b: np.ndarray,
    bbox_b: Sequence[float],
    path: str | Path,
    *,
    title: str,
    thumb_height: int = 256,
    context_px: int = 48,
    mask_a: np.ndarray | None = None,
    mask_b: np.ndarray | None = None,
    info_a: SideInfo | None = None,
    info_b: SideInfo | None = None,
) -> Path:
    """Write the review PNG of one pair. Frames are RGB uint8 (H, W, 3); boxes x1, y1, x2, y2 in frame pixels;
    masks (optional) boolean, frame-sized or any size (resized to the frame)."""
    scale = thumb_height / 256.0
    panels = [
        _side_panel(frame_a, bbox_a, mask_a, "A", info_a or SideInfo(), thumb_height, context_px, scale),
        _side_panel(frame_b, bbox_b, mask_b, "B", info_b or SideInfo(), thumb_height, context_px, scale),
    ]
    body = _hstack_centred(panels, gap=GAP)
    canvas = _with_header(body, title, scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def pair_title(pair: Mapping) -> str:
    """The question in the header, e.g. "Same person? · gap 10 s". The model's confidence is not shown: it would
    anchor the annotator and give the gold questions (very sure pairs) away."""
    cats = str(pair.get("category") or "entity").split("|")
    what = cats[0] if len(set(cats)) == 1 else "entity (" + " / ".join(cats) + ")"
    return f"Same {what}? · gap {_fmt_seconds(float(pair['gap_s']))} s"


def render_pair_row(
    pair: Mapping,
    frame_a: np.ndarray,
    frame_b: np.ndarray,
    review_dir: str | Path,
    *,
    config: ReviewConfig | None = None,
    mask_a: np.ndarray | None = None,
    mask_b: np.ndarray | None = None,
) -> Path:
    """The packet of one PAIR row, written to ``review_dir/<pair_id>.png`` (where the Label Studio tasks point)."""
    cfg = config or ReviewConfig()
    return render_pair_png(
        frame_a,
        pair["a_bbox"],
        frame_b,
        pair["b_bbox"],
        Path(review_dir) / packet_file_name(pair["pair_id"]),
        title=pair_title(pair),
        thumb_height=cfg.thumb_height,
        context_px=cfg.context_px,
        mask_a=mask_a,
        mask_b=mask_b,
        info_a=_side_info(pair, "a"),
        info_b=_side_info(pair, "b"),
    )


def _side_info(pair: Mapping, side: str) -> SideInfo:
    track = pair.get(f"{side}_track_id")
    return SideInfo(
        frame=pair.get(f"{side}_frame"),
        t_s=pair.get(f"{side}_t_s"),
        note=f"track {track}" if track is not None and track >= 0 else "",
    )


# ---------------------------------------------------------------- one side


def _side_panel(
    frame: np.ndarray,
    bbox: Sequence[float],
    mask: np.ndarray | None,
    side: str,
    info: SideInfo,
    thumb_height: int,
    context_px: int,
    scale: float,
) -> np.ndarray:
    frame = _check_frame(frame, side)
    box = _clamp_box(bbox, frame.shape[:2])
    window = _crop_window(box, frame.shape[:2], context_px, min_side=math.ceil(thumb_height / MAX_UPSCALE))
    thumb, zoom = _thumbnail(frame, window, thumb_height)
    if mask is not None:
        _draw_mask_contour(thumb, _frame_sized_mask(mask, frame.shape[:2]), window, zoom)
    _draw_box(thumb, [(v - o) * zoom for v, o in zip(box, (window.x1, window.y1) * 2)], BOX_RGB, 2)
    width = max(thumb.shape[1], int(230 * scale))  # wide enough for the caption
    parts = [
        _pad_to(thumb, width, thumb_height),
        _caption(side, info, width, scale),
        _overview(frame, box, window, width, int(thumb_height * 0.42)),
    ]
    return np.vstack(parts)


def _check_frame(frame: np.ndarray, side: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:  # grey footage: show it as it is
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame {side} must be RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    return frame


def _clamp_box(bbox: Sequence[float], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer box inside the frame, at least 1 px wide and tall (a degenerate box still shows where it is)."""
    h, w = shape
    x1, y1, x2, y2 = (float(v) for v in bbox)
    x1, x2 = sorted((min(max(x1, 0), w - 1), min(max(x2, 0), w)))
    y1, y2 = sorted((min(max(y1, 0), h - 1), min(max(y2, 0), h)))
    ix1, iy1 = math.floor(x1), math.floor(y1)
    return ix1, iy1, max(math.ceil(x2), ix1 + 1), max(math.ceil(y2), iy1 + 1)


def _crop_window(box: tuple[int, int, int, int], shape: tuple[int, int], context_px: int, min_side: int) -> _Window:
    """Box plus context, grown to ``min_side`` where small (so upscaling stays <= MAX_UPSCALE), shifted
    back inside the frame rather than cut, so a box at the edge keeps its full context on the other side."""
    h, w = shape
    x1, y1, x2, y2 = box[0] - context_px, box[1] - context_px, box[2] + context_px, box[3] + context_px
    x1, x2 = _grow_and_fit(x1, x2, min_side, w)
    y1, y2 = _grow_and_fit(y1, y2, min_side, h)
    return _Window(x1, y1, x2, y2)


def _grow_and_fit(lo: int, hi: int, min_len: int, limit: int) -> tuple[int, int]:
    if hi - lo < min_len:
        extra = min_len - (hi - lo)
        lo, hi = lo - extra // 2, hi + extra - extra // 2
    if lo < 0:
        lo, hi = 0, hi - lo
    if hi > limit:
        lo, hi = lo - (hi - limit), limit
    return max(lo, 0), min(hi, limit)


def _thumbnail(frame: np.ndarray, window: _Window, thumb_height: int) -> tuple[np.ndarray, float]:
    crop = frame[window.y1 : window.y2, window.x1 : window.x2]
    zoom = min(thumb_height / window.h, MAX_UPSCALE)  # frames shorter than thumb_height/6: stop at 6x
    zoom = min(zoom, MAX_ASPECT * thumb_height / window.w)  # very wide crops: shrink to keep the page compact
    size = (max(1, round(window.w * zoom)), max(1, round(window.h * zoom)))
    interp = cv2.INTER_CUBIC if zoom > 1 else cv2.INTER_AREA
    return np.ascontiguousarray(cv2.resize(crop, size, interpolation=interp)), zoom


def _frame_sized_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask).astype(np.uint8)
    if m.shape != shape:  # masks may come at the model's resolution
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return m


def _draw_mask_contour(thumb: np.ndarray, mask: np.ndarray, window: _Window, zoom: float) -> None:
    crop = np.ascontiguousarray(mask[window.y1 : window.y2, window.x1 : window.x2])
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    scaled = [np.round((c.astype(np.float32) + 0.5) * zoom).astype(np.int32) for c in contours]
    cv2.polylines(thumb, scaled, True, MASK_RGB, 1, cv2.LINE_AA)


def _draw_box(img: np.ndarray, box: Sequence[float], colour: tuple[int, int, int], thickness: int) -> None:
    """Rectangle kept fully on the image (a box at the crop edge would otherwise lose half its line)."""
    h, w = img.shape[:2]
    m = thickness // 2
    x1, x2 = (int(np.clip(round(v), m, w - 1 - m)) for v in (box[0], box[2]))
    y1, y2 = (int(np.clip(round(v), m, h - 1 - m)) for v in (box[1], box[3]))
    cv2.rectangle(img, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)


def _caption(side: str, info: SideInfo, width: int, scale: float) -> np.ndarray:
    height = int(34 * scale)
    strip = _canvas(height, width, BACKGROUND_RGB)
    chip = height - int(8 * scale)
    cv2.rectangle(strip, (0, 4), (chip, 4 + chip), SIDE_RGB[side], -1)
    _text(strip, side, (int(chip * 0.24), 4 + int(chip * 0.8)), 0.7 * scale, (255, 255, 255), 2)
    bits = []
    if info.t_s is not None:
        bits.append(f"t {info.t_s:.2f} s")
    if info.frame is not None:
        bits.append(f"frame {info.frame}")
    if info.note:
        bits.append(info.note)
    _fit_text(strip, "  ".join(bits), (chip + int(10 * scale), 4 + int(chip * 0.75)), 0.55 * scale, TEXT_RGB, 1)
    return strip


def _overview(frame: np.ndarray, box: tuple[int, int, int, int], window: _Window, width: int, height: int) -> np.ndarray:
    """The whole frame, small, with the box (green) and the thumbnail's window (white) marked."""
    fh, fw = frame.shape[:2]
    zoom = min(height / fh, width / fw)
    small = cv2.resize(frame, (max(1, round(fw * zoom)), max(1, round(fh * zoom))), interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(small)
    _draw_box(small, [v * zoom for v in (window.x1, window.y1, window.x2, window.y2)], WINDOW_RGB, 1)
    _draw_box(small, [v * zoom for v in box], BOX_RGB, 2)
    strip = _canvas(height + GAP // 2, width, BACKGROUND_RGB)
    x0 = (width - small.shape[1]) // 2
    strip[: small.shape[0], x0 : x0 + small.shape[1]] = small
    return strip


# ---------------------------------------------------------------- page


def _with_header(body: np.ndarray, title: str, scale: float) -> np.ndarray:
    width = body.shape[1] + 2 * GAP
    header = _canvas(int(44 * scale), width, HEADER_RGB)
    _fit_text(header, title, (GAP, int(30 * scale)), 0.8 * scale, TEXT_RGB, 1, max_width=width - 2 * GAP)
    page = _canvas(header.shape[0] + body.shape[0] + GAP, width, BACKGROUND_RGB)
    page[: header.shape[0]] = header
    page[header.shape[0] + GAP :, GAP : GAP + body.shape[1]] = body
    return page


def _hstack_centred(panels: list[np.ndarray], gap: int) -> np.ndarray:
    """Side by side, each centred vertically in the tallest one's height."""
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    out = _canvas(height, width, BACKGROUND_RGB)
    x = 0
    for p in panels:
        y = (height - p.shape[0]) // 2
        out[y : y + p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def _pad_to(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre ``img`` on a background of this size (a short or narrow thumbnail stays aligned with the other)."""
    out = _canvas(max(height, img.shape[0]), max(width, img.shape[1]), BACKGROUND_RGB)
    y, x = (out.shape[0] - img.shape[0]) // 2, (out.shape[1] - img.shape[1]) // 2
    out[y : y + img.shape[0], x : x + img.shape[1]] = img
    return out


def _canvas(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    out = np.empty((height, width, 3), np.uint8)
    out[:] = colour
    return out


# ---------------------------------------------------------------- text (Hershey fonts are ASCII only)

_SEPARATOR = "·"  # drawn as a dot: the Hershey fonts have no glyph for it
_REPLACE = {"—": "-", "–": "-", "×": "x", "≥": ">=", "≤": "<=", "’": "'", "“": '"', "”": '"', "…": "..."}


def _ascii(text: str) -> str:
    text = "".join(_REPLACE.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch if ord(ch) < 128 else ("" if unicodedata.combining(ch) else "?") for ch in text)


def _text(img: np.ndarray, text: str, org: tuple[int, int], size: float, colour, thickness: int) -> int:
    """Draw text, a '·' as a small dot; returns the x after the text."""
    x, y = org
    parts = text.split(_SEPARATOR)
    for i, part in enumerate(parts):
        part = _ascii(part)
        if part:
            cv2.putText(img, part, (x, y), FONT, size, colour, thickness, cv2.LINE_AA)
            x += cv2.getTextSize(part, FONT, size, thickness)[0][0]
        if i < len(parts) - 1:
            r = max(2, round(3 * size))
            cv2.circle(img, (x + r, y - int(9 * size)), r, colour, -1, cv2.LINE_AA)
            x += 2 * r
    return x


def _text_width(text: str, size: float, thickness: int) -> int:
    parts = text.split(_SEPARATOR)
    dots = (len(parts) - 1) * 2 * max(2, round(3 * size))
    return dots + sum(cv2.getTextSize(_ascii(p), FONT, size, thickness)[0][0] for p in parts if _ascii(p))


def _fit_text(
    img: np.ndarray, text: str, org: tuple[int, int], size: float, colour, thickness: int, max_width: int | None = None
) -> None:
    """Shrink to fit (down to a still readable size), then cut with '...'."""
    max_width = max_width if max_width is not None else img.shape[1] - org[0] - 4
    min_size = size * 0.7
    while size > min_size and _text_width(text, size, thickness) > max_width:
        size *= 0.95
    while len(text) > 4 and _text_width(text, size, thickness) > max_width:
        text = text[:-4] + "..."
    _text(img, text, org, size, colour, thickness)


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f}".rstrip("0").rstrip(".") if abs(s - round(s)) > 1e-6 else str(round(s))
