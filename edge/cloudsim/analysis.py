"""The simulator's own grading: simple image statistics, deterministic, and honest about it.

It is not the booth's model and does not pretend to be: it scores exposure, focus and how much
fine structure (edges) a surface shows, so the mirror's booth-vs-cloud comparison has a second,
independent opinion to compare against.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.contract import SCORE_MAX, SCORE_MIN, SectionAnalysis

MAX_SIDE_PX = 1024
DARK_MEAN = 50.0
BRIGHT_MEAN = 215.0
EXPOSURE_PENALTY = 10
BLUR_VARIANCE = 30.0
BLUR_PENALTY = 15
EDGE_DENSITY_NOTICED = 0.02
EDGE_PENALTY_PER_UNIT = 400.0
EDGE_PENALTY_MAX = 60


def decode_gray(data: bytes) -> np.ndarray | None:
    """Grayscale, at most MAX_SIDE_PX on its long side; None if it is not a decodable image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        return None
    scale = MAX_SIDE_PX / max(image.shape)
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image


def analyse_section(images: Sequence[bytes]) -> SectionAnalysis:
    """Score the photos of one section: 100 minus penalties for exposure, blur and surface marks."""
    grays = [g for g in (decode_gray(data) for data in images) if g is not None]
    if not grays:
        return SectionAnalysis(
            score=SCORE_MIN, issues=["no decodable image"], recommendations=["upload JPEG or PNG photos"]
        )
    brightness = float(np.mean([g.mean() for g in grays]))
    sharpness = float(np.mean([cv2.Laplacian(g, cv2.CV_64F).var() for g in grays]))
    edges = float(np.mean([(cv2.Canny(g, 80, 160) > 0).mean() for g in grays]))
    issues: list[str] = []
    recommendations: list[str] = []
    penalty = 0
    if brightness < DARK_MEAN or brightness > BRIGHT_MEAN:
        issues.append(f"{'under' if brightness < DARK_MEAN else 'over'}exposed photo (mean {brightness:.0f}/255)")
        recommendations.append("check the booth lighting")
        penalty += EXPOSURE_PENALTY
    if sharpness < BLUR_VARIANCE:
        issues.append(f"blurry photo (focus measure {sharpness:.0f})")
        recommendations.append("retake the photos in focus")
        penalty += BLUR_PENALTY
    marks = min(EDGE_PENALTY_MAX, round(edges * EDGE_PENALTY_PER_UNIT))
    if edges >= EDGE_DENSITY_NOTICED:
        issues.append(f"surface marks ({edges * 100:.1f}% edge pixels)")
        recommendations.append("inspect the surface for scratches and cracks")
    penalty += marks
    return SectionAnalysis(
        score=max(SCORE_MIN, min(SCORE_MAX, SCORE_MAX - penalty)), issues=issues, recommendations=recommendations
    )
