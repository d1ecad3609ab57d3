"""`edge-grader trigger --wait` whose daemon dies while it waits: the session id and a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.booth_support import REPO, VALID_IMEI, DaemonProcess, db_rows, wait_for, write_config

# Sixteen lit shots, each 2 s of light settling: the session is still capturing when the daemon is killed.
SLOW_RIG = "\n[lights.ring]\npin = 27\nsettle_s = 2\n"


def test_trigger_wait_prints_the_session_id_and_an_error_when_the_daemon_dies(
    tmp_path: Path, booth_images: Path
) -> None:
    config = write_config(tmp_path / "cfg", booth_images, shots=16, extra=SLOW_RIG)
    config.write_text(config.read_text().replace("shots = 16\n", 'shots = 16\nlights = ["ring"]\n'))
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_ready()
        waiting = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "trigger", "--imei", VALID_IMEI, "--wait", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        state = tmp_path / "cfg" / "state"
        # A first photo stored (after 2 s of light): the daemon answered the session id long before.
        session_id = wait_for(lambda: db_rows(state, "SELECT session_id FROM images"))[0][0]
        daemon.kill()
        out, err = waiting.communicate(timeout=120)
    finally:
        daemon.stop()
    assert waiting.returncode == 1, out + err
    assert json.loads(out) == {
        "sessionId": session_id,
        "error": "the booth daemon stopped before it answered (is it still running?)",
    }
    assert err == "error: the booth daemon stopped before it answered (is it still running?)\n"
