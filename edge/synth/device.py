"""Draw a flat, upright (portrait) phone face: body, glass, bezels, cut-outs, camera bump, logo.

Everything is drawn at the device's final pixel size so thin features keep their real width; the
scene module only rotates and places the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge.synth.screen import draw_screen

Face = Literal["front", "back"]

# BGR body colours in 0-1, with a name so demo sets can pick them.
COLOURS: dict[str, tuple[float, float, float]] = {
    "black": (0.07, 0.07, 0.08),
    "white": (0.85, 0.86, 0.87),
    "silver": (0.72, 0.72, 0.70),
    "blue": (0.55, 0.30, 0.12),
    "gold": (0.55, 0.72, 0.83),
    "pastel": (0.80, 0.72, 0.86),
    "graphite": (0.22, 0.22, 0.24),
    "green": (0.45, 0.55, 0.40),
}


@dataclass
class PhoneSpec:
    """The random choices that make one phone model; sizes in mm."""

    length_mm: float
    aspect: float
    corner_mm: float
    bezel_mm: float
    chin_mm: float
    colour: str
    cutout: Literal["none", "notch", "punch", "slot", "home"]
    lenses: int
    bump: Literal["square", "round", "strip"]
    logo: bool

    @property
    def width_mm(self) -> float:
        return self.length_mm / self.aspect


def random_spec(rng: np.random.Generator, colour: str | None = None) -> PhoneSpec:
    old_style = rng.random() < 0.3  # thick bezels and a home button or slot, like older handsets
    return PhoneSpec(
        length_mm=float(rng.uniform(138, 166)),
        aspect=float(rng.uniform(1.9, 2.3)),
        corner_mm=float(rng.uniform(3, 11)),
        bezel_mm=float(rng.uniform(3.5, 6.0) if old_style else rng.uniform(0.8, 3.0)),
        chin_mm=float(rng.uniform(9, 16) if old_style else rng.uniform(0.8, 4.0)),
        colour=colour or str(rng.choice(list(COLOURS), p=[0.3, 0.22, 0.1, 0.1, 0.08, 0.07, 0.08, 0.05])),
        cutout=str(rng.choice(["home", "slot"]) if old_style else rng.choice(["none", "notch", "punch"])),  # type: ignore[arg-type]
        lenses=int(rng.integers(1, 5)),
        bump=str(rng.choice(["square", "round", "strip"])),  # type: ignore[arg-type]
        logo=bool(rng.random() < 0.7),
    )


@dataclass
class Device:
    """A drawn face: colour image (float32 BGR 0-1), outline alpha, and where glass is."""

    image: np.ndarray
    alpha: np.ndarray
    glass: np.ndarray  # float 0-1: where glass reflections and glass defects can appear
    screen: np.ndarray  # bool: the display area (front) or the flat back panel
    px_per_mm: float
    face: Face
    spec: PhoneSpec
    dark_glass: bool = field(default=True)


def rounded_rect_mask(h: int, w: int, x0: float, y0: float, x1: float, y1: float, r: float) -> np.ndarray:
    """Anti-aliased rounded rectangle in a float mask, drawn at 4x sub-pixel precision."""
    mask = np.zeros((h, w), np.float32)
    sh = 2
    f = 1 << sh
    r = max(0.0, min(r, (x1 - x0) / 2, (y1 - y0) / 2))
    pts = []
    for cx, cy, a0 in ((x1 - r, y0 + r, -90), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
        for a in np.linspace(a0, a0 + 90, 12):
            t = np.deg2rad(a)
            pts.append((cx + r * np.cos(t), cy + r * np.sin(t)))
    poly = np.round(np.array(pts) * f).astype(np.int32)
    cv2.fillPoly(mask, [poly], 1.0, cv2.LINE_AA, shift=sh)
    return mask


def _blend(img: np.ndarray, mask: np.ndarray, colour: tuple[float, float, float] | np.ndarray) -> None:
    m = mask[..., None]
    img *= 1 - m
    img += m * np.asarray(colour, np.float32)


def _circle(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    mask = np.zeros((h, w), np.float32)
    cv2.circle(mask, (round(cx * 4), round(cy * 4)), max(1, round(r * 4)), 1.0, -1, cv2.LINE_AA, shift=2)
    return mask


def draw_device(
    rng: np.random.Generator, spec: PhoneSpec, face: Face, px_per_mm: float, screen_on: bool = False
) -> Device:
    h = round(spec.length_mm * px_per_mm)
    w = round(spec.width_mm * px_per_mm)
    s = px_per_mm
    body = (
        np.asarray(COLOURS[spec.colour], np.float32)
        * rng.uniform(0.9, 1.1)
        * rng.uniform(0.97, 1.03, 3).astype(np.float32)
    )
    body = np.clip(body, 0, 1)
    alpha = rounded_rect_mask(h, w, 0, 0, w, h, spec.corner_mm * s)
    img = np.empty((h, w, 3), np.float32)
    img[:] = body
    # A thin metal frame shows as a lighter or darker rim along the outline.
    rim = alpha - cv2.erode(alpha, np.ones((3, 3), np.uint8), iterations=max(1, round(0.35 * s)))
    _blend(img, np.clip(rim, 0, 1) * 0.7, np.clip(body * rng.uniform(0.5, 1.6), 0.02, 1))
    if face == "front":
        screen, glass, dark = _draw_front(rng, img, spec, s, alpha, screen_on)
    else:
        screen, glass, dark = _draw_back(rng, img, spec, s, alpha, body)
    return Device(img, alpha, glass, screen, s, face, spec, dark)


def _draw_front(
    rng: np.random.Generator, img: np.ndarray, spec: PhoneSpec, s: float, alpha: np.ndarray, screen_on: bool
) -> tuple[np.ndarray, np.ndarray, bool]:
    h, w = alpha.shape
    # Most fronts are black glass edge to edge; white/pastel phones of older styles have coloured bezels.
    coloured_bezel = spec.colour in ("white", "silver", "gold", "pastel") and spec.cutout in ("home", "slot")
    bezel_col = np.asarray(COLOURS[spec.colour], np.float32) if coloured_bezel else np.full(3, 0.035, np.float32)
    inner = rounded_rect_mask(h, w, 0.4 * s, 0.4 * s, w - 0.4 * s, h - 0.4 * s, (spec.corner_mm - 0.4) * s)
    _blend(img, inner, bezel_col)
    b, c = spec.bezel_mm * s, spec.chin_mm * s
    top = c if spec.cutout in ("home", "slot") else b
    scr_r = 0.0 if spec.cutout in ("home", "slot") else max(0.0, spec.corner_mm - spec.bezel_mm) * s
    screen_f = rounded_rect_mask(h, w, b, top, w - b, h - c, scr_r)
    screen_col = np.array([0.03, 0.028, 0.025], np.float32) * rng.uniform(0.6, 1.6) + rng.uniform(0, 0.012, 3)
    _blend(img, screen_f, screen_col.astype(np.float32))
    if screen_on:
        draw_screen(rng, img, screen_f, s)
    dark_parts = np.full(3, 0.01, np.float32)
    cx = w / 2
    if spec.cutout == "notch":
        nw, nh = rng.uniform(0.2, 0.45) * w, rng.uniform(3, 6) * s
        _blend(img, rounded_rect_mask(h, w, cx - nw / 2, -nh, cx + nw / 2, top + nh, 2 * s), bezel_col)
    elif spec.cutout == "punch":
        px = cx if rng.random() < 0.7 else rng.uniform(0.12, 0.2) * w
        _blend(img, _circle(h, w, px, top + rng.uniform(2.5, 5) * s, rng.uniform(1.3, 2.4) * s), dark_parts)
    # Earpiece slot, front camera and sensors live in the top bezel of older styles.
    if spec.cutout in ("home", "slot"):
        ey = c * rng.uniform(0.4, 0.6)
        ew = rng.uniform(8, 14) * s
        _blend(
            img,
            rounded_rect_mask(h, w, cx - ew / 2, ey - 0.6 * s, cx + ew / 2, ey + 0.6 * s, 0.6 * s),
            (0.2, 0.2, 0.22),
        )
        _blend(img, _circle(h, w, cx + rng.choice([-1, 1]) * rng.uniform(9, 14) * s, ey, 1.3 * s), (0.05, 0.04, 0.06))
    if spec.cutout == "home":
        hy = h - c / 2
        ring = _circle(h, w, cx, hy, 4.5 * s) - _circle(h, w, cx, hy, 4.0 * s)
        _blend(img, np.clip(ring, 0, 1), np.clip(bezel_col * 0.75, 0, 1))
    screen = screen_f > 0.5
    glass = inner
    dark_glass = not coloured_bezel
    return screen, glass, dark_glass


def _draw_back(
    rng: np.random.Generator, img: np.ndarray, spec: PhoneSpec, s: float, alpha: np.ndarray, body: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    h, w = alpha.shape
    # A soft sheen across the back panel, glossy or matte.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = rng.uniform(0, np.pi)
    ramp = ((xx * np.cos(t) + yy * np.sin(t)) / max(h, w)).astype(np.float32)
    img *= (1 + rng.uniform(-0.15, 0.15) * (ramp - ramp.mean()))[..., None]
    side = rng.choice(["left", "centre"], p=[0.75, 0.25])
    lens_r = rng.uniform(3.5, 6.5) * s
    gap = lens_r * rng.uniform(2.2, 2.6)
    n = spec.lenses
    cols = 1 if spec.bump == "strip" or n == 1 else 2
    rows = int(np.ceil(n / cols))
    if spec.bump == "strip" and n > 1:
        cols, rows = n, 1
    bw, bh = cols * gap + 0.6 * lens_r, rows * gap + 0.6 * lens_r
    x0 = (rng.uniform(6, 10) * s) if side == "left" else (w - bw) / 2
    y0 = rng.uniform(6, 10) * s
    bump_col = np.clip(body * rng.uniform(0.7, 1.2), 0, 1)
    if spec.bump == "round" and n <= 2:
        r = max(bw, bh) / 2
        bump = _circle(h, w, x0 + bw / 2, y0 + bh / 2, r)
    else:
        bump = rounded_rect_mask(h, w, x0, y0, x0 + bw, y0 + bh, min(bw, bh) * 0.25)
    edge = bump - cv2.erode(bump, np.ones((3, 3), np.uint8), iterations=max(1, round(0.5 * s)))
    _blend(img, bump, bump_col)
    _blend(img, np.clip(edge, 0, 1), np.clip(bump_col * 1.4 + 0.1, 0, 1))
    for i in range(n):
        cxl = x0 + 0.3 * lens_r + gap * (i % cols + 0.5)
        cyl = y0 + 0.3 * lens_r + gap * (i // cols + 0.5)
        _blend(img, _circle(h, w, cxl, cyl, lens_r), (0.12, 0.12, 0.13))
        _blend(img, _circle(h, w, cxl, cyl, lens_r * 0.8), (0.02, 0.02, 0.03))
        _blend(img, _circle(h, w, cxl, cyl, lens_r * 0.35), (0.07, 0.05, 0.06))
        _blend(img, _circle(h, w, cxl - lens_r * 0.3, cyl - lens_r * 0.3, lens_r * 0.12), (0.8, 0.8, 0.85))
    fx = x0 + bw + rng.uniform(2, 4) * s
    _blend(img, _circle(h, w, fx, y0 + 2.5 * s, 1.6 * s), (0.75, 0.85, 0.9))
    if spec.logo:
        logo_col = np.clip(body * rng.uniform(0.75, 1.25) + rng.uniform(-0.05, 0.05), 0, 1)
        ly = h * rng.uniform(0.4, 0.55)
        if rng.random() < 0.5:
            _blend(img, _circle(h, w, w / 2, ly, rng.uniform(5, 8) * s) * 0.9, logo_col)
        else:
            layer = np.zeros((h, w), np.uint8)
            text = str(rng.choice(["NOVA", "KYTE", "ORBI", "LUMA", "VEX"]))
            scale = w / 260
            size, _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, max(1, round(scale * 1.5)))
            org = (round(w / 2 - size[0] / 2), round(h * 0.85))
            cv2.putText(layer, text, org, cv2.FONT_HERSHEY_DUPLEX, scale, 255, max(1, round(scale * 1.5)), cv2.LINE_AA)
            _blend(img, layer.astype(np.float32) * (0.85 / 255), logo_col)
    inset = rounded_rect_mask(h, w, 0.6 * s, 0.6 * s, w - 0.6 * s, h - 0.6 * s, (spec.corner_mm - 0.6) * s)
    panel = (inset > 0.5) & (bump < 0.1)
    glass = inset
    dark_glass = float(np.mean(body)) < 0.35
    return panel, glass, dark_glass
