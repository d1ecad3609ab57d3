"""Calibrating a camera: photograph the empty booth and store it as that camera's background.

One function for ``edge-grader calibrate`` (which opens the camera itself) and the technician's
screen (which shoots through the running rig): only where the photo comes from differs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.capture.errors import CaptureError
from edge.config.root import AppConfig
from edge.grade.locate import locate
from edge.grade.reference import save_reference

logger = logging.getLogger(__name__)


class CalibrationError(Exception):
    """The empty booth could not be stored; the text says what to do."""


def calibrate(config: AppConfig, camera: str, shoot: Callable[[], np.ndarray], force: bool = False) -> Path:
    """Store ``shoot()``'s photo as ``camera``'s empty booth; refuses a phone in view unless ``force``."""
    try:
        image = shoot()
    except CaptureError as exc:
        raise CalibrationError(f"camera {camera} gave no photo: {exc}") from None
    g = config.grading
    if not force and locate(image, g.min_device_area, g.device_aspect) is not None:
        raise CalibrationError(
            f"camera {camera} sees something phone-shaped: empty the booth and calibrate again "
            "(or force it if the booth is empty)"
        )
    path = save_reference(config.booth.state_dir, camera, image)
    logger.info("camera %s: empty booth stored (%dx%d)", camera, image.shape[1], image.shape[0])
    return path
