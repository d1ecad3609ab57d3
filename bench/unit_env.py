"""What the systemd unit gives the daemon (its environment, its memory limit), so benchmarks run
and judge it as a booth does."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "edge-grader.service"


def unit_environment() -> dict[str, str]:
    """Every ``Environment=NAME=value`` line of the unit (glibc's malloc settings among them)."""
    env = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value
    return env


def unit_memory_max_mb() -> int:
    """The unit's ``MemoryMax=`` in MB (a number with K, M, G or T, as systemd writes it)."""
    for line in UNIT.read_text().splitlines():
        if line.startswith("MemoryMax="):
            value = line.removeprefix("MemoryMax=").strip()
            scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
            return round(float(value[:-1]) * scale[value[-1].upper()])
    raise ValueError(f"{UNIT.name} sets no MemoryMax=")
