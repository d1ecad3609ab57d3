"""TLS and username/password against a real Mosquitto with a TLS listener and a password file."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config.mqtt import MqttConfig, MqttTlsConfig
from edge.publish.mqtt_link import MqttLink
from edge.publish.topics import Topics
from tests.booth_support import wait_for
from tests.mosquitto_broker import MosquittoBroker


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca_and_server(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (as an IP SAN, so host name checks pass)."""
    folder.mkdir()
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name} test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=folder,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=folder,
    )
    (folder / "san.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.crt",
        cwd=folder,
    )
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


@pytest.fixture(scope="module")
def secured_broker() -> Iterator[tuple[MosquittoBroker, Path, Path]]:
    assert shutil.which("openssl") and shutil.which("mosquitto_passwd"), "run tools/setup.sh"
    # Started as root, mosquitto reads these files as the `mosquitto` user: they must be readable
    # by others, which pytest's private temp folders are not.
    folder = Path(tempfile.mkdtemp(prefix="mqtt-tls-"))
    folder.chmod(0o755)
    ca, cert, key = _ca_and_server(folder / "real", "booth")
    other_ca, _, _ = _ca_and_server(folder / "other", "stranger")
    passwords = folder / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "booth-1", "s3cret"], check=True)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    conf = f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\npassword_file {passwords}\n"
    broker = MosquittoBroker(anonymous=False, listener_conf=conf).start()
    yield broker, ca, other_ca
    broker.close()
    shutil.rmtree(folder, ignore_errors=True)


def _connects(config: MqttConfig, seconds: float) -> bool:
    link = MqttLink(config, "booth-1", Topics("vision-grader/booth-1"))
    link.start()
    try:
        return link.wait_connected(seconds)
    finally:
        link.stop()


def _failure(config: MqttConfig) -> str:
    """Why the link does not connect, once it knows."""
    link = MqttLink(config, "booth-1", Topics("vision-grader/booth-1"))
    link.start()
    try:
        return wait_for(lambda: link.last_failure, 30)
    finally:
        assert link.connect_count == 0
        link.stop()


def _config(broker: MosquittoBroker, ca: Path, password: str) -> MqttConfig:
    return MqttConfig(
        host="127.0.0.1",
        port=broker.port,
        username="booth-1",
        password=password,
        tls=MqttTlsConfig(ca_file=ca),
        reconnect_min_s=1,
        reconnect_max_s=1,
    )


def test_tls_with_the_brokers_ca_and_the_right_password_connects(
    secured_broker: tuple[MosquittoBroker, Path, Path],
) -> None:
    broker, ca, _ = secured_broker
    assert _connects(_config(broker, ca, "s3cret"), 20)


def test_wrong_password_is_refused(secured_broker: tuple[MosquittoBroker, Path, Path]) -> None:
    broker, ca, _ = secured_broker
    assert _failure(_config(broker, ca, "wrong")) == "broker refused the connection: Not authorized"


def test_a_broker_certificate_from_another_ca_is_refused(secured_broker: tuple[MosquittoBroker, Path, Path]) -> None:
    broker, _, other_ca = secured_broker
    assert "certificate verify failed" in _failure(_config(broker, other_ca, "s3cret"))
