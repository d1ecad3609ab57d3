"""The local HTTP API: the Vision Grader contract served by the booth, plus the booth's endpoints."""

from edge.api.app import create_app
from edge.api.server import ApiServer

__all__ = ["ApiServer", "create_app"]
