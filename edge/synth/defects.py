"""Draw defects and dirt into a flat device, with a ground-truth mask per class.

Damage: scratches (faint to deep, 1-40 mm, sometimes broken or in scuff bundles), cracks (branching
lines, spider webs, shattered corners) and chips/dents on the outline. Dirt that is not damage:
fingerprints, oil smudges, droplets with specular highlights, round stains; dust specks are drawn
but left unlabelled because a grader must ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.contract import DEFECT_KINDS
from edge.synth.device import Device


@dataclass
class DefectTruth:
    kind: str
    length_mm: float
    deep: bool


class Canvas:
    """The device image plus one uint8 mask per class, all in device pixels."""

    def __init__(self, dev: Device) -> None:
        self.dev = dev
        h, w = dev.alpha.shape
        self.masks = {c: np.zeros((h, w), np.uint8) for c in DEFECT_KINDS}
        self.truth: list[DefectTruth] = []

    @property
    def s(self) -> float:
        return self.dev.px_per_mm

    def add_lines(
        self,
        paths: list[np.ndarray],
        amp: float,
        thick: int,
        kind: str | None,
        uneven: bool = False,
        rng: np.random.Generator | None = None,
    ) -> None:
        """Lighten (amp > 0) or darken lines; thin lines drawn with sub-pixel precision.

        ``uneven`` makes the line's brightness wander along it, as light catches a real scratch.
        """
        h, w = self.dev.alpha.shape
        layer = np.zeros((h, w), np.float32)
        pts = [np.round(p * 4).astype(np.int32).reshape(-1, 1, 2) for p in paths]
        cv2.polylines(layer, pts, False, 1.0, thick, cv2.LINE_AA, shift=2)
        if thick == 1:
            layer *= 0.8  # a one-pixel anti-aliased line is weaker than its ink
        if uneven and rng is not None:
            cell = max(2, round(self.s * rng.uniform(0.5, 2.0)))
            wander = rng.uniform(0.25, 1.0, (h // cell + 2, w // cell + 2)).astype(np.float32)
            layer *= cv2.resize(wander, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w].clip(0.1, 1.0)
        self._apply(layer, amp)
        if kind is not None:
            m = self.masks[kind]
            cv2.polylines(m, pts, False, 255, max(3, thick + 2), cv2.LINE_8, shift=2)

    def _apply(self, layer: np.ndarray, amp: float) -> None:
        img = self.dev.image
        layer = layer * self.dev.glass
        if amp >= 0:
            img += (amp * layer)[..., None] * (1.05 - img)
        else:
            img *= (1 + amp * layer)[..., None]

    def clip_masks(self) -> None:
        inside = (self.dev.alpha > 0.5).astype(np.uint8)
        for m in self.masks.values():
            m *= inside


def _random_point(rng: np.random.Generator, region: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(region[::4, ::4])
    i = rng.integers(len(ys))
    return float(xs[i] * 4 + rng.uniform(0, 4)), float(ys[i] * 4 + rng.uniform(0, 4))


def _line_amp(rng: np.random.Generator, cv: Canvas, strength: float) -> float:
    """Scratches scatter light: bright on dark glass, a darker line on light surfaces."""
    return strength if cv.dev.dark_glass else -strength * 0.6


def draw_scratch(rng: np.random.Generator, cv: Canvas) -> None:
    s = cv.s
    # Mostly short marks, but long sweeping ones (keys, sand in a pocket) are common too.
    top = 40 if rng.random() < 0.7 else 70
    length = float(np.exp(rng.uniform(np.log(1.5), np.log(top)))) * s
    deep = rng.random() < 0.35
    x, y = _random_point(rng, cv.dev.screen)
    ang = rng.uniform(0, np.pi)
    bend = rng.uniform(-0.15, 0.15) * length
    t = np.linspace(0, 1, max(4, int(length / 3)))[:, None]
    d = np.array([np.cos(ang), np.sin(ang)])
    n = np.array([-d[1], d[0]])
    path = np.array([x, y]) + (t - 0.5) * length * d + (4 * t * (1 - t)) * bend * n
    bundle = 1 if rng.random() < 0.75 else int(rng.integers(2, 6))
    paths = []
    for k in range(bundle):
        p = path + k * rng.uniform(0.3, 1.2) * s * n + rng.normal(0, 0.15, path.shape)
        if rng.random() < 0.3 and len(p) > 6:  # broken scratch: keep a few fragments
            cut = np.sort(rng.choice(np.arange(1, len(p) - 1), 2, replace=False))
            paths.extend([p[: cut[0]], p[cut[1] :]])
        else:
            paths.append(p)
    strength = rng.uniform(0.3, 0.85) if deep else rng.uniform(0.06, 0.35)
    thick = max(1, round((rng.uniform(0.1, 0.3) if deep else rng.uniform(0.03, 0.1)) * s))
    paths = [p for p in paths if len(p) >= 2]
    cv.add_lines(paths, _line_amp(rng, cv, strength), thick, "scratch", uneven=rng.random() < 0.5, rng=rng)
    cv.truth.append(DefectTruth("scratch", length / s, deep))


def _crack_walk(
    rng: np.random.Generator, start: np.ndarray, ang: float, length: float, step: float, branch_p: float
) -> list[np.ndarray]:
    """Glass breaks in nearly straight runs that turn sharply; a scratch is a smooth arc."""
    paths, stack = [], [(start, ang, length)]
    while stack and len(paths) < 40:
        p, a, left = stack.pop()
        pts = [p]
        while left > 0:
            a += rng.normal(0, 0.06)
            if rng.random() < 0.18:
                a += rng.choice([-1, 1]) * rng.uniform(0.25, 0.9)
            p = p + step * np.array([np.cos(a), np.sin(a)])
            pts.append(p)
            left -= step
            if rng.random() < branch_p:
                stack.append((p, a + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2), left * rng.uniform(0.3, 0.7)))
        paths.append(np.array(pts))
    return paths


def draw_crack(rng: np.random.Generator, cv: Canvas) -> None:
    s = cv.s
    h, w = cv.dev.alpha.shape
    style = rng.choice(["branch", "web", "corner"], p=[0.5, 0.3, 0.2])
    if style == "branch":
        # Cracks usually run in from an edge.
        edge = rng.integers(4)
        u = rng.uniform(0.1, 0.9)
        start = np.array([[u * w, 2], [w - 2, u * h], [u * w, h - 2], [2, u * h]][edge], float)
        ang = [np.pi / 2, np.pi, -np.pi / 2, 0][edge] + rng.uniform(-0.6, 0.6)
        length = rng.uniform(20, 110) * s
        paths = _crack_walk(rng, start, ang, length, rng.uniform(1.0, 3.0) * s, 0.08)
    else:
        if style == "web":
            c = np.array(_random_point(rng, cv.dev.screen))
            reach = rng.uniform(12, 45) * s
        else:
            corner = rng.integers(4)
            c = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]][corner]) + rng.uniform(2, 8, 2) * s * np.array(
                [[1, 1], [-1, 1], [-1, -1], [1, -1]][corner]
            )
            reach = rng.uniform(15, 35) * s
        k = int(rng.integers(6, 15))
        angs = np.sort(rng.uniform(0, 2 * np.pi, k))
        paths, ends = [], []
        for a in angs:
            r = reach * rng.uniform(0.4, 1.0)
            paths += _crack_walk(rng, c, a, r, rng.uniform(1.0, 2.5) * s, 0.03)
            ends.append(r)
        for ring in range(int(rng.integers(1, 4))):
            frac = (ring + 1) / 4
            ring_pts = [
                c + min(frac * reach, e) * np.array([np.cos(a), np.sin(a)]) for a, e in zip(angs, ends, strict=True)
            ]
            for i in range(k):
                if rng.random() < 0.7:
                    a, b = ring_pts[i], ring_pts[(i + 1) % k]
                    mid = (a + b) / 2 + rng.normal(0, 0.8 * s, 2)
                    paths.append(np.array([a, mid, b]))
        length = reach * k * 0.7
    strength = rng.uniform(0.35, 0.9)
    thick = max(1, round(rng.uniform(0.08, 0.2) * s))
    cv.add_lines(paths, _line_amp(rng, cv, strength), thick, "crack")
    # Glints: a crack's faces catch the light in short brighter stretches.
    glints = [p[i : i + 3] for p in paths for i in range(0, len(p) - 2, 7) if rng.random() < 0.3]
    if glints:
        cv.add_lines(glints, abs(strength), thick + 1, None)
    cv.truth.append(DefectTruth("crack", length / s, True))


def draw_chip(rng: np.random.Generator, cv: Canvas) -> None:
    s = cv.s
    alpha = cv.dev.alpha
    h, w = alpha.shape
    solid = (alpha > 0.5).astype(np.uint8)
    inner = cv2.erode(solid, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    edge_pts = np.argwhere(solid > inner)
    y, x = edge_pts[rng.integers(len(edge_pts))]
    r = rng.uniform(0.9, 3.0) * s
    k = int(rng.integers(5, 9))
    angs = np.sort(rng.uniform(0, 2 * np.pi, k))
    poly = np.array(
        [[x + r * rng.uniform(0.5, 1.0) * np.cos(a), y + r * rng.uniform(0.5, 1.0) * np.sin(a)] for a in angs]
    )
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 255)
    area = m > 0
    img = cv.dev.image
    if rng.random() < 0.55:
        # A chip takes material away: the outline gets a notch with a bright broken face.
        inner = cv2.erode(m, np.ones((3, 3), np.uint8), iterations=max(1, round(0.3 * s))) > 0
        cv.dev.alpha[inner] = 0
        face = area & ~inner
        # The broken face shows the glass or metal inside: contrasting with the body colour.
        lum = float(img[face].mean()) if face.any() else 0.5
        img[face] = np.clip(img[face] * 0.3 + (rng.uniform(0.05, 0.3) if lum > 0.5 else rng.uniform(0.45, 0.95)), 0, 1)
    else:
        # A dent dulls and shades the frame: darker on one side, a highlight on the other.
        sh = np.zeros((h, w), np.float32)
        cv2.fillPoly(sh, [np.round(poly).astype(np.int32)], 1.0)
        sh = cv2.GaussianBlur(sh, (0, 0), max(0.8, r / 4))
        dx = np.gradient(sh, axis=1)
        img *= (1 - 0.5 * sh)[..., None]
        img += (np.clip(dx * r * 0.9, -0.3, 0.6))[..., None]
        np.clip(img, 0, 1, out=img)
    cv.masks["chip"][area] = 255
    cv.truth.append(DefectTruth("chip", 2 * r / s, True))


def _fingerprint(rng: np.random.Generator, cv: Canvas, cx: float, cy: float) -> np.ndarray:
    s = cv.s
    h, w = cv.dev.alpha.shape
    a, b = rng.uniform(5, 9) * s, rng.uniform(7, 12) * s
    half = int(max(a, b) * 1.2)
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    t = rng.uniform(0, np.pi)
    u = ((xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)) / a
    v = (-(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)) / b
    rad = np.sqrt(u * u + v * v)
    period = rng.uniform(0.4, 0.55) * s / max(a, b)
    ridges = 0.5 + 0.5 * np.sin(2 * np.pi * rad / period + rng.uniform(0, 6))
    env = np.clip(1 - rad, 0, 1) ** 0.5
    layer = np.zeros((h, w), np.float32)
    layer[y0:y1, x0:x1] = ridges * env
    return layer


def draw_dirt(rng: np.random.Generator, cv: Canvas) -> None:
    s = cv.s
    h, w = cv.dev.alpha.shape
    kind = rng.choice(["fingerprint", "smudge", "droplet", "stain"], p=[0.25, 0.2, 0.25, 0.3])
    cx, cy = _random_point(rng, cv.dev.glass > 0.5)
    bright = 1.0 if cv.dev.dark_glass else -0.6
    mask = cv.masks["dirt"]
    if kind == "fingerprint":
        layer = _fingerprint(rng, cv, cx, cy)
        cv._apply(cv2.GaussianBlur(layer, (0, 0), 0.6), bright * rng.uniform(0.04, 0.14))
        mask[layer > 0.15] = 255
    elif kind == "smudge":
        # A wiped oil film: a soft patch made of fine parallel streaks, unlike a lamp's smooth sheen.
        env = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(2, 6))):
            p0 = np.array([cx, cy]) + rng.normal(0, 4 * s, 2)
            p1 = p0 + rng.normal(0, 8 * s, 2)
            thick = max(2, round(rng.uniform(2, 5) * s))
            cv2.line(env, tuple(np.round(p0).astype(int)), tuple(np.round(p1).astype(int)), 1.0, thick)
        env = cv2.GaussianBlur(env, (0, 0), 1.0 * s)
        env /= max(1e-6, float(env.max()))
        streaks = np.zeros((h, w), np.float32)
        ang = rng.uniform(0, np.pi)
        d = np.array([np.cos(ang), np.sin(ang)]) * 12 * s
        n = np.array([-np.sin(ang), np.cos(ang)])
        for off in np.arange(-10 * s, 10 * s, max(1.5, rng.uniform(0.15, 0.4) * s)):
            c = np.array([cx, cy]) + off * n
            p0, p1 = np.round(c - d).astype(int), np.round(c + d).astype(int)
            cv2.line(streaks, tuple(p0), tuple(p1), float(rng.uniform(0.3, 1.0)), 1, cv2.LINE_AA)
        layer = env * (0.35 + 0.65 * cv2.GaussianBlur(streaks, (0, 0), 0.6))
        cv._apply(layer, bright * rng.uniform(0.05, 0.14))
        mask[env > 0.3] = 255
    elif kind == "droplet":
        big = 2.0 if rng.random() < 0.4 else 1.0
        a, b = rng.uniform(1.5, 7) * s * big, rng.uniform(1.5, 6) * s * big
        ang = rng.uniform(0, 180)
        c = (round(cx), round(cy))
        body = np.zeros((h, w), np.float32)
        cv2.ellipse(body, c, (round(a), round(b)), ang, 0, 360, 1.0, -1, cv2.LINE_AA)
        rim = np.zeros((h, w), np.float32)
        cv2.ellipse(rim, c, (round(a), round(b)), ang, 0, 360, 1.0, max(1, round(0.25 * s)), cv2.LINE_AA)
        cv._apply(cv2.GaussianBlur(body, (0, 0), 0.5 * s), bright * rng.uniform(0.03, 0.12))
        cv._apply(rim, -0.5 if cv.dev.dark_glass else -0.3)
        spec = np.zeros((h, w), np.float32)
        # Specular arcs: the lamp seen in the drop's curved surface, near its rims.
        for start in (rng.uniform(20, 70), rng.uniform(200, 250)):
            cv2.ellipse(
                spec,
                c,
                (round(a * 0.8), round(b * 0.8)),
                ang,
                start,
                start + rng.uniform(40, 110),
                1.0,
                max(1, round(0.3 * s)),
                cv2.LINE_AA,
            )
        cv2.circle(spec, (round(cx - a * 0.3), round(cy - b * 0.3)), max(1, round(0.4 * s)), 1.0, -1, cv2.LINE_AA)
        cv._apply(spec, 0.9)
        mask[cv2.dilate((body > 0.3).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = 255
    else:
        n = int(rng.integers(1, 5))
        for _ in range(n):
            px, py = (cx, cy) if n == 1 else _random_point(rng, cv.dev.screen)
            r = rng.uniform(0.4, 1.6) * s
            spot = np.zeros((h, w), np.float32)
            if rng.random() < 0.75:
                cv2.circle(spot, (round(px * 4), round(py * 4)), max(4, round(r * 4)), 1.0, -1, cv2.LINE_AA, shift=2)
                spot = cv2.GaussianBlur(spot, (0, 0), max(0.5, r * 0.25))
            else:  # a dried ring
                cv2.circle(
                    spot,
                    (round(px * 4), round(py * 4)),
                    max(4, round(r * 6)),
                    1.0,
                    max(1, round(0.3 * s)),
                    cv2.LINE_AA,
                    shift=2,
                )
            cv._apply(spot, (1.0 if cv.dev.dark_glass else -0.5) * rng.uniform(0.3, 0.95))
            mask[spot > 0.2] = 255
    cv.truth.append(DefectTruth("dirt", 0.0, False))


def draw_dust(rng: np.random.Generator, cv: Canvas, count: int) -> None:
    """Tiny specks everywhere on real glass; deliberately not labelled."""
    h, w = cv.dev.alpha.shape
    layer = np.zeros((h, w), np.float32)
    xs, ys = rng.uniform(0, w, count), rng.uniform(0, h, count)
    for x, y in zip(xs, ys, strict=True):
        cv2.circle(
            layer,
            (round(x * 4), round(y * 4)),
            int(rng.integers(2, 5)),
            float(rng.uniform(0.2, 1.0)),
            -1,
            cv2.LINE_AA,
            shift=2,
        )
    # Faint: a speck a grader should ignore is well below a stain's contrast.
    cv._apply(layer, (0.25 if cv.dev.dark_glass else -0.15) * rng.uniform(0.1, 0.6))
