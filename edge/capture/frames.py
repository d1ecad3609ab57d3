"""Check frames from a camera and encode them; a corrupt frame is refused, never graded."""

from __future__ import annotations

import cv2
import numpy as np

from edge.capture.errors import CaptureError

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


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CaptureError("frame could not be encoded as JPEG")
    return buf.tobytes()


def check_encoded(data: bytes, camera: str) -> bytes:
    """A replayed or streamed file must decode; a cheap 1/8-scale decode tells."""
    if not data:
        raise CaptureError(f"camera {camera} returned an empty file")
    array = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(array, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if image is None:
        raise CaptureError(f"camera {camera} returned a file that is not a decodable image")
    if float(image.std()) < MIN_FRAME_STD:
        raise CaptureError(f"camera {camera} returned a blank (uniform) image")
    return data
