"""`edge-grader run`: one process, ready only when cameras and model are up, clean stop on SIGTERM."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Protocol

from edge.config.root import AppConfig
from edge.daemon.booth import Booth
from edge.daemon.notify import Notifier, watchdog_interval_s
from edge.daemon.signals import stop_on_signals
from edge.trigger.control import ControlSocket
from edge.trigger.gpio import GpioTriggers

logger = logging.getLogger(__name__)

DEFAULT_TICK_S = 5.0


class Component(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def control_socket_path(config: AppConfig) -> Path:
    return config.triggers.control_socket or config.booth.state_dir / "control.sock"


def build_components(booth: Booth) -> list[Component]:
    config = booth.config
    components: list[Component] = [ControlSocket(booth, control_socket_path(config))]
    if config.triggers.button or config.triggers.drawer:
        components.append(GpioTriggers(config.triggers, booth.trigger_armed))
    mqtt = None
    if config.mqtt.enabled:
        from edge.publish import MqttService

        # Built before the booth starts: recovered sessions must find the outbox hook in place.
        mqtt = MqttService.for_booth(booth)
        components.append(mqtt)
    from edge.mirror import CloudMirror

    # Always built: with mode "off" or no key it stays idle and the state says why.
    components.append(CloudMirror.from_booth(booth, on_cloud_result=mqtt.publish_cloud_result if mqtt else None))
    if config.api.enabled:
        from edge.api import ApiServer

        components.append(ApiServer(booth))
    return components


def run(config: AppConfig) -> int:
    notifier = Notifier()
    stop = stop_on_signals()

    booth = Booth(config)
    components = build_components(booth)
    started: list[Component] = []
    try:
        booth.start()
        for component in components:
            component.start()
            started.append(component)
        notifier.ready(f"ready: booth {config.booth.id}, model {booth.grader.info.name} {booth.grader.info.version}")
        logger.info("booth %s ready", config.booth.id)
        _main_loop(booth, notifier, stop)
    finally:
        notifier.stopping("stopping")
        booth.stop()
        for component in reversed(started):
            try:
                component.stop()
            except Exception:
                logger.exception("component %s did not stop cleanly", type(component).__name__)
        booth.close()
        notifier.close()
    logger.info("booth %s stopped", config.booth.id)
    return 0


def _main_loop(booth: Booth, notifier: Notifier, stop: threading.Event) -> None:
    tick = min(watchdog_interval_s() or DEFAULT_TICK_S, DEFAULT_TICK_S)
    sweep_every = booth.config.storage.sweep_interval_s
    next_sweep = 0.0
    last_status = ""
    was_healthy = True
    while not stop.wait(tick):
        healthy = booth.healthy()
        if healthy:
            # Pinging only while healthy lets systemd restart a booth whose worker is stuck.
            notifier.watchdog()
        elif was_healthy:
            logger.error("booth unhealthy: session worker stuck or dead; watchdog pings withheld")
        was_healthy = healthy
        # Only the two values systemd shows: a full snapshot would run every probe (queries) each tick.
        snapshot = booth.status.snapshot(only=lambda key: key in ("activity", "disk_free_mb"))
        status = f"{snapshot.get('activity')}; disk free {snapshot.get('disk_free_mb')} MB"
        if status != last_status:
            notifier.status(status)
            last_status = status
        if time.monotonic() >= next_sweep:
            try:
                booth.retention.sweep()
            except Exception:
                logger.exception("retention sweep failed")
            next_sweep = time.monotonic() + sweep_every
