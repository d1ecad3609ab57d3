"""Compose a booth photo: background, placed device, reflections, lighting, camera artefacts."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.contract import DEFECT_KINDS
from edge.synth.defects import Canvas, DefectTruth, draw_chip, draw_crack, draw_dirt, draw_dust, draw_scratch
from edge.synth.device import Device, Face, draw_device, random_spec

DRAWERS = {"scratch": draw_scratch, "crack": draw_crack, "chip": draw_chip, "dirt": draw_dirt}


@dataclass
class Render:
    """One synthetic photo and its ground truth, in image pixels."""

    image: np.ndarray  # uint8 BGR, after the JPEG round trip
    jpeg: bytes
    masks: dict[str, np.ndarray]  # uint8 0/255 per class of edge.contract.DEFECT_KINDS
    quad: np.ndarray | None  # float32 4x2: device top-left, top-right, bottom-right, bottom-left
    mm_per_px: float
    face: Face
    truth: list[DefectTruth] = field(default_factory=list)


def random_defects(rng: np.random.Generator) -> dict[str, int]:
    """The training mix: a quarter clean, the rest with a few defects and often dirt."""
    counts = dict.fromkeys(DEFECT_KINDS, 0)
    if rng.random() < 0.25:
        return counts
    counts["scratch"] = int(rng.choice([0, 1, 2, 3, 5], p=[0.3, 0.3, 0.2, 0.12, 0.08]))
    counts["crack"] = int(rng.random() < 0.3)
    counts["chip"] = int(rng.choice([0, 1, 2], p=[0.65, 0.25, 0.1]))
    counts["dirt"] = int(rng.choice([0, 1, 2, 3], p=[0.4, 0.3, 0.2, 0.1]))
    return counts


def _noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Smooth noise of unit std at scale sigma, made small and resized so 12 MP stays cheap."""
    f = max(1.0, sigma / 2)
    sh, sw = max(2, int(h / f)), max(2, int(w / f))
    n = rng.standard_normal((sh, sw), dtype=np.float32)
    if sigma / f > 0.3:
        n = cv2.GaussianBlur(n, (0, 0), sigma / f)
    n = cv2.resize(n, (w, h), interpolation=cv2.INTER_LINEAR)
    return n / max(1e-6, float(n.std()))


# Surfaces a shop photo may show behind the phone besides the booth's felt (``variety`` renders).
_SHOP_BACKDROPS = ("white", "paper", "wood", "black", "colour")
# Chance that a front shows a lit display in ``variety`` renders.
SCREEN_ON_CHANCE = 0.4


def _shop_backdrop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.choice(_SHOP_BACKDROPS)
    if kind == "wood":
        xx = np.mgrid[0:h, 0:w][1].astype(np.float32)
        grain = np.sin((xx + 8 * _noise(rng, h, w, w / 20)) / rng.uniform(6, 20)) * 0.5 + 0.5
        base = np.array([0.25, 0.42, 0.62], np.float32) * rng.uniform(0.6, 1.2)
        return np.clip(base * (0.8 + 0.25 * grain[..., None]), 0, 1).astype(np.float32)
    levels = {
        "white": rng.uniform(0.88, 1.0),
        "paper": rng.uniform(0.78, 0.95),
        "black": rng.uniform(0.0, 0.06),
        "colour": rng.uniform(0.3, 0.8),
    }
    level = levels[kind]
    g = level + (0.02 if kind == "paper" else 0.005) * _noise(rng, h, w, rng.uniform(1, 3))
    tint = np.ones(3, np.float32) if kind != "colour" else rng.uniform(0.3, 1.0, 3).astype(np.float32)
    return np.clip(g[..., None] * tint, 0, 1).astype(np.float32)


def background(rng: np.random.Generator, h: int, w: int, variety: bool = False) -> np.ndarray:
    if variety and rng.random() < 0.5:
        return _shop_backdrop(rng, h, w)
    kind = rng.choice(["felt", "dark", "light"], p=[0.6, 0.25, 0.15])
    level = {"felt": rng.uniform(0.2, 0.42), "dark": rng.uniform(0.07, 0.18), "light": rng.uniform(0.55, 0.8)}[kind]
    g = level + rng.uniform(0.01, 0.04) * _noise(rng, h, w, w / 12)
    g = g + rng.uniform(0.01, 0.04) * _noise(rng, h, w, rng.uniform(2, 6))
    g = g + rng.uniform(0.01, 0.05) * rng.standard_normal((h, w), dtype=np.float32)
    tint = np.array([1.0, 1.0, 1.0], np.float32) + rng.uniform(-0.04, 0.04, 3).astype(np.float32)
    return np.clip(g[..., None] * tint, 0, 1).astype(np.float32)


