"""A service on a server in operator mode (decentralised auth): an operator, an account and a user
made here with nkeys, their JWTs preloaded into the server's memory resolver, and the user's
`.creds` file given to Cadenza's settings. A missing, malformed or untrusted creds file fails at
once with a message that names the file and never its secrets."""
from __future__ import annotations

import base64
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nkeys
import pytest

from events.credentials import NatsCredentialsError
from events.catalogue import DatasetCreated
from services.settings import Settings
from tests.events.test_bus_credentials import ConfiguredNats

UNLIMITED = -1
ACCOUNT_LIMITS = {"subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED, "imports": UNLIMITED,
                  "exports": UNLIMITED, "wildcards": True, "conn": UNLIMITED, "leaf": UNLIMITED,
                  # any storage limit but 0 turns JetStream on for the account
                  "mem_storage": UNLIMITED, "disk_storage": UNLIMITED, "streams": UNLIMITED, "consumer": UNLIMITED}
USER_LIMITS = {"pub": {}, "sub": {}, "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED}


def new_key(prefix: int) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_jwt(issuer: nkeys.KeyPair, subject: nkeys.KeyPair, name: str, claims: dict) -> str:
    """A NATS JWT (v2): standard claims, NATS's under `nats`, signed by the issuer's nkey."""
    header = base64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = base64url(json.dumps({
        "jti": uuid.uuid4().hex, "iat": int(time.time()), "iss": issuer.public_key.decode(), "name": name,
        "sub": subject.public_key.decode(), "nats": {**claims, "version": 2}}).encode())
    signature = base64url(issuer.sign(f"{header}.{payload}".encode()))
    return f"{header}.{payload}.{signature}"


def creds(user_jwt: str, user: nkeys.KeyPair) -> str:
    """A `.creds` file as `nsc` writes it."""
    return (f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{user.seed.decode()}\n------END USER NKEY SEED------\n")


@dataclass
class Operator:
    server: ConfiguredNats
    account: nkeys.KeyPair
    folder: Path

    def user_creds(self, name: str, account: nkeys.KeyPair | None = None) -> tuple[Path, list[str]]:
        """A creds file for a new user of `account` (default: the server's), and its secrets."""
        user = new_key(nkeys.PREFIX_BYTE_USER)
        user_jwt = signed_jwt(account or self.account, user, name, {"type": "user", **USER_LIMITS})
        path = self.folder / f"{name}.creds"
        path.write_text(creds(user_jwt, user))
        return path, [user.seed.decode(), user_jwt]


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    operator, account, system = (new_key(nkeys.PREFIX_BYTE_OPERATOR), new_key(nkeys.PREFIX_BYTE_ACCOUNT),
                                 new_key(nkeys.PREFIX_BYTE_ACCOUNT))
    # JetStream needs a system account
    operator_jwt = signed_jwt(operator, operator, "cadenza-test",
                              {"type": "operator", "system_account": system.public_key.decode()})
    (tmp_path / "operator.jwt").write_text(operator_jwt)
    server = ConfiguredNats(tmp_path, {
        "operator": str(tmp_path / "operator.jwt"),
        "resolver": "MEMORY",
        "resolver_preload": {
            account.public_key.decode(): signed_jwt(operator, account, "cadenza", {"type": "account",
                                                                                    "limits": ACCOUNT_LIMITS}),
            system.public_key.decode(): signed_jwt(operator, system, "SYS", {"type": "account"}),
        },
    })
    server.start()
    yield Operator(server, account, tmp_path)
    server.stop()


def settings_with(operator: Operator, creds_file: Path) -> Settings:
    return Settings(nats_url=f"nats://127.0.0.1:{operator.server.port}", namespace="tcreds",
                    nats_creds_file=creds_file)


async def test_a_service_connects_with_a_creds_file_through_its_settings(operator: Operator) -> None:
    creds_file, _ = operator.user_creds("api")
    bus = await settings_with(operator, creds_file).connect_bus()
    try:
        await bus.ensure()
        await bus.publish(DatasetCreated(dataset_id="d1", name="with creds", kind="supervised"))
        [stored] = await bus.history("dataset", "d1")
        assert stored.event.name == "with creds"
        ref = await bus.put_object(bus.clips_bucket, "clip.wav", b"audio")
        assert await bus.get_object(ref) == b"audio"
    finally:
        await bus.close()


async def test_creds_of_an_account_the_operator_never_signed_are_refused_without_their_secrets(
        operator: Operator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    creds_file, secrets = operator.user_creds("stranger", account=new_key(nkeys.PREFIX_BYTE_ACCOUNT))
    with pytest.raises(NatsCredentialsError, match="refused the credentials") as refused:
        await settings_with(operator, creds_file).connect_bus()
    assert str(creds_file) in str(refused.value)
    for secret in secrets:
        assert secret not in str(refused.value) and secret not in caplog.text


async def test_a_missing_or_malformed_creds_file_is_named_at_once(operator: Operator, tmp_path: Path) -> None:
    with pytest.raises(NatsCredentialsError, match="cannot read the NATS credentials file .*absent.creds"):
        await settings_with(operator, tmp_path / "absent.creds").connect_bus()
    creds_file, (seed, _) = operator.user_creds("api")
    creds_file.write_text(seed + "\n")  # a bare seed is no creds file
    with pytest.raises(NatsCredentialsError, match="is not a NATS credentials file") as malformed:
        await settings_with(operator, creds_file).connect_bus()
    assert seed not in str(malformed.value)
