"""The empty working directory a killed worker leaves behind (services.supervisor.in_empty_folder) is
removed by the next worker to start; a live worker's, or one that holds anything, is left."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from services.supervisor import in_empty_folder

REPOSITORY = Path(__file__).resolve().parents[2]
# A worker in its working directory until killed: it prints the directory once it is in it.
WORKER = """
import os, time
from services.supervisor import in_empty_folder
with in_empty_folder():
    print(os.getcwd(), flush=True)
    time.sleep(600)
"""


def start_worker(temporary: Path) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "TMPDIR": str(temporary),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
    worker = subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, text=True)
    return worker, Path(worker.stdout.readline().strip())


def kill(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait()  # reaped: no process of its pid is left


def test_a_worker_at_start_removes_the_empty_working_directories_of_killed_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    killed, live, killed_but_written_in = (start_worker(tmp_path) for _ in range(3))
    try:
        kill(killed[0])
        kill(killed_but_written_in[0])
        (killed_but_written_in[1] / "left-over").write_text("")
        without_pid = tmp_path / "cadenza-workdir-k3x9_q2z"
        without_pid.mkdir()
        assert all(folder.is_dir() for folder in (killed[1], live[1], killed_but_written_in[1]))

        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        with in_empty_folder():
            own = Path.cwd()

        assert not killed[1].exists()
        assert [folder.is_dir() for folder in (live[1], killed_but_written_in[1], without_pid)] == [True] * 3
        assert own.parent == tmp_path and not own.exists()
    finally:
        for worker, _ in (killed, live, killed_but_written_in):
            kill(worker)