def _placement(rng: np.random.Generator, dev_hw: tuple[int, int], w: int, h: int, angle: float) -> np.ndarray:
    """An affine matrix from device pixels to image pixels that keeps the device in frame."""
    dh, dw = dev_hw
    rad = np.deg2rad(angle)
    c, s = abs(np.cos(rad)), abs(np.sin(rad))
    bw, bh = dw * c + dh * s, dw * s + dh * c
    cx = rng.uniform(bw / 2, max(bw / 2, w - bw / 2)) if bw < w else w / 2
    cy = rng.uniform(bh / 2, max(bh / 2, h - bh / 2)) if bh < h else h / 2
    m = cv2.getRotationMatrix2D((dw / 2, dh / 2), -angle, 1.0)
    m[:, 2] += np.array([cx - dw / 2, cy - dh / 2])
    return m


def _reflections(rng: np.random.Generator, img: np.ndarray, glass: np.ndarray, alpha: np.ndarray) -> None:
    h, w = glass.shape
    ys, xs = np.nonzero(alpha[::8, ::8] > 0.5)
    cx, cy = xs.mean() * 8, ys.mean() * 8
    size = np.sqrt(len(xs) * 64)
    # The camera/lamp dome seen in the glass: a soft square darker or lighter than the screen.
    if rng.random() < 0.7:
        layer = np.zeros((h, w), np.float32)
        half = size * rng.uniform(0.08, 0.2)
        ox, oy = cx + rng.normal(0, size * 0.08), cy + rng.normal(0, size * 0.08)
        cv2.rectangle(layer, (int(ox - half), int(oy - half)), (int(ox + half), int(oy + half)), 1.0, -1)
        layer = cv2.GaussianBlur(layer, (0, 0), half * 0.15 + 1)
        img += (layer * glass * rng.uniform(-0.035, 0.05))[..., None]
    # A broad diagonal sheen from the lamp.
    if rng.random() < 0.6:
        yy, xx = np.mgrid[0:h:4, 0:w:4].astype(np.float32)
        t = rng.uniform(0, np.pi)
        d = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t) - rng.normal(0, size * 0.2)
        # From a broad glow to a narrow soft streak: neither is a scratch, however long.
        band = np.exp(-((d / (size * np.exp(rng.uniform(np.log(0.008), np.log(0.12))))) ** 2))
        band = cv2.resize(band, (w, h))
        img += (band * glass * rng.uniform(0.01, 0.08))[..., None]
    # Bright, slightly blue rim light along the edges facing the lamp.
    shift = rng.normal(0, 1, 2)
    shift = shift / np.linalg.norm(shift) * max(2.0, size * rng.uniform(0.002, 0.006))
    moved = cv2.warpAffine(alpha, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (w, h))
    rim = np.clip(alpha - moved, 0, 1)
    rim = cv2.GaussianBlur(rim, (0, 0), 1.0)
    img += (rim * rng.uniform(0.1, 0.6))[..., None] * np.array([1.0, 0.9, 0.85], np.float32)


