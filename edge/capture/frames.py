"""A camera's shot in memory, checked, and its JPEG for the spool; a corrupt frame is refused, never graded."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import cv2
import numpy as np

from edge.capture.errors import CaptureError
from edge.imageinfo import JPEG_SOF, JPEG_SOS, jpeg_segments, sniff

MIN_SIDE_PX = 64
# A frame whose pixels barely vary is a dead sensor, a lens cap or a broken stream, not a photo.
MIN_FRAME_STD = 1.0


def check_frame(frame: object, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """The frame as BGR, or a CaptureError that says what is wrong with it; ``size`` (width,
    height) is the one the camera is configured for, when it is."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise CaptureError(f"camera {camera} returned no 8-bit image")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise CaptureError(f"camera {camera} returned a frame of shape {frame.shape}")
    if size is not None and (frame.shape[1], frame.shape[0]) != size:
        raise CaptureError(wrong_size(camera, (frame.shape[1], frame.shape[0]), size))
    if min(frame.shape[:2]) < MIN_SIDE_PX:
        raise CaptureError(f"camera {camera} returned a {frame.shape[1]}x{frame.shape[0]} frame")
    # A subsampled look is enough to tell a flat frame and keeps this cheap on 12 MP.
    if float(frame[::16, ::16].std()) < MIN_FRAME_STD:
        raise CaptureError(f"camera {camera} returned a blank (uniform) frame")
    return frame if frame.ndim == 2 or frame.shape[2] == 3 else frame[:, :, :3]


def wrong_size(camera: str, got: tuple[int, int], size: tuple[int, int]) -> str:
    # A camera's mm_per_px is measured at its configured size: at another, every defect's length
    # (and so the grade) would be off by the ratio. A USB camera sharing a hub's bandwidth, or
    # asked for a mode it lacks, quietly falls back to a smaller one.
    return (f"camera {camera} gives {got[0]}x{got[1]} frames, not the configured {size[0]}x{size[1]}: "
            "check the modes it offers and its USB bandwidth, or configure the size it gives")


@dataclass(frozen=True)
class Frame:
    """One shot: the image the grader reads in memory and, for a replayed JPEG file, that file
    as it was, which the spool stores instead of encoding the image again."""

    image: np.ndarray  # uint8 BGR
    jpeg_file: bytes | None = None

    def jpeg(self, encoder: JpegEncoder) -> bytes:
        return self.jpeg_file if self.jpeg_file is not None else encoder.encode(self.image)


# Bands start on a 16-row boundary: a colour JPEG's minimum coded unit at 4:2:0, two of a grey one's.
_BAND_ROWS = 16
# The largest restart interval a JPEG can state (16 bits), in minimum coded units.
_MAX_INTERVAL = 65535
_EOI, _RST0 = b"\xff\xd9", 0xD0


class JpegEncoder:
    """Encodes frames as baseline JPEG (4:2:0), in horizontal bands on ``threads`` cores.

    libjpeg encodes on one core, and a 12 MP frame's JPEG is the slowest step of a shot on a Pi
    (an estimated 0.2 s on a Pi 4). Each band is encoded alone as one restart interval; joined with
    restart markers they are one JPEG with that interval, which decodes to exactly the pixels of
    the frame encoded whole: DC prediction restarts at each marker, and chroma is averaged within
    16-row units, so no coefficient changes.
    """

    def __init__(self, quality: int, threads: int = 1) -> None:
        self._quality = quality
        self._bands = threads
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="jpeg-band") if threads > 1 else None

    def encode(self, image: np.ndarray) -> bytes:
        params = [cv2.IMWRITE_JPEG_QUALITY, self._quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]  # fmt: skip
        h, w = image.shape[:2]
        rows = -(-h // self._bands // _BAND_ROWS) * _BAND_ROWS
        unit = 8 if image.ndim == 2 else 16
        interval = -(-w // unit) * (rows // unit)
        if self._pool is None or rows >= h or interval > _MAX_INTERVAL:
            return _encode(image, params)
        params += [cv2.IMWRITE_JPEG_RST_INTERVAL, interval]
        later = [self._pool.submit(_encode, image[top : top + rows], params) for top in range(rows, h, rows)]
        return _join([_encode(image[:rows], params), *(band.result() for band in later)], h)

    def __enter__(self) -> JpegEncoder:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _encode(image: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, params)
    if not ok:
        raise CaptureError("frame could not be encoded as JPEG")
    return buf.tobytes()


def _scan_start(jpeg: bytes) -> int:
    """Where the entropy-coded data begins: just past the start-of-scan segment."""
    for marker, pos, length in jpeg_segments(jpeg):
        if marker == JPEG_SOS:
            return pos + 2 + length
    raise CaptureError("the encoded frame has no JPEG scan")


def _join(bands: list[bytes], height: int) -> bytes:
    """One JPEG of bands encoded alike, each one restart interval: the first band's header with the
    whole height, then each band's scan after a restart marker."""
    start = _scan_start(bands[0])
    head = bytearray(bands[0][:start])
    for pos in [pos for marker, pos, _ in jpeg_segments(head) if marker in JPEG_SOF]:
        struct.pack_into(">H", head, pos + 5, height)
    parts = [bytes(head), bands[0][start:-2]]
    for n, band in enumerate(bands[1:]):
        parts += [bytes((0xFF, _RST0 + n % 8)), band[_scan_start(band) : -2]]
    return b"".join([*parts, _EOI])


def decode_file(data: bytes, camera: str) -> Frame:
    """A replayed file, decoded once; a JPEG keeps its bytes for the spool."""
    if not data:
        raise CaptureError(f"camera {camera} returned an empty file")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CaptureError(f"camera {camera} returned a file that is not a decodable image")
    return Frame(check_frame(image, camera), data if sniff(data) == "jpeg" else None)
