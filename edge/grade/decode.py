"""Bring a photo to the smallest scale the pipeline needs: a file decoded once (whatever its name
says), or a camera's frame reduced in memory by the same factor, so both give the grader alike pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.imageinfo import header_size, sniff

_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


class ImageError(ValueError):
    """An image of a session that cannot be graded because it cannot be decoded."""

    def __init__(self, section: str, index: int, reason: str) -> None:
        super().__init__(f"image {index} of section {section!r}: {reason}")
        self.section = section
        self.index = index
        self.reason = reason


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray  # uint8 BGR
    scale: int  # original pixels per decoded pixel
    fmt: str


def reduction(size: tuple[int, int] | None, long_side: int) -> int:
    """The largest of 1, 2, 4, 8 that keeps the image's long side at least ``long_side``."""
    if size is None:
        return 1
    big = max(size)
    k = 1
    while k < 8 and big / (k * 2) >= long_side:
        k *= 2
    return k


def decode(data: bytes, section: str, index: int, long_side: int | None) -> Decoded:
    """The photo at the smallest scale that keeps its long side at least ``long_side``; whole when None."""
    if not data:
        raise ImageError(section, index, "the file is empty")
    fmt = sniff(data)
    if fmt is None:
        raise ImageError(section, index, f"not an image (starts with {data[:8]!r}); JPEG or PNG expected")
    # OpenCV's reduced modes decode JPEG at 1/2, 1/4, 1/8 inside the DCT; other formats are
    # decoded in full and resized, which still saves the pipeline's later work.
    k = 1 if long_side is None else reduction(header_size(data, fmt), long_side)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[k])
    if image is None or image.size == 0:
        raise ImageError(section, index, f"the {fmt.upper()} data is corrupt or truncated")
    return Decoded(image, k, fmt)


def decode_whole(data: bytes, section: str, index: int) -> np.ndarray:
    """A stored camera photo at full size, to be reduced as its frame was (``reduce_frame``): the
    JPEG decoder's own 1/k scaling filters differently, enough to move a borderline finding."""
    return decode(data, section, index, None).image


def reduce_frame(frame: np.ndarray, long_side: int) -> Decoded:
    """A camera's frame at the scale ``decode`` would give its JPEG: averaging k x k pixels is what
    the JPEG decoder's 1/k scaling does, so a session graded from frames and later from its stored
    JPEGs sees the same detail."""
    k = reduction(frame.shape[1::-1], long_side)
    if k == 1:
        return Decoded(frame, 1, "frame")
    h, w = frame.shape[:2]
    return Decoded(cv2.resize(frame, (-(-w // k), -(-h // k)), interpolation=cv2.INTER_AREA), k, "frame")
