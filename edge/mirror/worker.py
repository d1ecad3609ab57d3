"""The mirror's worker: drains the outbox's cloud channel, one request at a time, patiently.

Failure policy (the outbox keeps everything, so waiting costs nothing but time):
- no connection: the cloud is unreachable; every session waits (capped exponential backoff with
  jitter), none is charged for it, since nothing was sent;
- 5xx, 408, a timeout or a dropped connection after sending: the session is charged (its own
  backoff, so one poison session never blocks the rest) and the whole sender backs off too;
- 429 and 503 with ``Retry-After``: nothing is sent before that time;
- any other 4xx, or an answer that does not fit the contract: the session is dead-lettered with
  the cloud's words and a ``dead_lettered`` event; the rest go on. Sessions refused for their key
  go back in line on a start with a different key.
Reachability comes only from these real outcomes; there is no separate probe traffic.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from typing import Any, Literal

from pydantic import ValidationError

from edge.backoff import backoff_delay
from edge.config.cloud import CloudConfig
from edge.contract import ImageRef
from edge.events import EventBus
from edge.imei import mask_imei, mask_imeis_in
from edge.mirror.channel import CHANNEL, CloudJob, CloudQueue, CloudResultHook, OutboxImage, key_fingerprint
from edge.mirror.client import CloudClient, CloudContractError, CloudHttpError, CloudTransportError
from edge.spool.sessions import SessionStore
from edge.status import StatusBoard
from edge.timefmt import utc_iso
from edge.worker import Worker

logger = logging.getLogger(__name__)

STATUS_KEY = "cloud"
IDLE_WAIT_S = 60.0
STOP_WAIT_S = 5.0
MB = 1_000_000
AUTH_STATUSES = (401, 403)
RETRYABLE_4XX = frozenset({408})
RATE_LIMITED = frozenset({429, 503})

Reachability = Literal["unknown", "reachable", "unreachable"]


class _ImageUnusableError(Exception):
    """The spooled photo is gone or damaged: no retry can help."""


def redact(text: str, imei: str) -> str:
    """Errors may quote the IMEI (or a URL holding it); they go to logs, events and the state topic."""
    return mask_imeis_in(text.replace(imei, mask_imei(imei)))



class CloudMirror:
    """The cloud channel's worker; with mode "off" or no key it stays idle and the state says why."""

    def __init__(
        self,
        config: CloudConfig,
        queue: CloudQueue,
        store: SessionStore,
        events: EventBus,
        status: StatusBoard,
        on_cloud_result: CloudResultHook | None = None,
        client: CloudClient | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.store = store
        self.outbox = queue.outbox
        self.events = events
        self.status = status
        self._key = config.api_key.get_secret_value() if config.api_key is not None else None
        self.active = queue.enabled
        self._on_cloud_result = on_cloud_result
        self._client = client
        self.worker = Worker("cloud-mirror", self._step, wake=self.outbox.channels[CHANNEL].wake)
        self._cond = threading.Condition()
        self._wanted: set[str] = set()
        self._rng = random.Random()
        # Sender-wide failure streak and pause (cloud down, rate limited); per-session state is in SQLite.
        # The pause is on the monotonic clock: the wall clock may be stepped while it lasts.
        self._streak = 0
        self._streak_started = 0.0
        self._paused_until = 0.0
        self._reachability: Reachability = "unknown"
        self._last_error: str | None = None
        self.requests = 0
        self._publish_status()

    @staticmethod
    def wanted(config: CloudConfig) -> bool:
        """Whether sessions are queued for the cloud at all."""
        return config.mode != "off" and config.api_key is not None and bool(config.api_key.get_secret_value())

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def workers(self) -> list[Worker]:
        """Its one worker, while the mirror is on."""
        return [self.worker] if self.active else []

    def start(self) -> None:
        if not self.active:
            logger.warning("cloud mirror is off (%s): sessions are not sent to the cloud", self._off_reason())
            return
        assert self._key is not None
        requeued = self.outbox.requeue_dead(CHANNEL, AUTH_STATUSES, key_fingerprint(self._key))
        if requeued:
            logger.info("cloud key changed: %d sessions refused for the old key are queued again", requeued)
        if self._client is None:
            self._client = CloudClient(self.config)
        self.worker.start()
        logger.info("cloud mirror started (%s, %d sessions waiting)", self.config.mode, self.queue.depth())
        self._publish_status()

    def stop(self) -> None:
        """Stop sending; a request in flight is abandoned (the outbox retries it on the next start)."""
        stopped = self.worker.stop(STOP_WAIT_S)
        if self._client is not None:
            # Closing the client cuts a request still in flight, so the worker ends before SQLite closes.
            self._client.close()
            self._client = None
        if not stopped and not self.worker.stop(STOP_WAIT_S):
            logger.warning("cloud mirror did not stop; its request in flight is retried on the next start")

    # -- for the local API (prefer-cloud) -----------------------------------------------------------

    def wait_for_cloud(self, session_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The cloud's stored answer for this session, waiting up to ``timeout_s``; None if not in time.

        The session jumps the queue while someone waits for it.
        """
        if not self.active:
            return None
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._wanted.add(session_id)
        self.worker.wake()
        try:
            with self._cond:
                while True:
                    record = self.store.get(session_id)
                    if record is None:
                        return None
                    if record.cloud is not None:
                        return record.cloud
                    if self.queue.state_of(session_id) != "pending":
                        return None
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
        finally:
            with self._cond:
                self._wanted.discard(session_id)

    # -- the worker ---------------------------------------------------------------------------------

    def _step(self) -> float:
        """One round: mirror the oldest due session, or say how long to wait for the next one."""
        self._publish_status()
        paused = self._pause_left()
        if paused > 0:
            return paused
        with self._cond:
            wanted = frozenset(self._wanted)
        job = self.queue.next_job(wanted)
        if job is None:
            due = self.outbox.seconds_to_next_due(CHANNEL)
            return IDLE_WAIT_S if due is None else max(0.05, min(due, IDLE_WAIT_S))
        try:
            self._mirror(job)
        except Exception as exc:
            # A bug or a broken spool must not spin: charge the session like a server error.
            logger.exception("cloud mirror failed on session %s", job.session_id)
            self._failed(job, None, f"internal error: {type(exc).__name__}", charge=True, reach=None)
        return 0.0

    def _mirror(self, job: CloudJob) -> None:
        assert self._client is not None and self._key is not None
        try:
            uploads = []
            size = 0
            for image in job.images:
                if image.upload is None:
                    if self.worker.stopping:
                        return
                    data = self._read(image)
                    self.queue.count_upload_send(image.image_id)
                    self.requests += 1
                    answer = self._client.upload(data, image.filename, image.section, job.imei)
                    self.queue.store_upload(image.image_id, answer)
                    self._reached()
                    uploads.append(ImageRef(url=answer.url, section=answer.section))
                    size += len(data)
                else:
                    uploads.append(ImageRef(url=image.upload.url, section=image.upload.section))
                    size += image.upload.size or 0  # an answer without a size adds no time
            if self.worker.stopping:
                return
            sent = self.outbox.sends(job.row_id)
            if sent >= self.config.process_max_sends:
                self._dead_letter(job, None, f"process sent {sent} times without an answer; not sent again, "
                                  "so the cloud holds no more copies of this session")
                return
            if sent:
                logger.warning("cloud process for session %s sent again (%d of at most %d)",
                               job.session_id, sent + 1, self.config.process_max_sends)
            self.outbox.count_send(job.row_id)
            self.requests += 1
            result = self._client.process(self._key, job.imei, uploads, self._read_timeout(len(uploads), size))
            payload = self.queue.store_result(self.store, job, result, self._on_cloud_result)
        except CloudTransportError as exc:
            if exc.sent:
                # Sent, no answer (a timeout, a dropped connection): this session backs off on its own,
                # and is not pulled forward when the cloud answers others (each resend may be a copy).
                self.outbox.retry(job.row_id, None, redact(str(exc), job.imei))
                logger.warning("cloud request for session %s got no answer (%s); it backs off",
                               job.session_id, redact(str(exc), job.imei))
                return
            # Not sent at all: the uplink is down, not this session's fault.
            self._failed(job, None, str(exc), charge=False, reach="unreachable")
            return
        except CloudHttpError as exc:
            self._http_failed(job, exc)
            return
        except CloudContractError as exc:
            logger.warning("cloud answer for session %s kept for diagnosis: %s", job.session_id,
                           redact(exc.body, job.imei))
            self._reached()
            self._dead_letter(job, exc.status, str(exc))
            return
        except _ImageUnusableError as exc:
            self._dead_letter(job, None, str(exc))
            return
        except ValidationError as exc:
            # Our own request does not fit the contract (say, more images than it allows): no retry helps.
            self._dead_letter(job, None, f"request does not fit the contract: {exc.errors()[0]['msg']}")
            return
        self._reached()
        with self._cond:
            self._cond.notify_all()
        differences = {name: row["difference"] for name, row in payload["comparison"].items()}
        logger.info("session %s mirrored as cloud session %s (score differences %s)",
                    job.session_id, result.sessionId, differences)
        self.events.emit(
            "mirrored",
            session_id=job.session_id,
            cloud_session_id=result.sessionId,
            score_difference=differences,
            max_abs_difference=payload["max_abs_difference"],
        )

    def _read_timeout(self, images: int, size: int) -> float:
        """The process call's read timeout: the cloud grades every image before it answers."""
        per_image, per_mb = self.config.read_timeout_per_image_s, self.config.read_timeout_per_mb_s
        return self.config.read_timeout_s + images * per_image + size / MB * per_mb

    def _http_failed(self, job: CloudJob, exc: CloudHttpError) -> None:
        status = exc.status
        if status in RATE_LIMITED and exc.retry_after_s is not None:
            self._count_failure(self.outbox.clock())
            self._last_error = redact(str(exc), job.imei)
            self._reachability = "reachable" if status == 429 else "unreachable"
            # Not this session's fault: not charged, but nothing goes out before the cloud said.
            wait = self.outbox.retry(
                job.row_id, status, self._last_error, charge=False, retry_after_s=exc.retry_after_s
            )
            self._paused_until = time.monotonic() + wait
            logger.warning("cloud says %s; next request in %.0f s (Retry-After)", self._last_error, wait)
        elif status >= 500 or status in RETRYABLE_4XX:
            self._failed(job, status, str(exc), charge=True, reach="unreachable")
        elif status == 429:
            self._failed(job, status, str(exc), charge=False, reach="reachable")
        else:
            self._reached()
            self._dead_letter(job, status, str(exc))

    def _failed(
        self, job: CloudJob, status: int | None, error: str, charge: bool, reach: Reachability | None
    ) -> None:
        error = redact(error, job.imei)
        self._count_failure(self.outbox.clock())
        wait = backoff_delay(self._streak, self.config.backoff_base_s, self.config.backoff_cap_s, self._rng)
        self._paused_until = time.monotonic() + wait
        if reach is not None:
            self._reachability = reach
        self._last_error = error
        self.outbox.retry(job.row_id, status, error, charge=charge)
        logger.warning("cloud request for session %s failed (%s); retrying in %.1f s", job.session_id, error, wait)

    def _pause_left(self) -> float:
        return self._paused_until - time.monotonic()

    def _count_failure(self, now: float) -> None:
        if self._streak == 0:
            self._streak_started = now
        self._streak += 1

    def _reached(self) -> None:
        """A usable answer: the cloud is up; after an outage, sessions charged during it go now."""
        if self._streak >= 2:
            pulled = self.outbox.retry_now_failed_since(CHANNEL, self._streak_started)
            if pulled:
                logger.info("cloud reachable again; %d sessions retried now", pulled)
        self._streak = 0
        self._paused_until = 0.0
        self._reachability = "reachable"
        self._last_error = None

    def _dead_letter(self, job: CloudJob, status: int | None, error: str) -> None:
        error = redact(error, job.imei)
        refused_key = key_fingerprint(self._key) if status in AUTH_STATUSES and self._key else None
        self.outbox.dead(job.row_id, status, error, failed_under=refused_key)
        with self._cond:
            self._cond.notify_all()
        logger.error("session %s dead-lettered by the cloud mirror: %s", job.session_id, error)
        self.events.emit("dead_lettered", session_id=job.session_id, status=status, error=error)

    def _read(self, image: OutboxImage) -> bytes:
        try:
            data = (self.store.images_root / image.path).read_bytes()
        except FileNotFoundError:
            raise _ImageUnusableError(
                f"{image.section} photo {image.image_id} is no longer on disk (disk emergency?)"
            ) from None
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise _ImageUnusableError(f"{image.section} photo {image.image_id} is damaged (bad checksum)")
        return data

    def _off_reason(self) -> str:
        return "mode = off" if self.config.mode == "off" else "no cloud.api_key configured"

    def _publish_status(self) -> None:
        if not self.active:
            self.status.set(STATUS_KEY, {"mode": "off", "reason": self._off_reason()})
            return
        counts = self.queue.counts()
        paused = self._pause_left()
        self.status.set(STATUS_KEY, {
            "mode": self.config.mode,
            "reachability": self._reachability,
            "last_error": self._last_error,
            "retry_at": utc_iso(time.time() + paused) if paused > 0 else None,
            "outbox_depth": counts.get("pending", 0),
            "mirrored": counts.get("done", 0),
            "dead_letters": counts.get("dead", 0),
            "dropped": counts.get("dropped", 0),
            "process_resends": self.queue.process_resends(),
        })
