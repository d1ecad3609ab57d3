"""Capped exponential backoff with jitter: the one retry delay of the daemon (outbox, workers)."""

from __future__ import annotations

import random


def backoff_delay(failures: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Between half and all of min(cap, base·2^(n-1)) ("equal jitter").

    The floor of half keeps retries from bunching into a tight loop; the jitter keeps booths that
    lost the same uplink from retrying in step.
    """
    delay = min(cap_s, base_s * 2 ** max(0, failures - 1))
    return delay * (0.5 + 0.5 * (rng or random).random())
