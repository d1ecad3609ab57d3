"""The Vision Grader cloud mirror: contract client, the outbox's cloud channel, its worker."""

from edge.mirror.channel import CloudQueue, cloud_channel
from edge.mirror.worker import CloudMirror

__all__ = ["CloudMirror", "CloudQueue", "cloud_channel"]
