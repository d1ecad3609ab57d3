"""The empty booth as each camera sees it, stored by ``edge-grader calibrate``.

A white phone on a white shelf, or a phone filling most of the frame, leaves the frame's border
no colour of its own to measure the background by; a photo of the empty booth from the same fixed
camera is that background, pixel for pixel. The locator uses it when it is there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.spool.files import atomic_write

log = logging.getLogger(__name__)

CALIBRATION_DIR = "calibration"


def reference_path(state_dir: Path, camera: str) -> Path:
    return state_dir / CALIBRATION_DIR / f"{camera}.png"


def save_reference(state_dir: Path, camera: str, image: np.ndarray) -> Path:
    """Write atomically and durably, as the spool writes photos: a half-written reference would
    mislead the locator on every shot."""
    path = reference_path(state_dir, camera)
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode the reference of camera {camera}")
    atomic_write(path, buf.tobytes())
    return path


def load_reference(state_dir: Path, camera: str) -> np.ndarray | None:
    """The stored empty-booth image of a camera, or None when it was never calibrated."""
    path = reference_path(state_dir, camera)
    if not path.exists():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        log.warning("calibration image of camera %s is unreadable: run edge-grader calibrate again", camera)
    return image
