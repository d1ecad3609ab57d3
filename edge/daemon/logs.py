"""One line per event on stdout; journald adds the time stamp when running under systemd."""

from __future__ import annotations

import logging
import os
import sys

from edge.imei import mask_imeis_in


class LineFormatter(logging.Formatter):
    """One line per event, IMEIs masked.

    journald makes an entry of every line it reads, so a traceback is folded into its event's line
    (`` | `` between its lines) rather than scattered over entries of its own. Masking is the last
    line of defence: any 15-digit run (message or traceback) is masked, since image paths hold the
    IMEI (``<imei>/<section>/...``) and an OSError's text names its path.
    """

    def format(self, record: logging.LogRecord) -> str:
        return mask_imeis_in(super().format(record)).replace("\n", " | ")


def setup_logging(level: str) -> None:
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LineFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request access lines and client chatter would drown the booth's own events.
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
