"""Synthetic footage with exact ground truth: people walk, cross, pass behind pillars, leave and come back.

It is the embedded default input of the pair-mining job and the ground truth of quality tests, so the figures
are drawn to be found as COCO "person" by a real detector (YOLOX-nano), every identity looks the same in every
frame and shot, and identities differ clearly (shirt colour and pattern, trousers, hair, skin, build).

Files written by ``generate(spec, out_dir)``::

    out_dir/<video_id>.mp4               the footage (mp4v)
    out_dir/<video_id>/gt/gt.txt         MOTChallenge rows frame,id,x,y,w,h,1,1,visibility (1-based frames,
                                         0-based pixel box of the *visible* part; rows only where visibility > 0)
    out_dir/<video_id>/gt/masks.jsonl    one line per frame and id: visible mask as COCO RLE (+ boxes, visibility)
    out_dir/<video_id>/gt/meta.json      spec, cuts, shots, identities, presence intervals, occluders

Frames are BGR (OpenCV order) everywhere in this module. Everything is a pure function of the spec: the same
spec gives byte-identical ground-truth files and identical frames.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from reid_ray.records import Instances, mask_to_rle, rle_to_mask

__all__ = [
    "Appearance",
    "GroundTruth",
    "GtRow",
    "RenderedFrame",
    "SyntheticSpec",
    "SyntheticVideo",
    "appearances",
    "generate",
    "generate_corpus",
    "ground_truth_only",
    "load_ground_truth",
    "render",
]

# --------------------------------------------------------------------------------------------- spec


class SyntheticSpec(BaseModel):
    """What to draw. Every field takes part in the output; nothing else does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    video_id: str
    width: int = Field(640, ge=160)
    height: int = Field(360, ge=120)
    fps: float = Field(10.0, gt=0)
    n_frames: int = Field(300, ge=1)
    n_people: int = Field(4, ge=0)
    seed: int = 0
    cut_every_s: float | None = Field(None, gt=0, description="Camera cut period; None: one continuous shot.")
    occluders: bool = True
    exits_and_reentries: bool = True


# ------------------------------------------------------------------------------------- palettes (RGB)
# Kept as RGB because that is how colours are named; converted to BGR once in ``_bgr``.

SKIN_TONES = {
    "very light": (250, 218, 190), "light": (238, 196, 160), "medium": (214, 165, 120),
    "tan": (185, 130, 85), "brown": (140, 90, 55), "dark": (90, 58, 38),
}
HAIR_COLOURS = {
    "black": (22, 20, 20), "dark brown": (60, 40, 25), "brown": (115, 78, 42),
    "blonde": (222, 190, 120), "auburn": (150, 62, 30), "grey": (175, 175, 170),
}
SHIRT_COLOURS = {
    "red": (205, 30, 35), "blue": (35, 85, 205), "green": (40, 150, 60), "yellow": (235, 200, 40),
    "orange": (240, 120, 20), "purple": (125, 50, 165), "white": (238, 238, 236), "black": (30, 30, 34),
    "teal": (20, 140, 140), "pink": (235, 125, 175), "maroon": (115, 22, 38), "sky blue": (110, 180, 232),
    "lime": (150, 205, 50), "grey": (135, 135, 135),
}
TROUSER_COLOURS = {
    "denim": (50, 78, 125), "black": (26, 26, 30), "khaki": (190, 170, 120), "grey": (112, 112, 118),
    "brown": (100, 68, 40), "olive": (88, 98, 45), "beige": (215, 200, 170), "dark red": (105, 28, 32),
    "white": (225, 225, 220), "navy": (30, 36, 75),
}
SHOE_COLOURS = {"black": (25, 25, 25), "white": (232, 232, 232), "brown": (95, 60, 35), "red": (170, 30, 30)}
PATTERNS = ("solid", "horizontal stripes", "vertical stripes", "checks", "diagonal stripes", "colour block")
HAIR_STYLES = ("short", "long")

Colour = tuple[int, int, int]


def _bgr(rgb: tuple[int, int, int]) -> Colour:
    return (int(rgb[2]), int(rgb[1]), int(rgb[0]))


@dataclass(frozen=True)
class Appearance:
    """How one identity looks; fixed for the whole video (and every shot)."""

    skin: str
    hair: str
    hair_style: str
    shirt: str
    shirt_secondary: str
    pattern: str
    sleeves: str  # "long" or "short"
    trousers: str
    shoes: str
    height: float  # body height relative to the scene's perspective scale
    build: float  # width factor
    speed: float  # walking speed factor

    def describe(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["height"], d["build"], d["speed"] = round(self.height, 3), round(self.build, 3), round(self.speed, 3)
        return d


def _colour_distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=float)))


