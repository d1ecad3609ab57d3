"""The daemon's parts, built in one place, each given what it needs.

Nothing registers itself with another part: the one list of what happens when a session
finishes (``on_session_finished``), the event sinks, the status probes and the retention sweepers
are all declared here. ``Daemon.start`` starts the parts in order and ``stop`` stops them in the
reverse order, before the database closes; ``Daemon.workers`` lists every long-lived thread for
the watchdog.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edge.api.metrics import ApiMetrics
from edge.api.uploads import LINKING_GRACE_S, UploadStore
from edge.capture.rig import CaptureRig
from edge.config.root import AppConfig
from edge.daemon.booth import Booth
from edge.daemon.technician import LastError, TechnicianDesk
from edge.events import EventBus
from edge.grade.pipeline import Grader
from edge.mirror import CloudMirror, CloudQueue, cloud_channel
from edge.mirror.channel import CHANNEL as CLOUD
from edge.mirror.channel import DEPTH_KEY as CLOUD_DEPTH_KEY
from edge.mirror.client import CloudClient
from edge.publish import MqttResults, MqttService, mqtt_channel
from edge.publish.publisher import CHANNEL as MQTT
from edge.publish.publisher import CONNECTED_KEY as MQTT_CONNECTED_KEY
from edge.publish.publisher import DEPTH_KEY as MQTT_DEPTH_KEY
from edge.spool.db import Database
from edge.spool.outbox import Outbox
from edge.spool.reserve import DiskReserve
from edge.spool.retention import Retention
from edge.spool.sessions import FinishedHook, SessionStore
from edge.status import StatusBoard
from edge.trigger.control import ControlSocket
from edge.trigger.gpio import GpioTriggers
from edge.worker import Worker

logger = logging.getLogger(__name__)

WORKERS_KEY = "workers"


class Part(Protocol):
    """What the daemon starts and stops; ``workers`` are its long-lived threads (for the watchdog)."""

    @property
    def workers(self) -> list[Worker]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def control_socket_path(config: AppConfig) -> Path:
    return config.triggers.control_socket or config.booth.state_dir / "control.sock"


@dataclass
class Daemon:
    config: AppConfig
    db: Database
    status: StatusBoard
    events: EventBus
    outbox: Outbox
    store: SessionStore
    retention: Retention
    uploads: UploadStore
    metrics: ApiMetrics
    booth: Booth
    mirror: CloudMirror
    mqtt: MqttService | None
    desk: TechnicianDesk
    parts: list[Part]
    started: list[Part] = field(default_factory=list)

    def workers(self) -> list[Worker]:
        """Every long-lived thread of the daemon, in start order."""
        return [self.booth.worker, *(worker for part in self.started for worker in part.workers)]

    def down(self) -> list[str]:
        """The workers that are not alive (the session worker also when a session is stuck), by name,
        and the cameras wedged in a driver call (``camera-<name>``)."""
        down = [w.name for w in self.workers() if not (self.booth.alive() if w is self.booth.worker else w.alive())]
        return down + [f"camera-{name}" for name in self.booth.rig.wedged()]

    def start(self) -> None:
        logging.getLogger().addHandler(self.desk.last_error)
        self.booth.start()
        self.started.append(_BoothPart(self.booth))
        for part in self.parts:
            part.start()
            self.started.append(part)

    def stop(self) -> None:
        while self.started:
            part = self.started.pop()
            try:
                part.stop()
            except Exception:
                logger.exception("%s did not stop cleanly", type(part).__name__)
        logging.getLogger().removeHandler(self.desk.last_error)

    def close(self) -> None:
        self.db.close()


@dataclass
class _BoothPart:
    booth: Booth

    @property
    def workers(self) -> list[Worker]:
        return []  # listed first by Daemon.workers, started or not

    def start(self) -> None:
        self.booth.start()

    def stop(self) -> None:
        self.booth.stop()


def _worker_states(daemon: Daemon) -> dict[str, str]:
    """Each worker alive or down, and a wedged camera's thread as down."""
    down = daemon.down()
    states = {w.name: "down" if w.name in down else "alive" for w in daemon.workers()}
    return states | {name: "down" for name in down if name not in states}


