"""Synthetic booth photos with ground truth, for training, tests, benchmarks and demos."""

from edge.synth.defects import DefectTruth
from edge.synth.scene import Render, render_scene

__all__ = ["DefectTruth", "Render", "render_scene"]
