"""Prometheus metrics of one API app, in a registry of its own (tests build several apps)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.spool.db import Database
from edge.spool.sessions import SessionRecord, SessionStore
from edge.status import StatusBoard

# StatusBoard keys ending in this are outbox depths (mqtt_outbox_depth, cloud_outbox_depth, ...).
OUTBOX_SUFFIX = "_outbox_depth"
CLOUD_KEY = "cloud"
# Grading on a Pi takes from about a second to tens of seconds; capture adds a few more.
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)


class _StateCollector(Collector):
    """Values read at scrape time: stored sessions by status, outbox depths, disk free."""

    def __init__(self, store: SessionStore, status: StatusBoard) -> None:
        self._store = store
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stored = GaugeMetricFamily(
            "edge_grader_sessions_stored", "Sessions in the spool by status", labels=["status"]
        )
        for status, count in sorted(self._store.count_by_status().items()):
            stored.add_metric([status], count)
        yield stored

        depths = GaugeMetricFamily(
            "edge_grader_outbox_depth", "Results waiting in an outbox", labels=["outbox"]
        )
        # Only the outbox probes run: the sessions and disk figures are read here, once.
        for key, value in sorted(self._status.snapshot(only=lambda k: k.endswith(OUTBOX_SUFFIX)).items()):
            if isinstance(value, int | float):
                depths.add_metric([key.removesuffix(OUTBOX_SUFFIX)], value)
        yield depths

        cloud = self._status.snapshot(only=lambda k: k == CLOUD_KEY).get(CLOUD_KEY)
        if isinstance(cloud, dict) and isinstance(cloud.get("process_resends"), int):
            yield GaugeMetricFamily(
                "edge_grader_cloud_process_resends",
                "Cloud process calls sent again after one got no answer (each may be a copy in the cloud)",
                value=cloud["process_resends"],
            )

        usage = shutil.disk_usage(self._store.images_root)
        yield GaugeMetricFamily(
            "edge_grader_disk_free_bytes", "Free bytes on the spool's file system", value=usage.free
        )


class ApiMetrics:
    """Built before the session store: ``session_finished`` is one of its ``on_session_finished`` hooks."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.registry = CollectorRegistry()
        self.sessions = Counter(
            "edge_grader_sessions_finished",
            "Sessions finished since start, by outcome and source",
            ["outcome", "source"],
            registry=self.registry,
        )
        self.grading = Histogram(
            "edge_grader_grading_seconds",
            "Grading time of a finished session (the model's timings_ms total)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.process = Histogram(
            "edge_grader_api_process_seconds",
            "POST /api/process answer time, grading included",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.uploads = Counter(
            "edge_grader_api_uploads", "Images accepted by POST /api/upload", registry=self.registry
        )
        self.upload_bytes = Counter(
            "edge_grader_api_upload_bytes", "Bytes accepted by POST /api/upload", registry=self.registry
        )

    def read_state_from(self, store: SessionStore, status: StatusBoard) -> None:
        """Scrapes also read the stored sessions, outbox depths and free disk (the API app calls this once)."""
        self.registry.register(_StateCollector(store, status))

    def session_finished(self, conn: sqlite3.Connection, record: SessionRecord) -> None:
        """An ``on_session_finished`` hook: counted once the session's transaction commits."""
        self.db.after_commit(lambda: self._count(record))

    def _count(self, record: SessionRecord) -> None:
        self.sessions.labels(record.status, record.source).inc()
        timings = (record.result or {}).get("timings_ms") or {}
        total_ms = timings.get("total")
        if isinstance(total_ms, int | float):
            self.grading.observe(total_ms / 1000)
