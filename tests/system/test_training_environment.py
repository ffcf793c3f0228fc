"""A training process gets none of its trainer's settings or server credentials, and all the rest
of its environment (what CUDA, torch and Hugging Face are configured with)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

WITHHELD = {
    "NATS_URL": "nats://trainer:nats-secret@127.0.0.1:4222",
    "NATS_PASSWORD": "nats-secret",
    "DATABASE_URL": "postgresql://cadenza:pg-secret@127.0.0.1:5432/cadenza",
    "PGPASSWORD": "pg-secret",
    "PGPASSFILE": "/secrets/pgpass",
    "CADENZA_API_TOKEN": "api-secret",
    "CADENZA_NATS_CREDS": "/secrets/trainer.creds",
    "CADENZA_NATS_PASSWORD_FILE": "/secrets/trainer/password",
    "CADENZA_TRAINER_ID": "trainer-from-env",
}
PASSED_ON = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": "/tmp"}


def python_that_records_its_environment(folder: Path, record: Path) -> Path:
    """An executable the trainer runs as its `python`: it writes the environment it was given to
    `record`, then runs the real Python with the same arguments and environment."""
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nenv -0 > "{record}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def recorded(record: Path) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in record.read_text().split("\0") if entry)


async def test_a_training_process_gets_no_settings_or_credentials_of_its_trainer(
        cadenza, training_config, tmp_path, monkeypatch):
    for name, value in {**WITHHELD, **PASSED_ON}.items():
        monkeypatch.setenv(name, value)
    record = tmp_path / "environment"
    cadenza.start_trainer(python=str(python_that_records_its_environment(tmp_path, record)))
    experiment = await cadenza.supervised_experiment(training_config(max_steps=1))

    run = await cadenza.wait_for_run((await cadenza.request_run(experiment))["id"])

    assert run["status"] == "completed", run
    environment = recorded(record)
    assert set(WITHHELD) & set(environment) == set()
    assert [value for value in environment.values() if "secret" in value] == []
    assert {name: environment.get(name) for name in [*PASSED_ON, "PATH"]} == {**PASSED_ON, "PATH": os.environ["PATH"]}
