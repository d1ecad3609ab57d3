"""A wall clock a test can set, as NTP or a technician sets a booth's: the real time plus a step."""

from __future__ import annotations

import time


class SteppedClock:
    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s

    def step(self, seconds: float) -> None:
        self.offset_s += seconds