def _appearances(n: int, rng: np.random.Generator) -> list[Appearance]:
    """Distinct looks: shirt colours, patterns and trousers are drawn without replacement (cycled beyond)."""
    shirts = list(rng.permutation(list(SHIRT_COLOURS)))
    patterns = list(rng.permutation(list(PATTERNS)))
    trousers = list(rng.permutation(list(TROUSER_COLOURS)))
    hairs = list(rng.permutation(list(HAIR_COLOURS)))
    skins = list(rng.permutation(list(SKIN_TONES)))
    # Heights and builds spread evenly, then shuffled: two people never share both.
    heights = rng.permutation(np.linspace(0.9, 1.1, max(n, 1)))
    builds = rng.permutation(np.linspace(0.95, 1.25, max(n, 1)))
    out = []
    for i in range(n):
        shirt = str(shirts[i % len(shirts)])
        # The pattern's second colour must contrast with the first, or stripes vanish.
        second = sorted(SHIRT_COLOURS, key=lambda c: -_colour_distance(SHIRT_COLOURS[c], SHIRT_COLOURS[shirt]))[:4]
        trouser = str(trousers[i % len(trousers)])
        out.append(
            Appearance(
                skin=str(skins[i % len(skins)]),
                hair=str(hairs[i % len(hairs)]),
                hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
                shirt=shirt,
                shirt_secondary=str(second[int(rng.integers(len(second)))]),
                pattern=str(patterns[(i + i // len(patterns)) % len(patterns)]),
                sleeves="long" if rng.random() < 0.5 else "short",
                trousers=trouser,
                shoes=str(list(SHOE_COLOURS)[int(rng.integers(len(SHOE_COLOURS)))]),
                height=float(heights[i] + rng.uniform(-0.01, 0.01)),
                build=float(builds[i] + rng.uniform(-0.01, 0.01)),
                speed=float(rng.uniform(0.85, 1.15)),
            )
        )
    return out


# --------------------------------------------------------------------------------------- figure drawing

_SHIFT = 4  # cv2 sub-pixel bits: figures move smoothly instead of snapping to whole pixels
_ONE = 1 << _SHIFT


def _fix(p: tuple[float, float]) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


def _scale(c: Colour, f: float) -> Colour:
    return tuple(int(min(255, round(v * f))) for v in c)  # type: ignore[return-value]


class _Layer:
    """A figure's patch: premultiplied colour plus anti-aliased alpha, drawn in body units.

    Body units: height 1; u forward along the walking direction, v downward with 0 at the ground (head near -1).
    Drawing colour onto black with anti-aliasing *is* premultiplied "over", so compositing is out = bg*(1-a) + c.
    """

    def __init__(self, size: tuple[int, int], anchor: tuple[float, float], scale: float, facing: int):
        h, w = size
        self.colour = np.zeros((h, w, 3), np.uint8)
        self.alpha = np.zeros((h, w), np.uint8)
        self.anchor, self.s, self.facing = anchor, scale, facing

    def px(self, u: float, v: float) -> tuple[float, float]:
        return self.anchor[0] + self.facing * u * self.s, self.anchor[1] + v * self.s

    def _paint(self, draw, paint: Colour | np.ndarray) -> None:
        draw(self.alpha, 255)
        if isinstance(paint, tuple):
            draw(self.colour, paint)
            return
        # A pattern image: blend it in through the part's own anti-aliased coverage.
        cover = np.zeros_like(self.alpha)
        draw(cover, 255)
        ys, xs = np.nonzero(cover)
        if len(ys) == 0:
            return
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        m = cover[y0:y1, x0:x1, None].astype(np.float32) / 255.0
        region = self.colour[y0:y1, x0:x1].astype(np.float32)
        self.colour[y0:y1, x0:x1] = (region * (1 - m) + paint[y0:y1, x0:x1] * m + 0.5).astype(np.uint8)

    def polygon(self, pts: list[tuple[float, float]], paint: Colour | np.ndarray) -> None:
        arr = np.array([_fix(self.px(u, v)) for u, v in pts], np.int32)
        self._paint(lambda img, c: cv2.fillPoly(img, [arr], c, cv2.LINE_AA, _SHIFT), paint)

    def ellipse(self, c: tuple[float, float], axes: tuple[float, float], paint: Colour | np.ndarray, angle: float = 0.0) -> None:
        centre = _fix(self.px(*c))
        ax = (max(1, int(round(axes[0] * self.s * _ONE))), max(1, int(round(axes[1] * self.s * _ONE))))
        ang = angle * self.facing
        self._paint(lambda img, col: cv2.ellipse(img, centre, ax, ang, 0, 360, col, -1, cv2.LINE_AA, _SHIFT), paint)

    def capsule(self, a: tuple[float, float], ra: float, b: tuple[float, float], rb: float, paint: Colour | np.ndarray) -> None:
        """A tapered limb: two discs joined by their outer tangents (approximated by the perpendiculars)."""
        (ua, va), (ub, vb) = a, b
        du, dv = ub - ua, vb - va
        n = math.hypot(du, dv) or 1e-6
        pu, pv = -dv / n, du / n
        quad = [(ua + pu * ra, va + pv * ra), (ub + pu * rb, vb + pv * rb), (ub - pu * rb, vb - pv * rb), (ua - pu * ra, va - pv * ra)]
        qa = np.array([_fix(self.px(u, v)) for u, v in quad], np.int32)
        ca, cb = _fix(self.px(ua, va)), _fix(self.px(ub, vb))
        ra_px, rb_px = max(1, int(round(ra * self.s * _ONE))), max(1, int(round(rb * self.s * _ONE)))

        def draw(img: np.ndarray, col) -> None:
            cv2.fillConvexPoly(img, qa, col, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, ca, ra_px, col, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, cb, rb_px, col, -1, cv2.LINE_AA, _SHIFT)

        self._paint(draw, paint)


def _limb(joint: tuple[float, float], angle_deg: float, length: float) -> tuple[float, float]:
    """End of a limb hanging from ``joint`` at ``angle_deg`` from the vertical (positive: forward)."""
    a = math.radians(angle_deg)
    return joint[0] + length * math.sin(a), joint[1] + length * math.cos(a)


def _pattern_image(app: Appearance, layer: _Layer, top: float, bottom: float) -> Colour | np.ndarray:
    """The shirt fabric over the patch, in body units so stripes scale with the person."""
    primary, secondary = _bgr(SHIRT_COLOURS[app.shirt]), _bgr(SHIRT_COLOURS[app.shirt_secondary])
    if app.pattern == "solid":
        return primary
    h, w = layer.alpha.shape
    ax, ay = layer.anchor
    # Only the torso's band is filled: the fabric is read nowhere else.
    r0, r1 = max(0, int(ay + (top - 0.03) * layer.s)), min(h, int(ay + (bottom + 0.03) * layer.s) + 1)
    c0, c1 = max(0, int(ax - 0.14 * layer.s)), min(w, int(ax + 0.14 * layer.s) + 1)
    u = ((np.arange(c0, c1, dtype=np.float32) - ax) * layer.facing / layer.s)[None, :]
    v = ((np.arange(r0, r1, dtype=np.float32) - ay) / layer.s)[:, None]
    if app.pattern == "horizontal stripes":
        sel = (np.floor(v / 0.045) % 2 == 0) & np.ones_like(u, bool)
    elif app.pattern == "vertical stripes":
        sel = (np.floor(u / 0.035) % 2 == 0) & np.ones_like(v, bool)
    elif app.pattern == "checks":
        sel = (np.floor(u / 0.05) + np.floor(v / 0.05)) % 2 == 0
    elif app.pattern == "diagonal stripes":
        sel = np.floor((u + v) / 0.04) % 2 == 0
    else:  # colour block: contrasting chest panel over the upper third of the torso
        sel = (v > top + (bottom - top) * 0.4) & np.ones_like(u, bool)
    img = np.zeros((h, w, 3), np.uint8)
    band = img[r0:r1, c0:c1]
    band[:] = secondary
    band[sel] = primary
    return img


# Body proportions in body units (height 1), side view of a walker.
_LEG_SWING, _KNEE_FLEX, _ARM_SWING = 26.0, 38.0, 24.0
_THIGH, _SHIN, _SOLE = 0.245, 0.235, 0.025
_UPPER_ARM, _FOREARM = 0.165, 0.15
_HALF_W = 0.42  # half patch width in body units: stride plus shoes
_TOP, _BOTTOM = 1.06, 0.04  # patch extent above / below the ground point


def _draw_person(app: Appearance, height_px: float, facing: int, phase: float, anchor_frac: tuple[float, float]) -> _Layer:
    """One walking figure on its own patch. ``anchor_frac`` is the sub-pixel part of the ground point."""
    s = height_px
    size = (int(math.ceil((_TOP + _BOTTOM) * s)) + 3, int(math.ceil(2 * _HALF_W * s)) + 3)
    anchor = (math.floor(_HALF_W * s) + 1 + anchor_frac[0], math.floor(_TOP * s) + 1 + anchor_frac[1])
    L = _Layer(size, anchor, s, facing)
    wf = app.build
    skin, hair = _bgr(SKIN_TONES[app.skin]), _bgr(HAIR_COLOURS[app.hair])
    trousers, shoes = _bgr(TROUSER_COLOURS[app.trousers]), _bgr(SHOE_COLOURS[app.shoes])
    shirt = _bgr(SHIRT_COLOURS[app.shirt])

    # Legs: opposite swing, the leg swinging forward bends its knee; the hip rides on the longer (stance) leg.
    sin_p, cos_p = math.sin(phase), math.cos(phase)
    legs = []
    for sign, flex in ((1, max(0.0, cos_p)), (-1, max(0.0, -cos_p))):
        thigh = sign * _LEG_SWING * sin_p
        shin = thigh - _KNEE_FLEX * flex
        legs.append((thigh, shin))
    reach = max(_THIGH * math.cos(math.radians(t)) + _SHIN * math.cos(math.radians(sh)) for t, sh in legs)
    hip_v = -(reach + _SOLE)
    dv = hip_v + 0.5  # vertical bob of the whole upper body
    top, bottom = -0.83 + dv, -0.53 + dv
    fabric = _pattern_image(app, L, top, bottom)

    def leg(thigh: float, shin: float, shade: float) -> None:
        hip = (0.0, hip_v)
        knee = _limb(hip, thigh, _THIGH)
        ankle = _limb(knee, shin, _SHIN)
        L.capsule(hip, 0.045 * wf, knee, 0.036 * wf, _scale(trousers, shade))
        L.capsule(knee, 0.036 * wf, ankle, 0.029 * wf, _scale(trousers, shade))
        L.ellipse((ankle[0] + 0.03, ankle[1] + 0.006), (0.058, 0.024), _scale(shoes, shade), angle=-(shin * 0.3))

    def arm(swing: float, shade: float) -> None:
        shoulder = (0.0, -0.79 + dv)
        elbow = _limb(shoulder, swing, _UPPER_ARM)
        wrist = _limb(elbow, swing + 18 + 12 * max(0.0, math.sin(math.radians(swing))), _FOREARM)
        sleeve = _scale(shirt, shade)
        outline = _scale(shirt, 0.55 * shade)
        # A darker rim keeps the near arm readable against a torso of the same colour.
        L.capsule(shoulder, 0.036 * wf, elbow, 0.031 * wf, outline)
        L.capsule(shoulder, 0.031 * wf, elbow, 0.026 * wf, sleeve)
        fore = sleeve if app.sleeves == "long" else _scale(skin, shade)
        L.capsule(elbow, 0.025 * wf, wrist, 0.021 * wf, fore)
        L.ellipse(_limb(wrist, swing + 20, 0.02), (0.022, 0.027), _scale(skin, shade))

    # Back to front: far arm, far leg, near leg, torso, head, near arm (far side a little darker).
    arm(_ARM_SWING * sin_p, 0.72)
    leg(*legs[1], 0.72)
    leg(*legs[0], 1.0)
    L.polygon([(-0.075 * wf, -0.555 + dv), (0.07 * wf, -0.555 + dv), (0.075 * wf, hip_v + 0.03), (-0.078 * wf, hip_v + 0.03)], trousers)
    torso = [
        (0.0, -0.838), (0.055, -0.828), (0.08, -0.79), (0.085, -0.72), (0.07, -0.63), (0.074, -0.53),
        (-0.076, -0.53), (-0.07, -0.63), (-0.078, -0.74), (-0.07, -0.81), (-0.04, -0.832),
    ]
    L.polygon([(u * wf, v + dv) for u, v in torso], fabric)
    L.capsule((0.008, -0.875 + dv), 0.024, (0.0, -0.83 + dv), 0.026, skin)  # neck
    head = (0.012, -0.925 + dv)
    if app.hair_style == "long":  # hair falling to the shoulders at the back
        L.polygon([(-0.055, -0.93 + dv), (0.0, -0.95 + dv), (-0.01, -0.82 + dv), (-0.07, -0.8 + dv)], hair)
    L.ellipse(head, (0.054, 0.066), skin)
    L.ellipse((head[0] - 0.012, head[1] - 0.014), (0.056, 0.058), hair)  # hair over top and back of the head
    L.ellipse((head[0] + 0.018, head[1] + 0.014), (0.04, 0.05), skin)  # face in front of the hairline
    L.ellipse((head[0] + 0.055, head[1] + 0.012), (0.012, 0.016), skin)  # nose
    L.ellipse((head[0] + 0.032, head[1] - 0.004), (0.006, 0.006), (30, 30, 30))  # eye
    arm(-_ARM_SWING * sin_p, 1.0)

    _shade(L)
    return L


def _shade(L: _Layer) -> None:
    """Cylinder-like side shading and a soft top light: flat cut-outs read as less human to detectors."""
    h, w = L.alpha.shape
    u = (np.arange(w, dtype=np.float32) - L.anchor[0]) / L.s
    v = (np.arange(h, dtype=np.float32) - L.anchor[1]) / L.s
    across = np.clip(1.08 - 0.35 * (u / 0.09) ** 2, 0.62, 1.08)
    down = np.clip(1.06 + 0.12 * v, 0.92, 1.06)  # v in [-1, 0]: top slightly brighter
    f = down[:, None] * across[None, :]
    L.colour = np.clip(L.colour * f[..., None], 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------ scene

@dataclass(frozen=True)
class Occluder:
    kind: str  # "pillar" or "counter"
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive), always in front of every person


@dataclass
class _Camera:
    background: np.ndarray  # BGR
    overlay: np.ndarray  # the background with occluders drawn: copied over people inside occluder boxes
    occluders: list[Occluder]
    mask: np.ndarray  # (H, W) bool, occluder pixels


def _horizon(h: int) -> float:
    """Vanishing line: people's height is proportional to the distance of their feet from it."""
    return 0.305 * h


def _person_height(foot_y: float, h: int, app: Appearance) -> float:
    return 0.784 * (foot_y - _horizon(h)) * app.height


def _lane_range(h: int) -> tuple[float, float]:
    return 0.69 * h, 0.975 * h


def _hsv_bgr(hue: float, sat: float, val: float) -> Colour:
    px = np.uint8([[[int(hue) % 180, int(sat), int(val)]]])
    return tuple(int(c) for c in cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0])  # type: ignore[return-value]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, amp: float) -> np.ndarray:
    small = rng.normal(0, 1, (max(2, h * cells // w), cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * amp


def _make_camera(spec: SyntheticSpec, cam: int) -> _Camera:
    rng = np.random.default_rng([spec.seed, 1, cam])
    h, w = spec.height, spec.width
    img = np.zeros((h, w, 3), np.float32)
    wall_y = int(rng.uniform(0.42, 0.52) * h)
    base_hue = rng.uniform(0, 180)
    hue = base_hue + cam * 60  # cameras differ in wall and floor colours, so a cut changes the whole frame
    wall = np.array(_hsv_bgr(hue, rng.uniform(40, 110), rng.uniform(150, 215)), np.float32)
    floor = np.array(_hsv_bgr(hue + 90, rng.uniform(25, 80), rng.uniform(80, 150)), np.float32)
    grad = np.linspace(0.85, 1.05, wall_y, dtype=np.float32)[:, None, None]
    img[:wall_y] = wall * grad
    img[wall_y:] = floor * np.linspace(0.9, 1.1, h - wall_y, dtype=np.float32)[:, None, None]
    canvas = np.clip(img, 0, 255).astype(np.uint8)
    _wall_structures(canvas, rng, wall_y, wall)
    _floor_tiles(canvas, rng, wall_y, floor)
    cv2.rectangle(canvas, (0, wall_y - int(0.015 * h)), (w, wall_y), _scale(tuple(int(c) for c in wall), 0.45), -1)
    noisy = canvas.astype(np.float32) + _smooth_noise(rng, h, w, 24, 6.0)[..., None]
    noisy += rng.normal(0, 2.5, (h, w, 3)).astype(np.float32)
    background = np.clip(noisy, 0, 255).astype(np.uint8)
    occluders = _occluders(rng, spec) if spec.occluders else []
    overlay, mask = background.copy(), np.zeros((h, w), bool)
    for occ in occluders:
        _draw_occluder(overlay, occ, rng)
        x1, y1, x2, y2 = occ.box
        mask[y1:y2, x1:x2] = True
    return _Camera(background, overlay, occluders, mask)


def _wall_structures(img: np.ndarray, rng: np.random.Generator, wall_y: int, wall: np.ndarray) -> None:
    h, w = img.shape[:2]
    x = int(rng.uniform(0, 0.08) * w)
    while x < w:  # windows, doors and notice boards along the wall
        kind = rng.choice(["window", "door", "board", "gap"], p=[0.35, 0.2, 0.25, 0.2])
        ww = int(rng.uniform(0.08, 0.16) * w)
        if kind == "window":
            y1, y2 = int(rng.uniform(0.06, 0.12) * h), int(wall_y - rng.uniform(0.1, 0.16) * h)
            glass = _hsv_bgr(100 + rng.uniform(-10, 10), rng.uniform(30, 80), rng.uniform(190, 240))
            cv2.rectangle(img, (x, y1), (x + ww, y2), (70, 70, 75), -1)
            cv2.rectangle(img, (x + 3, y1 + 3), (x + ww - 3, y2 - 3), glass, -1)
            cv2.line(img, (x + ww // 2, y1), (x + ww // 2, y2), (70, 70, 75), 2, cv2.LINE_AA)
            cv2.line(img, (x, (y1 + y2) // 2), (x + ww, (y1 + y2) // 2), (70, 70, 75), 2, cv2.LINE_AA)
        elif kind == "door":
            y1 = int(rng.uniform(0.12, 0.18) * h)
            dc = _scale(tuple(int(c) for c in wall), rng.uniform(0.45, 0.7))
            cv2.rectangle(img, (x, y1), (x + int(ww * 0.8), wall_y), dc, -1)
            cv2.rectangle(img, (x, y1), (x + int(ww * 0.8), wall_y), _scale(dc, 0.6), 2, cv2.LINE_AA)
            cv2.circle(img, (x + int(ww * 0.65), (y1 + wall_y) // 2), 3, (40, 160, 200), -1, cv2.LINE_AA)
        elif kind == "board":
            y1, y2 = int(rng.uniform(0.12, 0.2) * h), int(rng.uniform(0.28, 0.36) * h)
            cv2.rectangle(img, (x, y1), (x + ww, y2), _hsv_bgr(rng.uniform(0, 180), 150, 200), -1)
            for k in range(3):  # "text" lines
                yy = y1 + (k + 1) * (y2 - y1) // 4
                cv2.line(img, (x + 5, yy), (x + ww - 5 - int(rng.uniform(0, ww / 3)), yy), (40, 40, 40), 2, cv2.LINE_AA)
        x += ww + int(rng.uniform(0.03, 0.12) * w)


def _floor_tiles(img: np.ndarray, rng: np.random.Generator, wall_y: int, floor: np.ndarray) -> None:
    h, w = img.shape[:2]
    vx, vy = w * rng.uniform(0.35, 0.65), _horizon(h)
    line = _scale(tuple(int(c) for c in floor), 0.7)
    for k in range(-12, 13):  # tile seams converge to the vanishing point
        xb = w / 2 + k * w * 0.12
        t = (wall_y - vy) / (h - vy)
        xt = vx + (xb - vx) * t
        cv2.line(img, _fix((xt, wall_y)), _fix((xb, h)), line, 1, cv2.LINE_AA, _SHIFT)
    inv = np.linspace(1 / (wall_y - vy), 1 / (h - vy), 9)
    for d in inv[1:]:  # cross seams evenly spaced in depth
        y = vy + 1 / d
        cv2.line(img, _fix((0, y)), _fix((w, y)), line, 1, cv2.LINE_AA, _SHIFT)


def _occluders(rng: np.random.Generator, spec: SyntheticSpec) -> list[Occluder]:
    """One pillar and one counter, in different thirds of the frame."""
    w, h = spec.width, spec.height
    thirds = rng.permutation(3)
    pw = int(rng.uniform(0.045, 0.07) * w)
    px = int((thirds[0] + rng.uniform(0.2, 0.8)) * w / 3 - pw / 2)
    cw = int(rng.uniform(0.17, 0.24) * w)
    cx = int((thirds[1] + 0.5) * w / 3 - cw / 2 + rng.uniform(-0.04, 0.04) * w)
    cy = int(rng.uniform(0.8, 0.86) * h)
    return [
        Occluder("pillar", (max(0, px), 0, min(w, px + pw), h)),
        Occluder("counter", (max(0, cx), cy, min(w, cx + cw), h)),
    ]


def _draw_occluder(img: np.ndarray, occ: Occluder, rng: np.random.Generator) -> None:
    x1, y1, x2, y2 = occ.box
    hue = rng.uniform(0, 180)
    if occ.kind == "pillar":  # concrete cylinder: brightness falls off to both edges
        base = np.array(_hsv_bgr(hue, rng.uniform(10, 40), rng.uniform(150, 200)), np.float32)
        t = np.linspace(-1, 1, x2 - x1, dtype=np.float32)
        prof = (1.05 - 0.45 * t**2)[None, :, None]
        img[y1:y2, x1:x2] = np.clip(base * prof + rng.normal(0, 3, (y2 - y1, x2 - x1, 3)), 0, 255).astype(np.uint8)
        for yy in range(y1 + 20, y2, 60):
            cv2.line(img, (x1, yy), (x2 - 1, yy), _scale(tuple(int(c) for c in base), 0.6), 1, cv2.LINE_AA)
    else:  # counter: light top surface, darker panelled front
        base = _hsv_bgr(hue, rng.uniform(60, 140), rng.uniform(90, 160))
        top = min(y2, y1 + max(4, (y2 - y1) // 6))
        cv2.rectangle(img, (x1, y1), (x2 - 1, top), _scale(base, 1.5), -1)
        cv2.rectangle(img, (x1, top), (x2 - 1, y2 - 1), base, -1)
        for xx in range(x1 + (x2 - x1) // 4, x2 - 4, (x2 - x1) // 4):
            cv2.line(img, (xx, top + 4), (xx, y2), _scale(base, 0.7), 2, cv2.LINE_AA)
        cv2.line(img, (x1, top), (x2 - 1, top), _scale(base, 0.5), 1, cv2.LINE_AA)


# --------------------------------------------------------------------------------------- motion

@dataclass
class _Walker:
    active: bool = False
    x: float = 0.0  # ground point, frame pixels
    foot_y: float = 0.0
    facing: int = 1
    phase: float = 0.0
    wait: int = 0  # frames until re-entry while inactive


def _shots(spec: SyntheticSpec) -> list[tuple[int, int, int]]:
    """(start, end exclusive, camera) per shot; consecutive shots always use different cameras."""
    if spec.cut_every_s is None:
        return [(0, spec.n_frames, 0)]
    # Cut k at round(k * period * fps): no drift when the period is not a whole number of frames.
    starts, k = [0], 1
    while (s := int(round(k * spec.cut_every_s * spec.fps))) < spec.n_frames:
        if s > starts[-1]:
            starts.append(s)
        k += 1
    ends = starts[1:] + [spec.n_frames]
    return [(s, e, k % 3) for k, (s, e) in enumerate(zip(starts, ends))]


def _pick_lane(rng: np.random.Generator, spec: SyntheticSpec, walkers: list[_Walker]) -> float:
    """A depth for the feet, kept apart from the others so people are not glued together for a whole pass."""
    lo, hi = _lane_range(spec.height)
    taken = [o.foot_y for o in walkers if o.active]
    y = float(rng.uniform(lo, hi))
    for _ in range(8):
        if all(abs(y - t) > 0.035 * spec.height for t in taken):
            break
        y = float(rng.uniform(lo, hi))
    return y


def _start_shot(rng: np.random.Generator, spec: SyntheticSpec, walkers: list[_Walker], first: bool) -> None:
    """At a cut everyone jumps: most are somewhere in view, a few are off camera for a while."""
    p_in = 1.0 if not spec.exits_and_reentries else (0.85 if first else 0.7)
    for wk in walkers:
        wk.active = False
    for wk in walkers:
        if rng.random() < p_in:
            wk.foot_y = _pick_lane(rng, spec, walkers)
            wk.x = float(rng.uniform(0.1, 0.9) * spec.width)
            wk.facing = 1 if rng.random() < 0.5 else -1
            wk.phase = float(rng.uniform(0, 2 * math.pi))
            wk.active = True
        else:
            wk.wait = int(rng.integers(0, int(3 * spec.fps) + 1))


def _step(rng: np.random.Generator, spec: SyntheticSpec, walkers: list[_Walker], apps: list[Appearance]) -> None:
    w = spec.width
    for wk, app in zip(walkers, apps):
        if not wk.active:
            if wk.wait > 0:
                wk.wait -= 1
                continue
            wk.facing = 1 if rng.random() < 0.5 else -1  # enter from either side, fully outside first
            wk.foot_y = _pick_lane(rng, spec, walkers)
            half = _HALF_W * _person_height(wk.foot_y, spec.height, app)
            wk.x = -half if wk.facing > 0 else w + half
            wk.active = True
            continue
        hpx = _person_height(wk.foot_y, spec.height, app)
        v = 0.75 * hpx * app.speed / spec.fps  # about 1.3 m/s for a 1.75 m person
        wk.x += wk.facing * v
        wk.phase = (wk.phase + 2 * math.pi * v / (0.85 * hpx)) % (2 * math.pi)
        half = _HALF_W * hpx
        if spec.exits_and_reentries:
            if wk.x - half > w or wk.x + half < 0:  # completely out of view: come back later
                wk.active = False
                wk.wait = int(rng.integers(int(0.5 * spec.fps), int(3 * spec.fps) + 1))
        elif (wk.facing > 0 and wk.x > w - 0.3 * hpx) or (wk.facing < 0 and wk.x < 0.3 * hpx):
            wk.facing = -wk.facing  # stay in view: turn round at the edges


# --------------------------------------------------------------------------------------- rendering

@dataclass(frozen=True)
class GtRow:
    """Ground truth of one identity on one frame (only when some of it is visible)."""

    frame: int  # 0-based
    id: int  # 1-based identity
    visible_box: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive) of the visible mask
    full_box: tuple[int, int, int, int]  # amodal box of the whole figure, may reach outside the frame
    visibility: float  # visible pixels / full-figure pixels (off-frame pixels count as hidden)
    rle: dict


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys = np.flatnonzero(mask.any(1))
    xs = np.flatnonzero(mask.any(0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _overlap(frame_shape: tuple[int, int], patch_shape: tuple[int, int], x0: int, y0: int) -> tuple | None:
    """Frame and patch slices where a patch placed at (x0, y0) overlaps the frame; None when it does not."""
    h, w = frame_shape
    ph, pw = patch_shape
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + pw), min(h, y0 + ph)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    return (slice(fy0, fy1), slice(fx0, fx1)), (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))


def _composite(frame: np.ndarray, layer: _Layer, x0: int, y0: int) -> None:
    """Paste a premultiplied patch at (x0, y0): out = frame * (1 - alpha) + colour."""
    ov = _overlap(frame.shape[:2], layer.alpha.shape, x0, y0)
    if ov is None:
        return
    fs, ps = ov
    a = layer.alpha[ps][..., None].astype(np.float32) / 255.0
    out = frame[fs].astype(np.float32) * (1 - a) + layer.colour[ps]
    frame[fs] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _shadow(frame: np.ndarray, x: float, foot_y: float, hpx: float) -> None:
    """A soft contact shadow: part of the scene, not of the person's mask."""
    h, w = frame.shape[:2]
    rx, ry = 0.2 * hpx, 0.03 * hpx
    x0, x1 = int(max(0, x - rx - 2)), int(min(w, x + rx + 3))
    y0, y1 = int(max(0, foot_y - ry - 2)), int(min(h, foot_y + ry + 3))
    if x0 >= x1 or y0 >= y1:
        return
    sm = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.ellipse(sm, _fix((x - x0, foot_y - y0)), (int(rx * _ONE), max(1, int(ry * _ONE))), 0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
    f = 1 - 0.35 * sm[..., None].astype(np.float32) / 255.0
    frame[y0:y1, x0:x1] = (frame[y0:y1, x0:x1] * f).astype(np.uint8)


class RenderedFrame(NamedTuple):
    image: np.ndarray  # BGR uint8
    rows: list[GtRow]  # identities with some part visible, by id
    in_frame: tuple[int, ...]  # identities with some part inside the frame, hidden or not


def _render_frame(
    spec: SyntheticSpec, cam: _Camera, walkers: list[_Walker], apps: list[Appearance], frame_idx: int, noise: np.ndarray
) -> RenderedFrame:
    h, w = spec.height, spec.width
    frame = cam.background.copy()
    # Far to near (feet higher up the frame are further away); ties broken by id for determinism.
    order = sorted((i for i, wk in enumerate(walkers) if wk.active), key=lambda i: (walkers[i].foot_y, i))
    placed = []
    for i in order:
        wk, app = walkers[i], apps[i]
        hpx = _person_height(wk.foot_y, h, app)
        _shadow(frame, wk.x, wk.foot_y, hpx)
        ax, ay = math.floor(_HALF_W * hpx) + 1, math.floor(_TOP * hpx) + 1
        x0, y0 = math.floor(wk.x) - ax, math.floor(wk.foot_y) - ay
        layer = _draw_person(app, hpx, wk.facing, wk.phase, (wk.x - math.floor(wk.x), wk.foot_y - math.floor(wk.foot_y)))
        _composite(frame, layer, x0, y0)
        placed.append((i, layer, x0, y0))
    for occ in cam.occluders:  # occluders stand in front of everyone
        x1, y1, x2, y2 = occ.box
        frame[y1:y2, x1:x2] = cam.overlay[y1:y2, x1:x2]
    # Sensor noise: a few fixed noise frames cycled, cheap and deterministic.
    k = frame_idx % len(noise)
    frame = cv2.subtract(cv2.add(frame, noise[k, 0]), noise[k, 1])
    rows, in_frame = _ground_truth(frame_idx, cam, placed, (h, w))
    return RenderedFrame(frame, rows, in_frame)


def _ground_truth(frame_idx: int, cam: _Camera, placed: list, shape: tuple[int, int]) -> tuple[list[GtRow], tuple[int, ...]]:
    """Visible masks front to back: a pixel belongs to the nearest person unless an occluder covers it."""
    h, w = shape
    covered = cam.mask.copy()
    rows, in_frame = [], []
    for i, layer, x0, y0 in reversed(placed):
        full_patch = layer.alpha >= 128
        total = int(full_patch.sum())
        if total == 0:
            continue
        px0, py0, px1, py1 = _mask_box(full_patch)
        full_box = (x0 + px0, y0 + py0, x0 + px1, y0 + py1)
        full = np.zeros((h, w), bool)
        ov = _overlap((h, w), full_patch.shape, x0, y0)
        if ov is not None:
            full[ov[0]] = full_patch[ov[1]]
        if full.any():
            in_frame.append(i + 1)
        visible = full & ~covered
        covered |= full
        n_vis = int(visible.sum())
        if n_vis == 0:
            continue
        vis = max(round(n_vis / total, 4), 1e-4)  # a sliver that rounds to 0 is still visible: keep its row > 0
        rows.append(GtRow(frame_idx, i + 1, _mask_box(visible), full_box, vis, mask_to_rle(visible)))
    return sorted(rows, key=lambda r: r.id), tuple(sorted(in_frame))


def _noise_frames(spec: SyntheticSpec, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng([spec.seed, 3])
    z = np.rint(rng.standard_normal((n, spec.height, spec.width, 3), np.float32) * 1.6)
    return np.stack([np.clip(z, 0, 255), np.clip(-z, 0, 255)], 1).astype(np.uint8)


def render(spec: SyntheticSpec) -> Iterator[RenderedFrame]:
    """Frames (BGR uint8) with their ground truth, in order. A pure function of ``spec``."""
    apps = appearances(spec)
    walkers = [_Walker() for _ in apps]
    rng = np.random.default_rng([spec.seed, 2])
    cams: dict[int, _Camera] = {}
    noise = _noise_frames(spec)
    for start, end, cam_id in _shots(spec):
        if cam_id not in cams:
            cams[cam_id] = _make_camera(spec, cam_id)
        _start_shot(rng, spec, walkers, first=start == 0)
        for f in range(start, end):
            if f > start:
                _step(rng, spec, walkers, apps)
            yield _render_frame(spec, cams[cam_id], walkers, apps, f, noise)


class ApproxBox(NamedTuple):
    """One identity inside the frame, from ``ground_truth_only``: no pixel drawn, so boxes are approximate."""

    frame: int  # 0-based
    id: int  # 1-based identity, as in ``render``
    full_box: tuple[float, float, float, float]  # amodal x1, y1, x2, y2 from the walker's geometry
    in_frame_share: float  # share of the amodal box's area inside the frame
    depth: float  # foot y in pixels: a larger value stands nearer the camera


# The drawn figure's amodal box in body units (height 1), fitted on ``render``'s full boxes against the stride
# |sin(phase)|: back of the figure, front, top (u forward, v down from the ground point); refit when ``render``
# changes (the fit's error: README, Measured).
_BOX_BACK, _BOX_FRONT, _BOX_TOP, _BOX_BOTTOM = (0.16, 0.10), (0.08, 0.196), (-1.011, 0.045), 0.015


def _approx_box(spec: SyntheticSpec, wk: "_Walker", app: Appearance) -> tuple[float, float, float, float]:
    hpx = _person_height(wk.foot_y, spec.height, app)
    stride = abs(math.sin(wk.phase))
    back, front = _BOX_BACK[0] + _BOX_BACK[1] * stride, _BOX_FRONT[0] + _BOX_FRONT[1] * stride
    u1, u2 = (-back, front) if wk.facing > 0 else (-front, back)
    top = _BOX_TOP[0] + _BOX_TOP[1] * stride
    return wk.x + u1 * hpx, wk.foot_y + top * hpx, wk.x + u2 * hpx, wk.foot_y + _BOX_BOTTOM * hpx


def ground_truth_only(spec: SyntheticSpec) -> Iterator[list[ApproxBox]]:
    """Per frame, in order, the identities whose figure reaches into the frame, without rendering: the same
    walkers, steps and random draws as ``render`` (identities, entries, exits and positions are exact), boxes
    from the walker's geometry (within a few percent of the drawn figure's). Occluders and people in front are
    not subtracted: use ``render`` for visible masks. Microseconds per frame, for benchmarks at scale."""
    apps = appearances(spec)
    walkers = [_Walker() for _ in apps]
    rng = np.random.default_rng([spec.seed, 2])
    w, h = spec.width, spec.height
    for start, end, _ in _shots(spec):
        _start_shot(rng, spec, walkers, first=start == 0)
        for f in range(start, end):
            if f > start:
                _step(rng, spec, walkers, apps)
            rows = []
            for i, (wk, app) in enumerate(zip(walkers, apps)):
                if not wk.active:
                    continue
                x1, y1, x2, y2 = _approx_box(spec, wk, app)
                inside = max(0.0, min(x2, w) - max(x1, 0.0)) * max(0.0, min(y2, h) - max(y1, 0.0))
                if inside > 0:
                    rows.append(ApproxBox(f, i + 1, (x1, y1, x2, y2), inside / ((x2 - x1) * (y2 - y1)), wk.foot_y))
            yield rows


def appearances(spec: SyntheticSpec) -> list[Appearance]:
    return _appearances(spec.n_people, np.random.default_rng([spec.seed, 0]))


def occluders(spec: SyntheticSpec) -> dict[int, list[Occluder]]:
    """Occluders per camera used in the video."""
    cams = sorted({c for _, _, c in _shots(spec)})
    return {c: _make_camera(spec, c).occluders for c in cams}


# ---------------------------------------------------------------------------------- ground truth I/O

class _LazyFrames(Mapping):
    """frame index -> Instances, decoding RLE masks on access (a whole video of full-frame masks would not fit)."""

    def __init__(self, rows: dict[int, list[GtRow]], n_frames: int, shape: tuple[int, int], cache: int = 16):
        self._rows, self._n, self._shape = rows, n_frames, shape
        self._cache: OrderedDict[int, Instances] = OrderedDict()
        self._cache_size = cache

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._n))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, (int, np.integer)) and 0 <= int(key) < self._n

    def __getitem__(self, key: int) -> Instances:
        if key not in self:
            raise KeyError(key)
        key = int(key)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        inst = _to_instances(self._rows.get(key, []), self._shape)
        self._cache[key] = inst
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return inst

    def rows(self, key: int) -> list[GtRow]:
        return list(self._rows.get(int(key), []))


def _to_instances(rows: list[GtRow], shape: tuple[int, int]) -> Instances:
    n = len(rows)
    masks = np.stack([rle_to_mask(r.rle) for r in rows]) if n else np.zeros((0, *shape), bool)
    inst = Instances.from_arrays(
        [r.visible_box for r in rows], [1.0] * n, ["person"] * n, masks=masks, track_ids=[r.id for r in rows]
    )
    extra = {
        "full_boxes": np.asarray([r.full_box for r in rows], np.float32).reshape(-1, 4),
        "visibility": np.asarray([r.visibility for r in rows], np.float32),
    }
    return replace(inst, extra=extra)


@dataclass
class GroundTruth:
    """Exact per-frame truth of a synthetic video. ``frames[i]``: visible masks and boxes, track_ids = identities;
    ``extra["full_boxes"]`` (amodal) and ``extra["visibility"]`` ride along."""

    frames: Mapping[int, Instances]
    cuts: list[int]
    fps: float
    n_frames: int
    width: int
    height: int
    meta: dict = field(default_factory=dict)

    def instances(self, frame_idx: int) -> Instances:
        return self.frames[frame_idx]

    @property
    def identities(self) -> list[int]:
        return [int(d["id"]) for d in self.meta.get("identities", [])]

    def shot_of(self, frame_idx: int) -> int:
        """Index of the shot holding ``frame_idx`` (0 before the first cut)."""
        return int(np.searchsorted(np.asarray(self.cuts), frame_idx, side="right"))


def _intervals(on: list[bool]) -> list[list[int]]:
    """[start, end) runs of True."""
    out, start = [], None
    for f, o in enumerate(on + [False]):
        if o and start is None:
            start = f
        elif not o and start is not None:
            out.append([start, f])
            start = None
    return out


def _identity_timeline(
    pid: int, rows: dict[int, list[GtRow]], in_frame: list[tuple[int, ...]], cuts: list[int], min_gap: int
) -> dict:
    """When an identity is inside the frame, visible, and where it leaves and comes back.

    Intervals are pixel-exact. ``exits`` lists only real departures: gaps of at least ``min_gap`` frames or
    across a cut, not a hand swinging back over the frame edge for a frame or two while walking out.
    """
    n = len(in_frame)
    inside = _intervals([pid in ids for ids in in_frame])
    visible = _intervals([any(r.id == pid for r in rows.get(f, [])) for f in range(n)])
    exits = []
    for k, (_, end) in enumerate(inside):
        if end >= n:
            continue
        back = inside[k + 1][0] if k + 1 < len(inside) else None
        upto = back if back is not None else n
        cut = any(end <= c <= upto for c in cuts)
        if back is None or cut or back - end >= min_gap:
            exits.append({"exit_frame": end, "reentry_frame": back, "cut_between": cut})
    return {
        "in_frame_intervals": inside,
        "out_of_frame_intervals": _gaps(inside, n),
        "visible_intervals": visible,
        "exits": exits,
    }


def _meta(spec: SyntheticSpec, rows: dict[int, list[GtRow]], in_frame: list[tuple[int, ...]]) -> dict:
    apps = appearances(spec)
    shots = _shots(spec)
    cuts = [s for s, _, _ in shots[1:]]
    min_gap = max(2, int(round(0.5 * spec.fps)))
    return {
        "spec": spec.model_dump(),
        "fps": spec.fps,
        "n_frames": spec.n_frames,
        "width": spec.width,
        "height": spec.height,
        "box_format": "gt.txt: x,y,w,h of the visible mask in 0-based pixels; masks.jsonl boxes: x1,y1,x2,y2, x2/y2 exclusive",
        "intervals": "[start, end) 0-based frames",
        "cuts": cuts,
        "shots": [{"start": s, "end": e, "camera": c} for s, e, c in shots],
        "identities": [
            {"id": pid, "appearance": app.describe(), **_identity_timeline(pid, rows, in_frame, cuts, min_gap)}
            for pid, app in enumerate(apps, start=1)
        ],
        "occluders": {str(c): [{"kind": o.kind, "box": list(o.box)} for o in v] for c, v in occluders(spec).items()},
    }


def _gaps(intervals: list[list[int]], n_frames: int) -> list[list[int]]:
    gaps, prev = [], 0
    for s, e in intervals:
        if s > prev:
            gaps.append([prev, s])
        prev = e
    if prev < n_frames:
        gaps.append([prev, n_frames])
    return gaps


def _gt_txt(rows: dict[int, list[GtRow]]) -> str:
    lines = []
    for f in sorted(rows):
        for r in rows[f]:
            x1, y1, x2, y2 = r.visible_box
            lines.append(f"{f + 1},{r.id},{x1},{y1},{x2 - x1},{y2 - y1},1,1,{r.visibility:.4f}")
    return "\n".join(lines) + ("\n" if lines else "")


def _masks_jsonl(rows: dict[int, list[GtRow]]) -> str:
    out = []
    for f in sorted(rows):
        for r in rows[f]:
            d = {"frame": f, "id": r.id, "rle": r.rle, "visible_box": list(r.visible_box),
                 "full_box": list(r.full_box), "visibility": r.visibility}
            out.append(json.dumps(d, separators=(",", ":")))
    return "\n".join(out) + ("\n" if out else "")


@dataclass
class SyntheticVideo:
    video_id: str
    spec: SyntheticSpec
    video_path: Path
    gt_dir: Path
    ground_truth: GroundTruth

    @property
    def gt_path(self) -> Path:
        return self.gt_dir / "gt.txt"

    @property
    def masks_path(self) -> Path:
        return self.gt_dir / "masks.jsonl"

    @property
    def meta_path(self) -> Path:
        return self.gt_dir / "meta.json"


def generate(spec: SyntheticSpec, out_dir: str | os.PathLike) -> SyntheticVideo:
    """Render ``spec`` to ``out_dir/<video_id>.mp4`` plus its ground truth under ``out_dir/<video_id>/gt``."""
    out = Path(out_dir)
    gt_dir = out / spec.video_id / "gt"
    gt_dir.mkdir(parents=True, exist_ok=True)
    video_path = out / f"{spec.video_id}.mp4"
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter could not open {video_path} with codec mp4v")
    rows: dict[int, list[GtRow]] = {}
    in_frame: list[tuple[int, ...]] = []
    try:
        for f, rendered in enumerate(render(spec)):
            writer.write(rendered.image)
            in_frame.append(rendered.in_frame)
            if rendered.rows:
                rows[f] = rendered.rows
    finally:
        writer.release()
    _check_video(video_path, spec.n_frames)
    meta = _meta(spec, rows, in_frame)
    (gt_dir / "gt.txt").write_text(_gt_txt(rows))
    (gt_dir / "masks.jsonl").write_text(_masks_jsonl(rows))
    (gt_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    gt = GroundTruth(_LazyFrames(rows, spec.n_frames, (spec.height, spec.width)), meta["cuts"], spec.fps,
                     spec.n_frames, spec.width, spec.height, meta)
    return SyntheticVideo(spec.video_id, spec, video_path, gt_dir, gt)


def _check_video(path: Path, n_frames: int) -> None:
    """The written file must decode to every frame, or downstream stages silently see a shorter video."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise RuntimeError(f"{path} does not re-open with cv2.VideoCapture")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if count != n_frames:
        raise RuntimeError(f"{path} reports {count} frames, wrote {n_frames}")


def load_ground_truth(path: str | os.PathLike) -> GroundTruth:
    """Ground truth from a video's directory (``out_dir/<video_id>``), its ``gt`` directory, or its mp4."""
    p = Path(path)
    if p.suffix == ".mp4":
        p = p.with_suffix("")
    gt_dir = p / "gt" if (p / "gt" / "meta.json").exists() else p
    meta = json.loads((gt_dir / "meta.json").read_text())
    rows: dict[int, list[GtRow]] = {}
    with open(gt_dir / "masks.jsonl") as fh:
        for line in fh:
            if not line.strip():
                continue
            d = json.loads(line)
            row = GtRow(int(d["frame"]), int(d["id"]), tuple(d["visible_box"]), tuple(d["full_box"]),
                        float(d["visibility"]), d["rle"])
            rows.setdefault(row.frame, []).append(row)
    shape = (int(meta["height"]), int(meta["width"]))
    return GroundTruth(_LazyFrames(rows, int(meta["n_frames"]), shape), list(meta["cuts"]), float(meta["fps"]),
                       int(meta["n_frames"]), shape[1], shape[0], meta)


def generate_corpus(out_dir: str | os.PathLike, n_videos: int = 2, seed: int = 0, **spec_overrides: Any) -> list[SyntheticVideo]:
    """Several videos with different people (each its own seed), plus ``out_dir/manifest.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    videos = []
    for i in range(n_videos):
        vid = f"synthetic_s{seed}_{i:03d}"
        spec = SyntheticSpec(video_id=vid, seed=seed * 1000 + i, **spec_overrides)
        videos.append(generate(spec, out))
    with open(out / "manifest.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["video_id", "uri", "license"])
        for v in videos:
            wr.writerow([v.video_id, v.video_path.relative_to(out).as_posix(), "synthetic"])
    return videos


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Synthetic people footage with exact ground truth.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--people", type=int, default=4)
    ap.add_argument("--cut-every", type=float, default=None, help="seconds between camera cuts (default: none)")
    ap.add_argument("--no-occluders", action="store_true")
    ap.add_argument("--no-exits", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    videos = generate_corpus(
        a.out, a.videos, a.seed, width=a.width, height=a.height, fps=a.fps, n_frames=max(1, round(a.seconds * a.fps)),
        n_people=a.people, cut_every_s=a.cut_every, occluders=not a.no_occluders, exits_and_reentries=not a.no_exits,
    )
    for v in videos:
        print(v.video_path)
    print(f"{len(videos)} video(s) in {time.perf_counter() - t0:.1f} s; manifest: {Path(a.out) / 'manifest.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