def build(
    config: AppConfig,
    grader: Grader | None = None,
    rig: CaptureRig | None = None,
    cloud_client: CloudClient | None = None,
) -> Daemon:
    state = config.booth.state_dir
    state.mkdir(parents=True, exist_ok=True)
    # A restart into a full disk must come up (and refuse sessions), not fail to open the spool.
    reserve = DiskReserve(state / "disk.reserve", config.storage.reserve_mb)
    reserve.release_if_short()
    db = Database(state / "spool.db")
    mqtt_wake = threading.Event()
    status = StatusBoard(on_change=mqtt_wake.set)
    events = EventBus(config.booth.id)
    outbox = Outbox(db, events, [mqtt_channel(config.mqtt, mqtt_wake), cloud_channel(config.cloud, threading.Event())])
    mqtt_results = MqttResults(outbox, config.booth.id)
    metrics = ApiMetrics(db)
    cloud_queue = CloudQueue(db, outbox, enabled=CloudMirror.wanted(config.cloud))
    # The one list of what happens, in the transaction that stores it, when a session finishes,
    # and when a technician decides a review (the cloud's contract has no way to take that).
    on_session_finished = [metrics.session_finished, cloud_queue.enqueue]
    on_reviewed: list[FinishedHook] = []
    if config.mqtt.enabled:
        on_session_finished.append(mqtt_results.enqueue_result)
        on_reviewed.append(mqtt_results.enqueue_result)
    store = SessionStore(db, state / "images", on_finished=on_session_finished, on_reviewed=on_reviewed)
    store.journal.recover()
    uploads = UploadStore(db, store.images_root, store.journal)
    upload_ttl_s = config.storage.upload_ttl_h * 3600
    retention = Retention(
        store,
        config.storage,
        events,
        outbox,
        store.journal,
        sweepers=[lambda now: uploads.expire(now - upload_ttl_s)],
        first_in_emergency=[lambda now: uploads.expire(now - LINKING_GRACE_S)],
    )
    mirror = CloudMirror(
        config.cloud,
        cloud_queue,
        store,
        events,
        status,
        on_cloud_result=mqtt_results.enqueue_cloud if config.mqtt.enabled else None,
        client=cloud_client,
    )
    booth = Booth(
        config,
        store,
        events,
        status,
        retention,
        grader or Grader(config.model, config.grading),
        rig or CaptureRig(config),
        reserve,
        wait_for_cloud=mirror.wait_for_cloud,
    )
    desk = TechnicianDesk(config, store, outbox, events, status, booth.rig, booth.grading, LastError())
    events.subscribe(desk.recent)
    parts: list[Part] = [retention, ControlSocket(booth, control_socket_path(config))]
    if config.triggers.button or config.triggers.drawer:
        parts.append(GpioTriggers(config.triggers, booth.trigger_armed))
    mqtt = None
    if config.mqtt.enabled:
        mqtt = MqttService(config.mqtt, config.booth.id, outbox, status, trigger=booth.trigger, arm=booth.arm)
        events.subscribe(mqtt.on_event)
        parts.append(mqtt)
    parts.append(mirror)
    if config.api.enabled:
        from edge.api.server import ApiServer

        metrics.read_state_from(store, status)
        parts.append(ApiServer(booth, uploads, metrics, desk))
    daemon = Daemon(
        config, db, status, events, outbox, store, retention, uploads, metrics, booth, mirror, mqtt, desk, parts
    )
    status.probe("disk_free_mb", lambda: round(retention.free_mb(), 1))
    status.probe("disk_problem", booth.disk_problem)
    status.probe("cameras", lambda: dict(booth.rig.camera_state))
    status.probe("sessions", store.count_by_status)
    status.probe(MQTT_DEPTH_KEY, lambda: outbox.depth(MQTT))
    status.probe(CLOUD_DEPTH_KEY, lambda: outbox.depth(CLOUD))
    status.probe(MQTT_CONNECTED_KEY, lambda: mqtt is not None and mqtt.connected)
    status.probe(WORKERS_KEY, lambda: _worker_states(daemon))

    return daemon
