"""`edge-grader run`: one process, ready only when cameras and model are up, clean stop on SIGTERM.

The watchdog pings systemd only while every worker of the daemon is alive (and no session is
stuck): a dead API server, MQTT or cloud worker gets the booth restarted, as a stuck session does.
"""

from __future__ import annotations

import logging
import threading

from edge.config.root import AppConfig
from edge.daemon.notify import Notifier, watchdog_interval_s
from edge.daemon.signals import stop_on_signals
from edge.daemon.wiring import Daemon, build

logger = logging.getLogger(__name__)

DEFAULT_TICK_S = 5.0


def run(config: AppConfig) -> int:
    notifier = Notifier()
    stop = stop_on_signals()
    daemon = build(config)
    try:
        daemon.start()
        info = daemon.booth.grader.info
        notifier.ready(f"ready: booth {config.booth.id}, model {info.name} {info.version}")
        logger.info("booth %s ready", config.booth.id)
        _main_loop(daemon, notifier, stop)
    finally:
        notifier.stopping("stopping")
        daemon.stop()
        daemon.close()
        notifier.close()
    logger.info("booth %s stopped", config.booth.id)
    return 0


def watchdog_tick(daemon: Daemon, notifier: Notifier, was_down: list[str]) -> list[str]:
    """Ping systemd's watchdog only while every worker is alive; the workers that are down."""
    down = daemon.down()
    if not down:
        notifier.watchdog()
    elif down != was_down:
        logger.error("booth unhealthy: %s down; watchdog pings withheld", ", ".join(down))
    return down


def _main_loop(daemon: Daemon, notifier: Notifier, stop: threading.Event) -> None:
    tick = min(watchdog_interval_s() or DEFAULT_TICK_S, DEFAULT_TICK_S)
    last_status = ""
    was_down: list[str] = []
    while not stop.wait(tick):
        was_down = watchdog_tick(daemon, notifier, was_down)
        # Only the two values systemd shows: a full snapshot would run every probe (queries) each tick.
        snapshot = daemon.status.snapshot(only=lambda key: key in ("activity", "disk_free_mb"))
        status = f"{snapshot.get('activity')}; disk free {snapshot.get('disk_free_mb')} MB"
        if was_down:
            status = f"{', '.join(was_down)} down; {status}"
        if status != last_status:
            notifier.status(status)
            last_status = status
