"""uvicorn in a thread of the daemon process: one process, start()/stop() like every component."""

from __future__ import annotations

import logging

import uvicorn

from edge.api.app import BoothApi, create_app
from edge.api.metrics import ApiMetrics
from edge.api.technician import Desk
from edge.api.uploads import UploadStore
from edge.config.secrets import present
from edge.serve import Served, is_loopback, serve_in_thread
from edge.worker import Worker

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
GRACEFUL_SHUTDOWN_S = 5


class ApiServer:
    """The local API on ``config.api.host:port``; ``port`` is the bound one (config port 0 picks one)."""

    def __init__(self, booth: BoothApi, uploads: UploadStore, metrics: ApiMetrics, desk: Desk | None = None) -> None:
        api = booth.config.api
        self.app = create_app(booth, uploads, metrics, desk)
        self._config = uvicorn.Config(
            self.app,
            host=api.host,
            port=api.port,
            log_config=None,  # the daemon's logging set-up applies
            access_log=False,  # request lines carry IMEIs in image paths
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._served: Served | None = None
        if desk is not None and not present(api.technician_keys):
            # A booth upgraded with its old config has none: reviews would wait with nobody able to decide them.
            logger.warning("no [api] technician_keys: the technician's view is off and reviews cannot be decided")
        if not is_loopback(api.host) and not present(api.keys):
            logger.warning(
                "local API bound to %s without api.keys: anyone on the network can grade and read sessions",
                api.host,
            )

    @property
    def workers(self) -> list[Worker]:
        return [] if self._served is None else [self._served.worker]

    @property
    def port(self) -> int:
        if self._served is None:
            raise RuntimeError("the API server is not started")
        return self._served.port

    def start(self) -> None:
        self._served = serve_in_thread(self._config, "api-server", START_TIMEOUT_S)
        logger.info("local API listening on %s:%d", self._config.host, self.port)

    def stop(self) -> None:
        if self._served is None:
            return
        if not self._served.stop(STOP_TIMEOUT_S):
            logger.warning("local API server did not stop within %.0f s", STOP_TIMEOUT_S)
        self._served = None
