"""A lit display: wallpaper, status bar, app icons, clock, text and UI chrome.

Shop photos often show the screen on, and its content is full of sharp edges and thin lines that a
model trained on dark glass alone takes for cracks. None of it is damage: the renderer draws it
into the display area and labels it clean.
"""

from __future__ import annotations

import cv2
import numpy as np

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN)
_WORDS = ("Mon 12", "Messages", "Photos", "Settings", "Camera", "12:45", "Wi-Fi", "100%", "Mail", "Maps", "News")


def _colour(rng: np.random.Generator, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(int(lo * 255), int(hi * 255) + 1)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32) / 255


def _wallpaper(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.choice(["gradient", "waves", "shapes", "city", "photo", "solid"])
    a, b = _colour(rng, 0.2, 1.0), _colour(rng, 0.05, 0.9)
    t = rng.uniform(0, np.pi)
    ramp = ((xx * np.cos(t) + yy * np.sin(t)) / max(h, w))[..., None]
    img = a * (1 - ramp) + b * ramp
    if kind == "waves":  # stacked bands with sharp, curved boundaries
        for _ in range(int(rng.integers(3, 9))):
            y0 = rng.uniform(0, h)
            edge = y0 + rng.uniform(0.03, 0.2) * h * np.sin(xx / w * rng.uniform(1, 6) + rng.uniform(0, 6))
            img = np.where((yy > edge)[..., None], img * 0.55 + _colour(rng) * 0.45, img)
    elif kind == "shapes":  # polygons and circles with hard edges, the worst case for a crack detector
        for _ in range(int(rng.integers(4, 14))):
            pts = np.int32(rng.uniform([0, 0], [w, h], (int(rng.integers(3, 6)), 2)))
            if rng.random() < 0.5:
                cv2.fillPoly(img, [pts], _colour(rng).tolist(), cv2.LINE_AA)
            else:
                cv2.polylines(img, [pts], True, _colour(rng).tolist(), int(rng.integers(1, 4)), cv2.LINE_AA)
    elif kind == "city":  # a skyline: many vertical edges and lit windows
        base = rng.uniform(0.4, 0.8) * h
        x = 0.0
        while x < w:
            bw = rng.uniform(0.04, 0.15) * w
            top = base - rng.uniform(0.05, 0.4) * h
            c = _colour(rng, 0.05, 0.4)
            cv2.rectangle(img, (int(x), int(top)), (int(x + bw), h), c.tolist(), -1)
            for _ in range(int(rng.integers(0, 25))):
                wx, wy = rng.uniform(x, x + bw), rng.uniform(top, h)
                cv2.rectangle(img, (int(wx), int(wy)), (int(wx + 3), int(wy + 4)), (0.6, 0.9, 1.0), -1)
            x += bw
    elif kind == "photo":  # a smooth natural image: colour blobs at several scales
        small = rng.uniform(0, 1, (int(rng.integers(3, 9)), int(rng.integers(2, 6)), 3)).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + rng.normal(0, 0.03, img.shape).astype(np.float32), 0, 1)
    elif kind == "solid":
        img[:] = a * rng.uniform(0.2, 1.0)
    return np.clip(img, 0, 1).astype(np.float32)


def _text(rng: np.random.Generator, img: np.ndarray, x: float, y: float, height_px: float, colour: list[float]) -> None:
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    scale = max(0.25, height_px / 22)
    cv2.putText(img, str(rng.choice(_WORDS)), (int(x), int(y)), font, scale, colour, max(1, round(scale * 1.6)),
                cv2.LINE_AA)  # fmt: skip


def _rounded_square(img: np.ndarray, x: float, y: float, size: float, colour: list[float]) -> None:
    r = int(size * 0.22)
    x0, y0, x1, y1 = int(x), int(y), int(x + size), int(y + size)
    cv2.rectangle(img, (x0 + r, y0), (x1 - r, y1), colour, -1)
    cv2.rectangle(img, (x0, y0 + r), (x1, y1 - r), colour, -1)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        cv2.circle(img, (cx, cy), r, colour, -1, cv2.LINE_AA)


