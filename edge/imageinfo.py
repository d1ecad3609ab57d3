"""What an image file is and how large, from its first bytes, without decoding any pixels.

Shared by the local API (refusing non-images and pixel bombs) and the grading pipeline (picking a
reduced decode scale); the content decides, never the file name: a PNG named .jpg is a PNG.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# Progressive SOFs (C2, C6, CA, CE): the decoder holds every block's coefficients until the last scan.
JPEG_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# Each 8x8 block's coefficients as libjpeg buffers them: 64 of 16 bits.
_BLOCK_BYTES = 128
# Start of scan: the last header segment; entropy-coded data follows it.
JPEG_SOS = 0xDA
# The accepted formats: file extensions (the first is the one the booth writes) and media types.
EXTENSIONS: dict[str, tuple[str, ...]] = {"jpeg": (".jpg", ".jpeg"), "png": (".png",)}
MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png"}


def media_type(name: str) -> str | None:
    """The media type of an accepted image by its file name; the booth names stored files by content."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return next((MEDIA_TYPES[fmt] for fmt, exts in EXTENSIONS.items() if suffix in exts), None)


def sniff(data: bytes) -> str | None:
    """The format from the content's magic bytes."""
    if data[:3] == JPEG_SOI:
        return "jpeg"
    if data[:8] == PNG_SIGNATURE:
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG or JPEG; None when it cannot be read."""
    if fmt == "png":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        return None
    if fmt != "jpeg":
        return None
    for marker, pos, _ in jpeg_segments(data):
        if marker in JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return int(width), int(height)
    return None


def progressive_buffer_bytes(data: bytes) -> int:
    """The coefficient buffer a progressive JPEG needs to decode at any scale, from its frame
    header (0 for a sequential JPEG, which is decoded as it streams, or one without a header)."""
    for marker, pos, _ in jpeg_segments(data):
        if marker not in JPEG_SOF:
            continue
        if marker not in JPEG_PROGRESSIVE_SOF or pos + 10 > len(data):
            return 0
        height, width, count = struct.unpack_from(">HHB", data, pos + 5)
        factors = [(b >> 4, b & 15) for b in data[pos + 11 : pos + 11 + 3 * count : 3]]
        if len(factors) != count or not all(h and v for h, v in factors):
            return 0
        h_max, v_max = max(h for h, _ in factors), max(v for _, v in factors)
        blocks = sum(_ceil(_ceil(width * h, h_max), 8) * _ceil(_ceil(height * v, v_max), 8) for h, v in factors)
        return blocks * _BLOCK_BYTES
    return 0


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, offset of its 0xFF, length field) of each header segment of a JPEG, up to and
    including the start of scan; 0 is the length of a marker that stands alone. It stops early
    where the bytes are not a segment."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in JPEG_STANDALONE:
            yield marker, pos, 0
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        yield marker, pos, length
        if marker == JPEG_SOS:
            return
        pos += 2 + length
