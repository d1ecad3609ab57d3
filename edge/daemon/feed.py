"""One captured session's shots on their way from the cameras: to the grader in memory, to the spool
as JPEG.

The rig shoots on the feed's own thread. Each frame is brought to the grader's working scale here
(an area reduction, as the grader would do) and handed over through a queue one photo deep; the
same thread then encodes the full frame and stores it (atomic write, fsync, sha256, row) while the
grader prepares it, and shoots the next once the grader asks for it (a thread of its own is free).
So one full frame lives at a time whatever the session's size (a 12 MP frame is 37 MB; the grader
holds smaller copies), and the camera shoots the next photo while the model runs on this one. The
session's result waits for ``stored()``: nothing is committed or published before every one of its
images is on disk.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from edge.capture.errors import CaptureError
from edge.capture.frames import Frame, JpegEncoder
from edge.capture.rig import CaptureRig
from edge.grade.decode import Decoded, reduce_frame
from edge.spool.sessions import ImageRecord, SessionRecord, SessionStore

# How often a blocked hand-over looks whether the feed was closed.
_POLL_S = 0.1
_END = object()
STOPPED = "grading stopped before the session's last shot"


class ShotFeed:
    """Iterate it for (section, frame at the grading scale) in shot order; it raises what stopped
    the capture or the storing."""

    def __init__(
        self,
        rig: CaptureRig,
        store: SessionStore,
        session: SessionRecord,
        encoder: JpegEncoder,
        long_side: int,
        on_stored: Callable[[], None],
    ) -> None:
        """``on_stored`` runs on the feed's thread once every shot is taken and on disk."""
        self._rig = rig
        self._store = store
        self._session = session
        self._encoder = encoder
        self._long_side = long_side
        self._on_stored = on_stored
        self._queue: queue.Queue[object] = queue.Queue(maxsize=1)
        self._read = threading.Semaphore(0)
        self._closed = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="shot-feed")
        self._job: Future[None] | None = None
        self.records: list[ImageRecord] = []
        self.capture_ms = 0.0  # from the first shot until the last one is on disk
        self.store_ms = 0.0  # encoding and writing the JPEGs, summed
        self.reduce_ms = 0.0  # bringing the frames to the grader's scale, summed

    def __enter__(self) -> ShotFeed:
        self._job = self._pool.submit(self._run)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[str, Decoded]]:
        while (item := self._queue.get()) is not _END:
            yield item  # type: ignore[misc]
            del item
            self._read.release()  # the grader asks for the next photo: it has a thread free for it
        self.stored()  # raises the capture's or the spool's error: the session is not complete

    def stored(self) -> list[ImageRecord]:
        """Wait until every shot is taken and stored; the originals' records, in shot order."""
        assert self._job is not None, "the feed was never started"
        self._job.result()
        return self.records

    def close(self) -> None:
        """Stop shooting (after the shot in hand: a camera call cannot be cut short) and wait."""
        self._closed.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._job is not None:
            self._job.exception()
        self._pool.shutdown(wait=False)

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._rig.capture_session(self._take)
            self.capture_ms = (time.perf_counter() - started) * 1000
            self._on_stored()
        finally:
            self._hand_over(_END)

    def _take(self, section: str, shot: int, frame: Frame) -> None:
        if self._closed.is_set():
            raise CaptureError(STOPPED)
        t = time.perf_counter()
        reduced = reduce_frame(frame.image, self._long_side)
        self.reduce_ms += (time.perf_counter() - t) * 1000
        self._hand_over((section, reduced))
        del reduced
        t = time.perf_counter()
        self.records.append(self._store.add_image(self._session, section, shot, frame.jpeg(self._encoder)))
        self.store_ms += (time.perf_counter() - t) * 1000
        # The next shot waits until the grader asks for it: a camera running further ahead holds
        # one more photo and, on two cores, gained nothing (the session is bound by the cores).
        while not self._read.acquire(timeout=_POLL_S):
            if self._closed.is_set():
                raise CaptureError(STOPPED)

    def _hand_over(self, item: object) -> None:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