def render_scene(
    rng: np.random.Generator,
    width: int = 1920,
    height: int = 1080,
    *,
    face: Face | None = None,
    colour: str | None = None,
    defects: dict[str, int] | None = None,
    fill: float | None = None,
    blur_sigma: float | None = None,
    exposure: float | None = None,
    jpeg_quality: int | None = None,
    with_device: bool = True,
    variety: bool = False,
    screen_on: bool | None = None,
) -> Render:
    """Render one booth photo. ``defects`` maps a class to a count; None draws the training mix.

    ``variety`` adds what shop photos show beyond the booth: lit displays and other backdrops.
    ``screen_on`` lights a front's display for sure (True) or never (False); None leaves it to chance
    in ``variety`` renders.
    """
    face = face or ("front" if rng.random() < 0.55 else "back")
    counts = random_defects(rng) if defects is None else {c: defects.get(c, 0) for c in DEFECT_KINDS}
    img = background(rng, height, width, variety)
    masks = {c: np.zeros((height, width), np.uint8) for c in DEFECT_KINDS}
    quad, mm_per_px, truth = None, 0.0, []
    if with_device:
        spec = random_spec(rng, colour)
        landscape = rng.random() < 0.6
        angle = (90.0 if rng.random() < 0.5 else -90.0) if landscape else (0.0 if rng.random() < 0.8 else 180.0)
        angle += rng.uniform(-15, 15) if rng.random() < 0.5 else rng.uniform(-3, 3)
        span = width if landscape else height
        f = fill if fill is not None else rng.uniform(0.35, 0.9)
        px_per_mm = f * span / spec.length_mm
        rad = np.deg2rad(angle)
        for _ in range(20):  # shrink until the rotated device fits the frame
            dh, dw = spec.length_mm * px_per_mm, spec.width_mm * px_per_mm
            bw = dw * abs(np.cos(rad)) + dh * abs(np.sin(rad))
            bh = dw * abs(np.sin(rad)) + dh * abs(np.cos(rad))
            if bw <= width * 0.97 and bh <= height * 0.97:
                break
            px_per_mm *= 0.95
        lit = screen_on if screen_on is not None else variety and rng.random() < SCREEN_ON_CHANCE
        dev = draw_device(rng, spec, face, px_per_mm, lit and face == "front")
        cv = Canvas(dev)
        draw_dust(rng, cv, int(rng.integers(0, 400)))
        for cls, n in counts.items():
            for _ in range(n):
                DRAWERS[cls](rng, cv)
        cv.clip_masks()
        truth = cv.truth
        m = _placement(rng, dev.alpha.shape, width, height, angle)
        img, masks, quad = _composite(rng, img, dev, cv.masks, m)
        mm_per_px = 1.0 / px_per_mm
    img = _camera(rng, img, blur_sigma, exposure)
    q = int(jpeg_quality if jpeg_quality is not None else rng.integers(70, 96))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
    assert ok
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return Render(image, buf.tobytes(), masks, quad, mm_per_px, face, truth)


def _composite(
    rng: np.random.Generator, bg: np.ndarray, dev: Device, dmasks: dict[str, np.ndarray], m: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    h, w = bg.shape[:2]
    warp = {"dsize": (w, h), "flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_CONSTANT}
    alpha = cv2.warpAffine(dev.alpha, m, **warp)
    glass = cv2.warpAffine(dev.glass * dev.alpha, m, **warp)
    colour = cv2.warpAffine(dev.image * dev.alpha[..., None], m, **warp)
    # A soft contact shadow under the device.
    sh_m = m.copy()
    sh_m[:, 2] += rng.normal(0, 4, 2)
    shadow = cv2.GaussianBlur(cv2.warpAffine(dev.alpha, sh_m, **warp), (0, 0), max(2.0, w / 400))
    img = bg * (1 - rng.uniform(0.2, 0.5) * shadow)[..., None]
    img = img * (1 - alpha[..., None]) + colour
    _reflections(rng, img, glass, alpha)
    masks = {c: (cv2.warpAffine(mk, m, **warp) > 100).astype(np.uint8) * 255 for c, mk in dmasks.items()}
    dh, dw = dev.alpha.shape
    corners = np.array([[0, 0, 1], [dw, 0, 1], [dw, dh, 1], [0, dh, 1]], np.float64)
    quad = (corners @ m.T).astype(np.float32)
    return img, masks, quad


def _camera(rng: np.random.Generator, img: np.ndarray, blur_sigma: float | None, exposure: float | None) -> np.ndarray:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h:8, 0:w:8].astype(np.float32)
    t = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - w / 2) * np.cos(t) + (yy - h / 2) * np.sin(t)) / max(h, w)
    vign = 1 - rng.uniform(0, 0.35) * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2
    light = cv2.resize((1 + rng.uniform(0, 0.4) * ramp) * vign, (w, h))
    ev = exposure if exposure is not None else float(2 ** rng.uniform(-0.6, 0.45))
    img *= (light * (ev * 255))[..., None]
    sigma = blur_sigma if blur_sigma is not None else float(rng.uniform(0, 0.9) if rng.random() < 0.7 else 0)
    if sigma > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    # Sensor noise: mostly shared by the channels (luma), some per channel (chroma).
    cv2.setRNGSeed(int(rng.integers(1 << 30)))
    sd = rng.uniform(1.0, 5.5)
    luma = np.empty((h, w), np.float32)
    cv2.randn(luma, 0.0, sd)
    chroma = np.empty((h, w, 3), np.float32)
    cv2.randn(chroma, (0.0, 0.0, 0.0), (sd * 0.5,) * 3)
    img += luma[..., None]
    img += chroma
    return cv2.convertScaleAbs(np.maximum(img, 0, out=img))
