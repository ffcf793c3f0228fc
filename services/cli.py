"""The `cadenza` command: the whole system on embedded servers, or one service at a time.

Service modules are imported inside the subcommands that need them, so the command starts fast
and `cadenza api` never loads torch.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import os
import secrets
import signal
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

from events.urls import redacted
from services import embedded
from services.private_files import write_private
from services.settings import Settings
from services.supervisor import Service, in_empty_folder, run_services
# These hand their arguments on to their own command line (and so show its --help).
FORWARDING = ("trainer", "generator", "train")

def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in FORWARDING:
        return args.handler(extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except KeyboardInterrupt:  # before a service loop took over the signals: nothing left running
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cadenza", description="Fine-tune MusicGen with LoRA adapters.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    up_parser = commands.add_parser(
        "up", help="run everything in one process; private NATS/PostgreSQL unless NATS_URL/DATABASE_URL are set")
    up_parser.add_argument("--data-dir", type=Path,
                           help="where the private servers keep their data (default: CADENZA_DATA_DIR or "
                                f"{Settings.from_env().data_dir})")
    _add_http_arguments(up_parser)
    up_parser.set_defaults(handler=up)

    api_parser = commands.add_parser("api", help="run the HTTP API (needs NATS_URL and DATABASE_URL)")
    _add_http_arguments(api_parser)
    api_parser.set_defaults(handler=api)
    commands.add_parser("registry", help="run the registry projector (needs NATS_URL and DATABASE_URL)"
                        ).set_defaults(handler=registry)
    commands.add_parser("trainer", add_help=False, help="run a trainer (needs NATS_URL; `cadenza trainer --help`)"
                        ).set_defaults(handler=trainer)
    commands.add_parser("generator", add_help=False,
                        help="run a generation worker (needs NATS_URL; `cadenza generator --help`)"
                        ).set_defaults(handler=generator)
    commands.add_parser("rebuild", help="empty the read models and replay the stream from sequence 1"
                        ).set_defaults(handler=rebuild)

    dead_parser = commands.add_parser(
        "dead-letters", help="list the events the registry parked, or replay one (needs NATS_URL and DATABASE_URL)")
    dead_parser.add_argument("action", nargs="?", choices=("list", "replay"), default="list")
    dead_parser.add_argument("seq", nargs="?", type=int, help="with replay: the stream sequence of the parked event")
    dead_parser.set_defaults(handler=dead_letters)

    events_parser = commands.add_parser("events", help="print the audit log (needs NATS_URL)")
    which = events_parser.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="RUN_ID", help="one run's events")
    which.add_argument("--aggregate", help="one kind of aggregate: dataset, experiment, run")
    events_parser.add_argument("--id", help="with --aggregate: one aggregate's events")
    events_parser.add_argument("--follow", action="store_true", help="keep printing new events")
    events_parser.set_defaults(handler=events)

    declare_parser = commands.add_parser(
        "declare", help="declare the stream and buckets with this release's settings, changing those that differ "
                        "(needs NATS_URL, as a user allowed to: on Cadenza's NATS, admin)")
    declare_parser.add_argument("--timeout", type=_seconds, default=60.0, metavar="SECONDS",
                                help="give up when NATS has not answered by then (default 60)")
    declare_parser.set_defaults(handler=declare)

    config_parser = commands.add_parser(
        "nats-config", help="write a nats-server configuration with Cadenza's users into FOLDER, and each "
                            "service's password and the admin's into FOLDER/<user>/password (passwords kept "
                            "once made)")
    config_parser.add_argument("folder", type=Path)
    config_parser.add_argument("--store", type=Path, metavar="FOLDER",
                               help="the server's storage folder (its -sd): streams an earlier release kept in "
                                    "the default account are moved into JetStream's own, where the server now "
                                    "looks for them")
    config_parser.set_defaults(handler=nats_config)

    commands.add_parser("train", add_help=False, help="train an adapter: `python -m model.training.cli train …`"
                        ).set_defaults(handler=train)
    tiny_parser = commands.add_parser("tiny-model", help="write a tiny random MusicGen (for tests and demos)")
    tiny_parser.add_argument("dir", type=Path)
    tiny_parser.set_defaults(handler=tiny_model)
    return parser


def _add_http_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address the API listens on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port of the API (default: %(default)s)")


# --- commands ------------------------------------------------------------------------------------

def up(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["CADENZA_DATA_DIR"] = str(args.data_dir.absolute())
    settings = Settings.from_env()
    # Until the services' loop handles them, SIGINT and SIGTERM interrupt start-up, and the servers
    # started so far are stopped on the way out (even where SIGINT was ignored, as in `cadenza up &`).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    if not settings.api_token and not _is_loopback(args.host):
        settings = replace(settings, api_token=_api_token(settings.data_dir))
    with contextlib.ExitStack() as servers:
        try:
            settings = _start_missing_servers(settings, servers)
        except embedded.EmbeddedServerError as error:
            print(f"cadenza up: {error}", file=sys.stderr)
            return 1
        if settings.service_nats_urls:  # the private server: only its admin may change the stream's settings
            asyncio.run(_declare(settings))
        from services.registry.projector import run_projector
        from services.generator.settings import GeneratorSettings
        from services.generator.worker import run_generator
        from services.trainer.settings import TrainerSettings
        from services.trainer.worker import run_trainer

        # Read here, before in_empty_folder, where their paths mean what the operator meant.
        services: dict[str, Service] = {
            "api": partial(serve_api, host=args.host, port=args.port),
            "registry": run_projector,
            "trainer": partial(run_trainer, trainer=TrainerSettings.from_env()),
            "generator": partial(run_generator, generator=GeneratorSettings.from_env()),
        }
        with in_empty_folder():
            return asyncio.run(run_services(settings, services))


def _start_missing_servers(settings: Settings, servers: contextlib.ExitStack) -> Settings:
    """Start a private nats-server and PostgreSQL for whichever of NATS_URL/DATABASE_URL is unset;
    they stop when `servers` closes. The private nats-server admits only its users
    (services/nats_users.py): each service connects as its own, the rest of `up` as admin."""
    from services import nats_users

    store, users, config = settings.data_dir / "nats", {}, None
    if not settings.nats_url:
        store.mkdir(mode=0o700, parents=True, exist_ok=True)
        users = nats_users.passwords(store)
        config = nats_users.write_server_config(store, settings.namespace, users)
        nats_users.move_streams_into_their_account(store)
    nats_url, database_url = embedded.start_missing(
        settings.nats_url, settings.database_url, settings.data_dir, servers, nats_config=config)
    if users:
        print(f"NATS: {nats_url}  (private, data in {store}; users and passwords in {store / 'users.json'}: "
              f"programs that follow events connect as '{nats_users.SUBSCRIBER}')", flush=True)
        settings = replace(settings, service_nats_urls={
            service: nats_users.user_url(nats_url, service, users[service]) for service in nats_users.SERVICES})
        nats_url = nats_users.user_url(nats_url, nats_users.ADMIN, users[nats_users.ADMIN])
    if not settings.database_url:
        print(f"PostgreSQL: {database_url}  (private, data in {settings.data_dir / 'postgres'})", flush=True)
    return settings.with_servers(nats_url, database_url)


async def _declare(settings: Settings) -> None:
    bus = await settings.connect_bus()
    try:
        await bus.ensure()
    finally:
        await bus.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _api_token(data_dir: Path) -> str:
    """The API token of an API that listens beyond loopback: generated once, kept in
    `<data folder>/api-token` (0600)."""
    path = data_dir / "api-token"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_urlsafe(32))
    print(f"API token: every /api request needs `Authorization: Bearer <token>`; the token is in {path} "
          f"(or set CADENZA_API_TOKEN)", flush=True)
    return path.read_text().strip()


def api(args: argparse.Namespace) -> int:
    settings = _settings_with_servers("api")
    return asyncio.run(run_services(settings, {"api": partial(serve_api, host=args.host, port=args.port)}))


def registry(args: argparse.Namespace) -> int:
    from services.registry.projector import run_projector

    settings = _settings_with_servers("registry")
    return asyncio.run(run_services(settings, {"registry": run_projector}))


def trainer(arguments: list[str]) -> int:
    from services.trainer.__main__ import main as trainer_main

    return trainer_main(arguments)


def generator(arguments: list[str]) -> int:
    from services.generator.__main__ import main as generator_main

    return generator_main(arguments)


def rebuild(args: argparse.Namespace) -> int:
    from services.registry.rebuild import rebuild as rebuild_read_models

    settings = _settings_with_servers("rebuild")
    applied = asyncio.run(rebuild_read_models(settings))
    print(f"rebuilt the read models from {applied} events")
    return 0


def dead_letters(args: argparse.Namespace) -> int:
    if (args.action == "replay") != (args.seq is not None):
        print("cadenza dead-letters: replay takes the SEQ of a parked event (and only replay does)", file=sys.stderr)
        return 2
    settings = _settings_with_servers("dead-letters")
    return asyncio.run(_dead_letters(settings, args.seq))


async def _dead_letters(settings: Settings, replay_seq: int | None) -> int:
    import asyncpg

    from services.registry import dead_letters
    from services.registry.migrate import migrate

    bus = await settings.connect_bus()
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn)
        if replay_seq is None:
            for letter in await dead_letters.list_dead_letters(conn):
                print(f"{letter.seq:>7}  {letter.parked_at:%Y-%m-%d %H:%M:%S}  {letter.type}  {letter.subject}  "
                      f"{letter.error}")
            return 0
        try:
            letter = await dead_letters.replay(conn, bus, replay_seq)
        except dead_letters.ReplayFailed as error:
            print(f"cadenza dead-letters: {error}", file=sys.stderr)
            return 1
        print(f"replayed event {letter.seq} ({letter.type}); it is no longer parked")
        return 0
    finally:
        await conn.close()
        await bus.close()


def events(args: argparse.Namespace) -> int:
    if args.id and not args.aggregate:
        print("cadenza events: --id needs --aggregate (or use --run RUN_ID)", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    if not settings.nats_url:
        print("cadenza events needs NATS_URL (`cadenza up` prints it)", file=sys.stderr)
        return 2
    aggregate, aggregate_id = ("run", args.run) if args.run else (args.aggregate, args.id)
    try:
        asyncio.run(print_events(settings, aggregate, aggregate_id, args.follow))
    except KeyboardInterrupt:
        pass
    return 0


async def print_events(settings: Settings, aggregate: str | None, aggregate_id: str | None, follow: bool) -> None:
    from events.subjects import subject_filter
    from services.faults import TRANSIENT, Backoff

    subject = subject_filter(settings.namespace, aggregate, aggregate_id)
    bus = await settings.connect_bus()
    backoff, next_seq = Backoff(), 1
    try:
        await bus.ensure()
        while True:
            try:
                async for stored in bus.events(subject, start_seq=next_seq, follow=follow):
                    envelope = stored.envelope
                    print(f"{stored.seq:>7}  {envelope.occurred_at:%Y-%m-%d %H:%M:%S}  {envelope.aggregate} "
                          f"{envelope.aggregate_id}  {envelope.type} v{envelope.version}  "
                          f"{json.dumps(stored.event.model_dump(mode='json'))}", flush=True)
                    next_seq = stored.seq + 1
                    backoff.reset()
                return
            except TRANSIENT as error:
                if not follow:
                    raise
                # a server restart loses the reader: read on from the next event once it is back
                print(f"cadenza events: {type(error).__name__}: {error}; reading on from {next_seq}",
                      file=sys.stderr, flush=True)
                await backoff.wait()
    finally:
        await bus.close()


def _seconds(text: str) -> float:
    seconds = float(text)
    if not 0 < seconds < math.inf:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be above 0 seconds and finite, got {text}")
    return seconds


def declare(args: argparse.Namespace) -> int:
    from nats import errors as nats_errors

    settings = Settings.from_env()
    if not settings.nats_url:
        print("cadenza declare needs NATS_URL (`cadenza up` declares its private server's itself)", file=sys.stderr)
        return 2
    try:
        # The connection retries an unreachable server for ever, as services outlive NATS restarts.
        asyncio.run(asyncio.wait_for(_declare(settings), args.timeout))
    except TimeoutError:
        print(f"cadenza declare: no answer from NATS at {redacted(settings.nats_url)} within {args.timeout:g} s",
              file=sys.stderr)
        return 1
    except (OSError, ValueError, RuntimeError, nats_errors.Error) as error:  # say what failed, not a traceback
        print(f"cadenza declare: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"the stream and buckets of namespace {settings.namespace!r} have this release's settings")
    return 0


def nats_config(args: argparse.Namespace) -> int:
    from services import nats_users

    try:
        args.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        users = nats_users.passwords(args.folder)
        config = nats_users.write_server_config(args.folder, Settings.from_env().namespace, users)
        nats_users.write_user_passwords(args.folder, users)
        if args.store:
            nats_users.move_streams_into_their_account(args.store)
    except OSError as error:  # not a folder, not writable, the disk full: say which, not a traceback
        print(f"cadenza nats-config: cannot write into {error.filename or args.folder}: {error.strerror or error}",
              file=sys.stderr)
        return 2
    print(f"wrote {config}; users and passwords in {args.folder / 'users.json'}, each service's and the admin's "
          f"alone in {args.folder}/<user>/{nats_users.PASSWORD_FILE}")
    return 0


def train(arguments: list[str]) -> int:
    command = [sys.executable, "-m", "model.training.cli", "train", *arguments]
    os.execv(sys.executable, command)


def tiny_model(args: argparse.Namespace) -> int:
    from model.tiny import build_tiny_model

    print(build_tiny_model(args.dir))
    return 0


# --- running services ----------------------------------------------------------------------------

def _settings_with_servers(command: str) -> Settings:
    settings = Settings.from_env()
    missing = [name for name, value in (("NATS_URL", settings.nats_url), ("DATABASE_URL", settings.database_url))
               if not value]
    if missing:
        print(f"cadenza {command} needs {' and '.join(missing)} (`cadenza up` runs everything "
              f"on private servers instead)", file=sys.stderr)
        raise SystemExit(2)
    return settings


async def serve_api(settings: Settings, stop: asyncio.Event, host: str, port: int) -> None:
    import uvicorn

    from services.api.app import create_app

    # httptools parses HTTP in C: the pure-Python h11 was a large share of each request's CPU time.
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, http="httptools"))
    server.capture_signals = contextlib.nullcontext  # run_services owns SIGINT/SIGTERM and stops it
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        url = f"http://{host}:{port}"
        print(f"Cadenza API: {url}  (web UI: {url}/, OpenAPI docs: {url}/docs)", flush=True)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    server.should_exit = True
    await serving
