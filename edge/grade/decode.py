"""Decode an image once, at the smallest scale the pipeline needs, whatever its file name says."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
# JPEG start-of-frame markers carry the size; C4 (Huffman tables), C8 and CC are not frames.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


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


def sniff(data: bytes) -> str | None:
    """The format from the content's magic bytes; a PNG named .jpg is still a PNG."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) from the header alone, without decoding pixels."""
    if fmt == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if fmt == "jpeg":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker in _SOF:
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + length
    return None


def reduction(size: tuple[int, int] | None, long_side: int) -> int:
    """The largest of 1, 2, 4, 8 that keeps the image's long side at least ``long_side``."""
    if size is None:
        return 1
    big = max(size)
    k = 1
    while k < 8 and big / (k * 2) >= long_side:
        k *= 2
    return k


def decode(data: bytes, section: str, index: int, long_side: int) -> Decoded:
    if not data:
        raise ImageError(section, index, "the file is empty")
    fmt = sniff(data)
    if fmt is None:
        raise ImageError(section, index, f"not an image (starts with {data[:8]!r}); JPEG or PNG expected")
    size = header_size(data, fmt)
    # OpenCV's reduced modes decode JPEG at 1/2, 1/4, 1/8 inside the DCT; other formats are
    # decoded in full and resized, which still saves the pipeline's later work.
    k = reduction(size, long_side)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[k])
    if image is None or image.size == 0:
        raise ImageError(section, index, f"the {fmt.upper()} data is corrupt or truncated")
    if size is None:
        k = 1
    return Decoded(image, k, fmt)
