"""`edge-grader cloud-sim` / `python -m edge.cloudsim`: the simulator in the foreground.

Faults are set while it runs through its admin routes, e.g.::

    curl -X POST localhost:8090/_sim/faults -H 'content-type: application/json' \\
         -d '{"kind": "error", "status": 429, "retry_after_s": 5, "count": 3}'
    curl -X POST localhost:8090/_sim/refuse -H 'content-type: application/json' -d '{"seconds": 30}'
    curl localhost:8090/_sim/stats
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from edge.cloudsim.server import CloudSim
from edge.config.secrets import resolve_secret
from edge.daemon.signals import stop_on_signals

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8090


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--key", required=True, help='the accepted API key: a value, "env:NAME" or "credential:NAME"'
    )
    parser.add_argument("--storage", type=Path, help="folder for uploads and the database (default: a temp folder)")
    parser.add_argument("--public-url", help="base of the image URLs it issues (default http://HOST:PORT)")


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        key = str(resolve_secret(args.key))
    except ValueError as exc:
        logger.error("--key: %s", exc)
        return 2
    with tempfile.TemporaryDirectory(prefix="cloud-sim-") as scratch:
        storage = args.storage or Path(scratch)
        storage.mkdir(parents=True, exist_ok=True)
        sim = CloudSim(storage, key, host=args.host, port=args.port, public_url=args.public_url)
        stop = stop_on_signals()
        try:
            sim.start()
        except (OSError, RuntimeError) as exc:
            logger.error("cannot start the cloud simulator: %s", exc)
            return 1
        logger.info("cloud simulator ready at %s (storage %s)", sim.base_url, storage)
        stop.wait()
        sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.cloudsim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
