"""The Vision Grader cloud mirror: contract client, persistent outbox, sender thread."""

from edge.mirror.worker import CloudMirror

__all__ = ["CloudMirror"]
