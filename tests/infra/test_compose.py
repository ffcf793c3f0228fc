"""compose.yaml cannot run here (no images can be pulled): check that its pieces fit together."""
import re
import tomllib
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from services import nats_users
from services.cli import _parser, main
from services.settings import Settings

ROOT = Path(__file__).parents[2]
SERVICES = ("api", "registry", "trainer", "generator")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def named_volume(service: dict, mount_path: str, compose: dict) -> str:
    """The named volume mounted at `mount_path` (fails if it is a bind mount or undeclared)."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if target == mount_path:
            assert source in compose["volumes"], f"{source} is not a named volume"
            return source
    raise AssertionError(f"nothing is mounted at {mount_path}")


def mount(service: dict, mount_path: str) -> dict:
    """The volume mounted at `mount_path`, in the long syntax (source, target, read_only, subpath)."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *options = volume.split(":")
            volume = {"source": source, "target": target, "read_only": options == ["ro"]}
        if PurePosixPath(mount_path).is_relative_to(volume["target"]):
            return {**volume, "subpath": volume.get("volume", {}).get("subpath", "")}
    raise AssertionError(f"nothing is mounted at {mount_path}")


def test_nats_runs_with_the_users_written_before_it_starts(compose: dict, tmp_path: Path) -> None:
    services = compose["services"]
    writer, nats = services["nats-users"], services["nats"]
    program, *arguments = writer["command"]
    assert program == "cadenza" and _parser().parse_args(arguments).command == "nats-config"
    folder = arguments[1]
    volume = named_volume(writer, folder, compose)
    assert nats["depends_on"]["nats-users"] == {"condition": "service_completed_successfully"}

    command = nats["command"]
    config = command[command.index("-c") + 1]
    written = mount(nats, config)
    assert written["source"] == volume and written["read_only"]
    assert main(["nats-config", str(tmp_path)]) == 0  # what the one-shot service writes
    assert (tmp_path / PurePosixPath(config).relative_to(written["target"])).exists()

    # it moves the streams an earlier release stored into JetStream's account, in the folder NATS stores in
    store = _parser().parse_args(arguments).store
    assert store == PurePosixPath(command[command.index("-sd") + 1])
    assert named_volume(writer, str(store), compose) == named_volume(nats, str(store), compose)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_connects_as_its_own_user_with_its_password_alone(
        compose: dict, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = compose["services"][name]
    environment = service["environment"]
    nats_url = urlsplit(environment["NATS_URL"])
    assert (nats_url.username, nats_url.password) == (name, None)  # the password is never in compose.yaml
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    settings = Settings.from_env()
    assert settings.nats_inbox_prefix == nats_users.inbox_prefix(name)
    assert settings.nats_password_file == Path(environment["CADENZA_NATS_PASSWORD_FILE"])

    password_file = environment["CADENZA_NATS_PASSWORD_FILE"]
    volume = mount(service, password_file)
    assert volume["source"] == compose["services"]["nats-users"]["volumes"][0].split(":")[0]
    assert volume["read_only"] and volume["subpath"] == name  # its own folder, no other password
    assert main(["nats-config", str(tmp_path)]) == 0
    written = tmp_path / name / PurePosixPath(password_file).relative_to(volume["target"])
    assert written.read_text() == nats_users.passwords(tmp_path)[name]


def test_the_streams_are_declared_as_admin_with_its_password_alone_before_the_services_start(
        compose: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose["services"]
    declaring = services["declare-streams"]
    program, *arguments = declaring["command"]
    assert program == "cadenza" and _parser().parse_args(arguments).command == "declare"
    assert declaring["depends_on"] == {"nats": {"condition": "service_healthy"}}
    assert declaring.get("restart", "no") == "no"  # a one-shot: done once it has declared
    for name in SERVICES:
        assert services[name]["depends_on"]["declare-streams"] == {"condition": "service_completed_successfully"}

    environment = declaring["environment"]
    nats_url = urlsplit(environment["NATS_URL"])
    assert (nats_url.username, nats_url.password) == (nats_users.ADMIN, None)
    assert (nats_url.scheme, nats_url.hostname, nats_url.port) == ("nats", "nats", 4222)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    settings = Settings.from_env()
    # the admin may subscribe anywhere, so nats' default inbox serves it
    assert nats_users.permissions(nats_users.ADMIN, settings.namespace)["subscribe"]["allow"] == [">"]

    password_file = environment["CADENZA_NATS_PASSWORD_FILE"]
    assert settings.nats_password_file == Path(password_file)
    volume = mount(declaring, password_file)
    assert volume["source"] == services["nats-users"]["volumes"][0].split(":")[0]
    assert volume["read_only"] and volume["subpath"] == nats_users.ADMIN  # its own folder, no other password
    assert main(["nats-config", str(tmp_path)]) == 0
    written = tmp_path / nats_users.ADMIN / PurePosixPath(password_file).relative_to(volume["target"])
    assert written.read_text() == nats_users.passwords(tmp_path)[nats_users.ADMIN]
    assert sorted(path.name for path in written.parent.iterdir()) == [nats_users.PASSWORD_FILE]


def test_nats_keeps_jetstream_on_a_named_volume(compose: dict) -> None:
    nats = compose["services"]["nats"]
    command = nats["command"]
    assert "-js" in command
    store = command[command.index("-sd") + 1]
    named_volume(nats, store, compose)


def test_postgres_keeps_its_data_on_a_named_volume_and_reports_health(compose: dict) -> None:
    postgres = compose["services"]["postgres"]
    named_volume(postgres, "/var/lib/postgresql/data", compose)
    assert "pg_isready" in str(postgres["healthcheck"]["test"])


def test_every_cadenza_service_runs_from_one_image_built_here(compose: dict) -> None:
    services = compose["services"]
    assert {services[name]["image"] for name in SERVICES} == {"cadenza:latest"}
    assert {services[name]["build"] for name in SERVICES} == {"."}
    assert (ROOT / "Dockerfile").exists()


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_cadenza_command_against_the_compose_servers(compose: dict, name: str) -> None:
    services = compose["services"]
    service = services[name]
    program, *arguments = service["command"]
    assert program == "cadenza" and arguments[0] == name
    _parser().parse_args(arguments)  # a command line the CLI accepts

    nats_url = urlsplit(service["environment"]["NATS_URL"])
    assert (nats_url.scheme, nats_url.hostname, nats_url.port) == ("nats", "nats", 4222)
    database_url = urlsplit(service["environment"]["DATABASE_URL"])
    postgres_env = services["postgres"]["environment"]
    assert (database_url.hostname, database_url.port) == ("postgres", 5432)
    assert (database_url.username, database_url.password, database_url.path) == (
        postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"], "/" + postgres_env["POSTGRES_DB"])
    assert set(service["depends_on"]) == {"nats", "postgres", "declare-streams"}


def test_the_api_is_published_on_loopback_unless_the_operator_chooses_and_takes_its_token(compose: dict) -> None:
    api = compose["services"]["api"]
    command = api["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    assert api["ports"] == [f"${{CADENZA_API_PUBLISH:-127.0.0.1:{port}}}:{port}"]
    assert api["environment"]["CADENZA_API_TOKEN"] == "${CADENZA_API_TOKEN:-}"
    assert all("ports" not in compose["services"][name] for name in compose["services"] if name != "api")


def test_the_image_installs_the_torch_the_project_pins() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = next(dependency for dependency in dependencies if dependency.startswith("torch=="))
    assert re.search(rf"pip install .*{re.escape(pinned)}", (ROOT / "Dockerfile").read_text())
