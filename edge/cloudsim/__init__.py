"""A Vision Grader cloud simulator: the upload/process contract on loopback, with fault injection."""

from edge.cloudsim.faults import FaultRule
from edge.cloudsim.server import CloudSim

__all__ = ["CloudSim", "FaultRule"]
