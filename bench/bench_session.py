"""Session benchmark of the running daemon, black-box: trigger-to-MQTT-result latency and its stages.

Starts its own Mosquitto and `edge-grader run` (replay cameras, six photos per session: 5 front +
1 back) on free loopback ports in a temporary folder, then:

- time to READY (the daemon's sd_notify READY=1 on a notify socket this script binds) and to /healthz;
- trigger (POST /api/sessions) to result on MQTT, p50/p95 over --sessions, with the per-stage
  breakdown of the result's ``timings_ms`` (capture: first shot to the last photo on disk; store:
  the spool's writes with fsync, beside grading; decode, preprocess, inference, postprocess summed
  over the photos by the grader, whose stages overlap; total: grading's span; session: first shot
  to the result built; commit + publish is the remainder);
- RSS of the daemon after start, after 100 sessions and (``--long``) after 1,000;
- the booth's answer to a trigger (and its own contract API) against the same six photos through
  the cloud contract (upload x6 + process) over a shaped link of 10 Mbit/s up and 40 ms RTT: the
  cloud simulator runs in a network namespace behind a veth pair shaped with tc netem + tbf; when
  that is not permitted, a throttling TCP proxy on loopback stands in. The output says which.

    python bench/bench_session.py [--sessions 50] [--long] [--cloud-runs 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.chaos import KEY, PREFIX, Booth, RssWatch  # noqa: E402
from tests.booth_support import free_port, render_booth_images, wait_for  # noqa: E402
from tests.cloudsim_support import imei  # noqa: E402
from tests.mosquitto_broker import Collector, MosquittoBroker  # noqa: E402

STAGES = ("capture", "store", "decode", "preprocess", "inference", "postprocess", "total", "session")
RATE = "10mbit"
ONE_WAY_DELAY_MS = 20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread(values: list[float]) -> str:
    return (f"p50 {pct(values, 0.5):.0f} / p95 {pct(values, 0.95):.0f} ms "
            f"(min {min(values):.0f}, max {max(values):.0f}, n={len(values)})")


def seconds(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- start-up ----------------------------------------------------------------------------------------------


def start_with_notify(booth: Booth, folder: Path) -> tuple[float, float]:
    """Start the daemon with $NOTIFY_SOCKET; seconds to READY=1 and to the first /healthz 200."""
    path = folder / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(120)
    os.environ["NOTIFY_SOCKET"] = str(path)
    try:
        started = time.monotonic()
        booth.start()
        healthy = time.monotonic() - started
        ready = None
        while ready is None:
            message = sock.recv(4096).decode()
            if "READY=1" in message:
                ready = time.monotonic() - started
    finally:
        del os.environ["NOTIFY_SOCKET"]
        sock.close()
    return ready, healthy


# -- sessions ---------------------------------------------------------------------------------------------


def one_session(booth: Booth, collector: Collector, n: int) -> tuple[float, dict[str, float]]:
    """Trigger-to-MQTT-result milliseconds and the result's timings_ms."""
    import json

    started = time.monotonic()
    session_id = booth.trigger(imei(20000 + n))
    topic = f"{PREFIX}/sessions/{session_id}"
    if not collector.wait_for(lambda: collector.on(topic), 120):
        raise TimeoutError(f"no MQTT result for session {session_id}")
    elapsed = (time.monotonic() - started) * 1000
    result = json.loads(collector.on(topic)[0])
    return elapsed, result.get("timings_ms", {})


def run_sessions(booth: Booth, collector: Collector, count: int, first: int) -> list[tuple[float, dict[str, float]]]:
    return [one_session(booth, collector, first + n) for n in range(count)]


def stage_table(samples: list[tuple[float, dict[str, float]]]) -> list[str]:
    lines = [f"  end to end (trigger -> MQTT result): {spread([s[0] for s in samples])}"]
    for stage in STAGES:
        values = [t.get(stage, 0.0) for _, t in samples]
        lines.append(f"  {stage:<32}: {spread(values)}")
    # Capture and storing run beside grading; "session" is the worker's whole span, first shot to
    # the result built, so what remains is the commit, the publish and the HTTP trigger's round trip.
    rest = [total - t.get("session", 0.0) for total, t in samples]
    lines.append(f"  {'commit + publish + API (remainder)':<32}: {spread(rest)}")
    return lines


# -- the cloud path over a shaped link -----------------------------------------------------------------------


