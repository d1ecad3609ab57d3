"""A camera's shot in memory, checked, and its JPEG for the spool; a corrupt frame is refused, never graded."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.capture.errors import CaptureError
from edge.imageinfo import sniff

MIN_SIDE_PX = 64
# A frame whose pixels barely vary is a dead sensor, a lens cap or a broken stream, not a photo.
MIN_FRAME_STD = 1.0


def check_frame(frame: object, camera: str) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise CaptureError(f"camera {camera} returned no 8-bit image")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise CaptureError(f"camera {camera} returned a frame of shape {frame.shape}")
    if min(frame.shape[:2]) < MIN_SIDE_PX:
        raise CaptureError(f"camera {camera} returned a {frame.shape[1]}x{frame.shape[0]} frame")
    # A subsampled look is enough to tell a flat frame and keeps this cheap on 12 MP.
    if float(frame[::16, ::16].std()) < MIN_FRAME_STD:
        raise CaptureError(f"camera {camera} returned a blank (uniform) frame")
    return frame if frame.ndim == 2 or frame.shape[2] == 3 else frame[:, :, :3]


@dataclass(frozen=True)
class Frame:
    """One shot: the image the grader reads in memory and, for a replayed JPEG file, that file
    as it was, which the spool stores instead of encoding the image again."""

    image: np.ndarray  # uint8 BGR
    jpeg_file: bytes | None = None

    def jpeg(self, quality: int) -> bytes:
        return self.jpeg_file if self.jpeg_file is not None else encode_jpeg(self.image, quality)


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CaptureError("frame could not be encoded as JPEG")
    return buf.tobytes()


def decode_file(data: bytes, camera: str) -> Frame:
    """A replayed file, decoded once; a JPEG keeps its bytes for the spool."""
    if not data:
        raise CaptureError(f"camera {camera} returned an empty file")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CaptureError(f"camera {camera} returned a file that is not a decodable image")
    return Frame(check_frame(image, camera), data if sniff(data) == "jpeg" else None)