def draw_screen(rng: np.random.Generator, img: np.ndarray, screen: np.ndarray, s: float) -> None:
    """Light up the display inside ``screen`` (float mask) of ``img`` (float BGR 0-1); ``s`` is px per mm."""
    ys, xs = np.nonzero(screen > 0.5)
    if len(ys) == 0:
        return
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    h, w = y1 - y0, x1 - x0
    # OpenCV draws text on 8-bit images only, so the UI is drawn in 0-255.
    content = np.round(_wallpaper(rng, h, w) * 255).astype(np.uint8)
    ink = [255, 255, 255] if rng.random() < 0.75 else [12, 12, 12]
    # Status bar: time and small glyphs along the top.
    bar = 4.5 * s
    _text(rng, content, 3 * s, bar * 0.8, bar * 0.6, ink)
    for i in range(int(rng.integers(2, 5))):
        gx = w - (4 + 4 * i) * s
        cv2.rectangle(content, (int(gx), int(bar * 0.3)), (int(gx + 2.5 * s), int(bar * 0.75)), ink, -1)
    layout = rng.choice(["icons", "clock", "app"], p=[0.5, 0.3, 0.2])
    if layout == "icons":
        cols = int(rng.integers(4, 6))
        size = w / cols * rng.uniform(0.55, 0.72)
        pitch = w / cols
        top = bar + rng.uniform(0.05, 0.35) * h
        for row in range(int(rng.integers(1, 6))):
            for col in range(cols):
                if rng.random() < 0.15:
                    continue
                x, y = col * pitch + (pitch - size) / 2, top + row * pitch * 1.25
                if y + size > h * 0.85:
                    break
                _rounded_square(content, x, y, size, (_colour(rng, 0.4, 1.0) * 255).tolist())
                cv2.circle(content, (int(x + size / 2), int(y + size / 2)), int(size * 0.22), ink, 2, cv2.LINE_AA)
                _text(rng, content, x, y + size + 3 * s, 2.2 * s, ink)
    elif layout == "clock":
        cv2.putText(content, f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}",
                    (int(w * 0.12), int(h * rng.uniform(0.2, 0.35))), _FONTS[int(rng.integers(2))],
                    w / 140, ink, max(1, int(w / 120)), cv2.LINE_AA)  # fmt: skip
        _text(rng, content, w * 0.2, h * 0.42, 3 * s, ink)
    else:  # an app: header, list rows with dividers and text
        cv2.rectangle(content, (0, int(bar)), (w, int(bar + 9 * s)), (_colour(rng, 0.3, 0.9) * 255).tolist(), -1)
        paper = [247, 247, 247] if rng.random() < 0.6 else [25, 25, 30]
        cv2.rectangle(content, (0, int(bar + 9 * s)), (w, h), paper, -1)
        row = rng.uniform(7, 12) * s
        y = bar + 9 * s
        dark = [25, 25, 25] if paper[0] > 128 else [230, 230, 230]
        while y + row < h:
            _text(rng, content, 4 * s, y + row * 0.6, 2.4 * s, dark)
            cv2.line(content, (int(3 * s), int(y + row)), (w, int(y + row)), [190, 190, 190], 1, cv2.LINE_AA)
            y += row
    # A dock and the home-indicator bar at the bottom.
    if rng.random() < 0.6:
        cv2.line(content, (int(w * 0.35), int(h - 2 * s)), (int(w * 0.65), int(h - 2 * s)), ink, max(1, int(0.8 * s)),
                 cv2.LINE_AA)  # fmt: skip
    level = rng.uniform(0.55, 1.0)  # display brightness against the lamp
    m = screen[y0:y1, x0:x1, None]
    region = img[y0:y1, x0:x1]
    region *= 1 - m
    region += m * content.astype(np.float32) * (level / 255)
