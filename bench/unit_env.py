"""The environment the systemd unit gives the daemon, so benchmarks run it as a booth does."""

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
