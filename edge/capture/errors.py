"""Capture failures carry a reason that names the section and the camera."""


class CaptureError(Exception):
    """A camera failed, timed out or returned a corrupt frame; the session fails with this reason."""
