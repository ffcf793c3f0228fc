"""`cadenza nats-config`, as compose.yaml runs it before NATS: the server it configures refuses
anonymous clients, and a service connects as its own user with nothing but its password file."""
from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from events.catalogue import RunRequested
from services import embedded, nats_users
from services.cli import main
from services.settings import Settings


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "nats-users"
    assert main(["nats-config", str(folder)]) == 0
    return folder


@pytest.fixture
def server_url(folder: Path, tmp_path: Path) -> Iterator[str]:
    server = embedded.start_nats(tmp_path / "data", folder / "nats-server.conf")
    yield server.url
    server.stop()


def test_the_passwords_are_made_once_and_readable_by_their_owner_alone(folder: Path) -> None:
    users = json.loads((folder / "users.json").read_text())
    for user in (nats_users.ADMIN, *nats_users.SERVICES):
        password_file = folder / user / nats_users.PASSWORD_FILE
        assert password_file.read_text() == users[user]
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(password_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "nats-server.conf").stat().st_mode) == 0o600
    assert main(["nats-config", str(folder)]) == 0  # compose runs it at every `up`
    assert json.loads((folder / "users.json").read_text()) == users


def test_a_folder_that_cannot_be_written_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("taken")
    assert main(["nats-config", str(not_a_folder)]) == 2
    assert f"cannot write into {not_a_folder}" in capsys.readouterr().err
    assert not_a_folder.read_text() == "taken"  # what was there is left as it was


async def test_anonymous_clients_are_refused(server_url: str) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(server_url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_a_service_does_its_job_with_its_password_file(server_url: str, folder: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    url = server_url.replace("nats://", "nats://api@")
    settings = Settings(nats_url=url, nats_password_file=folder / "api" / nats_users.PASSWORD_FILE,
                        nats_inbox_prefix=nats_users.inbox_prefix("api"))
    bus = await settings.connect_bus()
    try:
        await bus.ensure()
        clip = await bus.put_object(bus.clips_bucket, "clip.wav", b"RIFF audio")
        assert await bus.get_object(clip) == b"RIFF audio"
        await bus.publish(RunRequested(run_id="r1", experiment_id="e1", dataset_id="d1", name="run", config={}))
        [stored] = await bus.history("run", "r1")
        assert stored.event.run_id == "r1"
    finally:
        await bus.close()
    assert "violation" not in caplog.text.lower()


async def test_a_password_file_needs_the_user_in_the_url(server_url: str, folder: Path) -> None:
    settings = Settings(nats_url=server_url, nats_password_file=folder / "api" / nats_users.PASSWORD_FILE)
    with pytest.raises(ValueError, match="names none"):
        await settings.connect_bus()
