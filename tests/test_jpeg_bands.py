"""A camera photo's JPEG encoded in bands on several cores is one valid JPEG, the same pixels as one
encoded whole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.capture.frames import JpegEncoder
from edge.imageinfo import JPEG_SOS, header_size, jpeg_segments


def _photo(h: int, w: int, grey: bool = False) -> np.ndarray:
    """Detail everywhere (noise over gradients and edges), so every band has real coefficients."""
    rng = np.random.default_rng([h, w])
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) % 97) * 2], axis=-1).astype(np.int16)
    image = np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if grey else image


def _restart_markers(jpeg: bytes) -> list[int]:
    """The restart markers' numbers in the scan: after SOS, 0xFF is followed by 0x00 (a stuffed byte)
    or by a marker."""
    scan = jpeg[next(pos for marker, pos, _ in jpeg_segments(jpeg) if marker == JPEG_SOS) :]
    return [scan[j + 1] - 0xD0 for j in range(len(scan) - 1) if scan[j] == 0xFF and 0xD0 <= scan[j + 1] <= 0xD7]


@pytest.mark.parametrize(
    ("h", "w", "threads", "grey"),
    [(3040, 4056, 2, False), (1001, 1003, 2, False), (1001, 1003, 3, False), (480, 640, 4, False), (600, 808, 2, True)],
)
def test_banded_jpeg_decodes_to_the_pixels_of_one_encoded_whole(h: int, w: int, threads: int, grey: bool) -> None:
    image = _photo(h, w, grey)
    with JpegEncoder(92, threads) as banded, JpegEncoder(92) as whole:
        data = banded.encode(image)
        reference = whole.encode(image)
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    assert decoded is not None and decoded.shape == image.shape
    assert np.array_equal(decoded, cv2.imdecode(np.frombuffer(reference, np.uint8), flag))
    bands = -(-h // (-(-h // threads // 16) * 16))
    assert _restart_markers(data) == [n % 8 for n in range(bands - 1)]
    assert _restart_markers(reference) == []
    assert header_size(data, "jpeg") == (w, h)


def test_a_frame_too_wide_for_one_restart_interval_is_encoded_whole() -> None:
    image = _photo(1024, 8200, grey=True)  # 1,025 units a row x 64 unit rows a band: over 65,535
    with JpegEncoder(80, 2) as banded:
        data = banded.encode(image)
    assert _restart_markers(data) == []
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE).shape == image.shape