def sh(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


@contextlib.contextmanager
def shaped_namespace() -> Iterator[str]:
    """A network namespace at 10.231.0.2 behind a veth shaped to 10 Mbit/s up, 20 ms each way."""
    name = f"egbench{os.getpid()}"
    outer, inner = f"egb{os.getpid() % 100000}a", f"egb{os.getpid() % 100000}b"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        sh("ip", "link", "set", inner, "netns", name)
        sh("ip", "addr", "add", "10.231.0.1/30", "dev", outer)
        sh("ip", "link", "set", outer, "up")
        sh("ip", "netns", "exec", name, "ip", "addr", "add", "10.231.0.2/30", "dev", inner)
        sh("ip", "netns", "exec", name, "ip", "link", "set", inner, "up")
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        # Up (booth -> cloud): 20 ms then a 10 Mbit/s token bucket; down: 20 ms.
        sh("tc", "qdisc", "add", "dev", outer, "root", "handle", "1:", "netem", "delay", f"{ONE_WAY_DELAY_MS}ms")
        sh("tc", "qdisc", "add", "dev", outer, "parent", "1:", "handle", "2:", "tbf", "rate", RATE,
           "burst", "32kbit", "latency", "400ms")
        sh("ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", inner, "root", "netem", "delay",
           f"{ONE_WAY_DELAY_MS}ms")
        yield name
    finally:
        subprocess.run(["ip", "link", "del", outer], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


class ThrottleProxy:
    """Fallback: a loopback TCP proxy, a delay line of 20 ms each way, uploads paced at 10 Mbit/s.

    Each direction has a reader that stamps every chunk on arrival and a writer that sends it at
    arrival + delay, never faster than the rate: data in flight is pipelined as on a real link.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._direction(client, upstream, 10e6 / 8)
            self._direction(upstream, client, None)

    def _direction(self, source: socket.socket, sink: socket.socket, bytes_per_s: float | None) -> None:
        line: queue.Queue[tuple[float, bytes]] = queue.Queue()
        threading.Thread(target=self._read, args=(source, line), daemon=True).start()
        threading.Thread(target=self._write, args=(line, sink, bytes_per_s), daemon=True).start()

    @staticmethod
    def _read(source: socket.socket, line: queue.Queue[tuple[float, bytes]]) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(16384):
                line.put((time.monotonic(), data))
        line.put((time.monotonic(), b""))

    @staticmethod
    def _write(line: queue.Queue[tuple[float, bytes]], sink: socket.socket, bytes_per_s: float | None) -> None:
        free_at = 0.0  # when the paced link can take the next byte
        with contextlib.suppress(OSError):
            while True:
                arrived, data = line.get()
                due = max(arrived + ONE_WAY_DELAY_MS / 1000, free_at)
                time.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
                if bytes_per_s:
                    free_at = max(due, time.monotonic()) + len(data) / bytes_per_s

    def close(self) -> None:
        self.server.close()


def cloud_sim(folder: Path, host: str, namespace: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "edge.cli", "cloud-sim", "--host", host, "--port", str(port), "--key", KEY,
         "--storage", str(folder / f"cloud-{port}")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
    )
    base = f"http://{host}:{port}"

    def up() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{base}/_sim/stats", timeout=5).status_code == 200
        return False

    wait_for(up, 60)
    return proc, base


def contract_session(base: str, photos: list[tuple[str, bytes]], the_imei: str, key: str) -> tuple[float, float, float]:
    """Upload the photos, then process them: (seconds uploading, seconds to the process answer, bytes sent)."""
    started = time.monotonic()
    with httpx.Client(base_url=base, timeout=120) as client:
        images = []
        for n, (section, data) in enumerate(photos):
            answer = client.post("/api/upload", files={"image": (f"{section}-{n}.jpg", data, "image/jpeg")},
                                 data={"section": section, "imei": the_imei})
            answer.raise_for_status()
            images.append({"url": answer.json()["url"], "section": section})
        uploaded = time.monotonic()
        client.post("/api/process", json={"key": key, "imei": the_imei, "images": images}).raise_for_status()
    return uploaded - started, time.monotonic() - uploaded, float(sum(len(d) for _, d in photos))


def session_photos(images: Path) -> list[tuple[str, bytes]]:
    fronts = sorted((images / "front").iterdir())[:5]
    backs = sorted((images / "back").iterdir())[:1]
    return [("front", p.read_bytes()) for p in fronts] + [("back", p.read_bytes()) for p in backs]


def cloud_versus_booth(booth: Booth, folder: Path, images: Path, runs: int, answer_ms: list[float]) -> list[str]:
    """The booth's answer to a trigger against the same photos sent through the cloud contract.

    A booth that left grading to the cloud would capture as it does now and then upload and wait for
    ``process``; the cloud's side is timed from the first upload, so the booth's own capture counts
    against the booth only. The contract on the booth's own API is timed too: it decodes uploaded
    JPEGs where a trigger grades the cameras' frames.
    """
    photos = session_photos(images)
    local = [sum(contract_session(booth.base, photos, imei(30000 + n), KEY)[:2]) for n in range(runs)]
    with contextlib.ExitStack() as stack:
        try:
            namespace = stack.enter_context(shaped_namespace())
            proc, base = cloud_sim(folder, "10.231.0.2", namespace)
            how = f"tc netem {ONE_WAY_DELAY_MS} ms each way + tbf {RATE} up, in network namespace {namespace}"
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            proc, direct = cloud_sim(folder, "127.0.0.1", None)
            proxy = ThrottleProxy(int(direct.rsplit(":", 1)[1]))
            stack.callback(proxy.close)
            base = f"http://127.0.0.1:{proxy.port}"
            how = f"in-process throttling TCP proxy on loopback (tc/netns not permitted: {exc})"
        stack.callback(proc.terminate)
        cloud = [contract_session(base, photos, imei(31000 + n), KEY) for n in range(runs)]
    size = cloud[0][2] / 1e6
    uploads, processes = [c[0] for c in cloud], [c[1] for c in cloud]
    cloud_s = [u + p for u, p in zip(uploads, processes, strict=True)]
    answer_s = statistics.median(answer_ms) / 1000
    return [
        f"shaped link: {how}",
        f"  same six photos ({size:.1f} MB), {runs} runs of the contract path each:",
        f"  booth, trigger -> MQTT result (p50 above)  : {answer_s:.2f} s",
        f"  booth, its local API (upload x6 + process) : {seconds(local)}",
        f"  cloud, shaped (upload x6 + process)        : {seconds(cloud_s)}",
        f"    of which uploads {seconds(uploads)}; process {seconds(processes)}",
        f"  the booth answers a trigger {statistics.median(cloud_s) / answer_s:.1f}x sooner than the cloud path "
        f"({statistics.median(uploads) / answer_s:.1f}x sooner than the uploads alone); "
        f"its local API {statistics.median(cloud_s) / statistics.median(local):.1f}x sooner",
    ]


# -- the run ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=50, help="sessions for the latency figures (default 50)")
    parser.add_argument("--long", action="store_true", help="go on to 1,000 sessions for the RSS figure")
    parser.add_argument("--cloud-runs", type=int, default=5, help="contract sessions per path (default 5)")
    # One: on two cores the model's second thread contends with the camera and preparing threads.
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="edge-bench-session-"))
    images = render_booth_images(folder / "replay")
    rss = RssWatch()
    lines: list[str] = []
    with MosquittoBroker() as broker:
        collector = Collector(broker, f"{PREFIX}/sessions/#")
        booth = Booth(folder / "booth", images, broker.port, None, rss, shots=5, threads=args.threads)
        try:
            ready, healthy = start_with_notify(booth, folder)
            assert booth.daemon is not None and booth.daemon.proc is not None
            pid = booth.daemon.proc.pid
            lines.append(f"time to READY=1 (sd_notify): {ready:.2f} s; to first /healthz 200: {healthy:.2f} s")
            memory = [("after start", rss_mb(pid))]
            samples = run_sessions(booth, collector, args.sessions, 0)
            done = args.sessions
            if done < 100:
                run_sessions(booth, collector, 100 - done, done)
                done = 100
            memory.append(("after 100 sessions", rss_mb(pid)))
            if args.long:
                run_sessions(booth, collector, 1000 - done, done)
                memory.append(("after 1,000 sessions", rss_mb(pid)))
            lines.append(f"six-photo sessions on replay cameras, {args.sessions} sessions:")
            lines += stage_table(samples)
            lines.append("RSS: " + "; ".join(f"{what} {mb:.0f} MB" for what, mb in memory))
            lines += cloud_versus_booth(booth, folder, images, args.cloud_runs, [s[0] for s in samples])
        finally:
            booth.stop()
            collector.close()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
