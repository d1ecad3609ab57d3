"""The model's fixed geometry and labels, shared by data making, export and evaluation."""

from __future__ import annotations

from edge.contract import DEFECT_KINDS

LABELS = ("none", *DEFECT_KINDS)
CANON_W, CANON_H = 768, 1536  # canonical upright crop fed to the model, in pixels
STRIDE = 16  # one output cell per 16x16 input pixels
MARGIN = 0.03  # the crop extends this fraction of the device beyond its outline on each side
NOMINAL_LENGTH_MM = 150.0  # device length assumed when a camera has no calibration
PATCH = 256  # training patch side; the network is fully convolutional
# A cell takes a class when the class covers at least this fraction of it; a cell that a defect
# only grazes is left out of the loss rather than called clean.
LABEL_FRACTION = 0.04
IGNORE_FRACTION = 0.004
IGNORE = 255
