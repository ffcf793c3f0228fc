"""The bus on servers that want credentials: user and password, a token over TLS with a CA of its
own, and never a credential in the logs, not even when the connection drops and comes back."""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from events.bus import Bus, tls_context
from events.catalogue import DatasetCreated
from events.credentials import NatsCredentialsError
from services.embedded import nats_server_binary

PASSWORD = "s3cret-token"
TOKEN = "t0ken-over-tls"


class ConfiguredNats:
    """A nats-server from a configuration file, restartable on the same port and store."""

    def __init__(self, folder: Path, config: dict) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.config = folder / "nats.conf"
        self.config.write_text(json.dumps(config))
        self.store = folder / "store"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
             "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def password_server(tmp_path: Path) -> Iterator[ConfiguredNats]:
    server = ConfiguredNats(tmp_path, {"authorization": {"users": [{"user": "alice", "password": PASSWORD}]}})
    server.start()
    yield server
    server.stop()


async def records_until(caplog: pytest.LogCaptureFixture, text: str) -> None:
    for _ in range(600):  # a bound on waiting (60 s), not a measurement
        if any(text in record.getMessage() for record in caplog.records):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no log record with {text!r}:\n{caplog.text}")


async def test_a_password_in_the_url_connects_and_never_reaches_the_logs(
        password_server: ConfiguredNats, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bus = await Bus.connect(f"nats://alice:{PASSWORD}@127.0.0.1:{password_server.port}", "tpw")
    try:
        await bus.ensure()
        password_server.stop()
        await records_until(caplog, "disconnected from")
        password_server.start()
        await records_until(caplog, "reconnected to")
        await bus.publish(DatasetCreated(dataset_id="d1", name="after the restart", kind="supervised"))
    finally:
        await bus.close()
    assert f"nats://***@127.0.0.1:{password_server.port}" in caplog.text
    assert PASSWORD not in caplog.text


async def test_a_wrong_password_fails_the_connection_at_once_and_never_reaches_the_logs(
        password_server: ConfiguredNats, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(NatsCredentialsError, match="refused the credentials") as refused:
        await Bus.connect(f"nats://alice:not-{PASSWORD}@127.0.0.1:{password_server.port}", "tpw")
    assert PASSWORD not in str(refused.value) and PASSWORD not in caplog.text


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[ConfiguredNats, Path]]:
    """A nats-server with a token, on TLS with a certificate signed by a CA made here; yields it and the CA file."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test's certificates")

    def openssl(*arguments: str) -> None:
        subprocess.run(["openssl", *arguments], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=cadenza test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "1", "-extfile", "san.cnf")
    server = ConfiguredNats(tmp_path, {
        "authorization": {"token": TOKEN},
        "tls": {"cert_file": str(tmp_path / "server.pem"), "key_file": str(tmp_path / "server.key")},
    })
    server.start()
    yield server, tmp_path / "ca.pem"
    server.stop()


async def test_a_token_over_tls_with_a_ca_file_works_end_to_end(tls_server: tuple[ConfiguredNats, Path]) -> None:
    server, ca_file = tls_server
    url = f"tls://{TOKEN}@127.0.0.1:{server.port}"
    bus = await Bus.connect(url, "ttls", ca_file=ca_file)
    try:
        await bus.ensure()
        await bus.publish(DatasetCreated(dataset_id="d1", name="over tls", kind="supervised"))
        [stored] = await bus.history("dataset", "d1")
        assert stored.event.name == "over tls"
        ref = await bus.put_object(bus.clips_bucket, "clip.wav", b"audio")
        assert await bus.get_object(ref) == b"audio"
    finally:
        await bus.close()

    # the same server refuses a client that does not trust its CA, and one with the wrong token
    with pytest.raises(ssl.SSLCertVerificationError):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(f"tls://wrong@127.0.0.1:{server.port}", tls=tls_context(ca_file), allow_reconnect=False,
                           max_reconnect_attempts=0)
