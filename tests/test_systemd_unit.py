from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.booth_support import REPO

UNIT = REPO / "systemd" / "edge-grader.service"
# The issue asks for 3.0 or lower; the unit scores 1.7, and a regression past 2.0 should show.
MAX_EXPOSURE = 2.0


@pytest.fixture
def analyzable_unit(tmp_path: Path) -> Path:
    """The unit with its binary paths pointed at files that exist here, as on an installed booth."""
    assert shutil.which("systemd-analyze"), "systemd-analyze missing: run tools/setup.sh"
    text = UNIT.read_text().replace("/opt/edge-grader/.venv/bin/edge-grader", shutil.which("true") or "/bin/true")
    path = tmp_path / "edge-grader.service"
    path.write_text(text)
    return path


def test_the_unit_file_passes_systemd_analyze_verify(analyzable_unit: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(analyzable_unit)], capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if "edge-grader.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_security_exposure_is_low(analyzable_unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(analyzable_unit)], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_unit_is_notify_with_watchdog_and_keeps_devices_visible() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StartLimitIntervalSec=0",  # never left failed: an unattended booth keeps trying
        "StateDirectory=edge-grader",
        "SupplementaryGroups=video gpio",
        "LoadCredential=cloud-api-key",
        "ProtectSystem=strict",
    ):
        assert line in text
    assert "PrivateDevices=yes" not in text
