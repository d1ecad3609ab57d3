"""Decoding: by content, at a reduced scale, once; clear errors for what is not an image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.grade.decode import ImageError, decode, reduction
from edge.imageinfo import header_size, sniff


def _encode(ext: str, w: int, h: int) -> bytes:
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.rectangle(img, (w // 4, h // 4), (w // 2, h // 2), (200, 200, 200), -1)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def test_header_sizes_without_decoding() -> None:
    assert header_size(_encode(".jpg", 1000, 600), "jpeg") == (1000, 600)
    assert header_size(_encode(".png", 320, 200), "png") == (320, 200)


def test_reduction_keeps_enough_pixels() -> None:
    assert reduction((4056, 3040), 2000) == 2
    assert reduction((1920, 1080), 2000) == 1
    assert reduction((8000, 6000), 1000) == 8
    assert reduction(None, 2000) == 1


def test_large_jpeg_is_decoded_reduced() -> None:
    d = decode(_encode(".jpg", 4200, 2400), "front", 0, 2000)
    assert d.scale == 2
    assert d.image.shape == (1200, 2100, 3)


def test_png_named_jpg_is_read_as_png() -> None:
    data = _encode(".png", 640, 480)
    assert sniff(data) == "png"
    assert decode(data, "front", 0, 2000).fmt == "png"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"%PDF-1.7 not a photo", "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "corrupt"),
    ],
)
def test_bad_bytes_raise_image_error(data: bytes, words: str) -> None:
    with pytest.raises(ImageError, match=words) as err:
        decode(data, "back", 2, 2000)
    assert err.value.section == "back" and err.value.index == 2
    assert isinstance(err.value, ValueError)
