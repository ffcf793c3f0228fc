"""Paths in the settings mean what they meant where the command was started: the services then run
in an empty working directory of their own (services.supervisor.in_empty_folder)."""
import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest

from services.generator import settings as generator
from services.generator import worker as generator_worker
from services.settings import Settings
from services.trainer import settings as trainer
from services.trainer import worker as trainer_worker


def flags(module, *arguments: str):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.from_arguments(parser.parse_args(arguments))


def test_relative_paths_are_read_as_absolute_ones_from_where_the_command_was_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CADENZA_DATA_DIR", "data")
    monkeypatch.setenv("CADENZA_MODEL_DIRS", "models:more/models")
    monkeypatch.setenv("CADENZA_NATS_PASSWORD_FILE", "password")
    monkeypatch.setenv("CADENZA_TRAINER_PYTHON", "venv/bin/python")
    monkeypatch.setenv("CADENZA_GENERATOR_CACHE_DIR", "generator-cache")

    settings = Settings.from_env()
    assert (settings.data_dir, settings.cache_dir, settings.nats_password_file) == (
        tmp_path / "data", tmp_path / "data" / "cache", tmp_path / "password")
    assert settings.model_dirs == (tmp_path / "models", tmp_path / "more" / "models")
    assert (flags(trainer).python, flags(trainer, "--cache-dir", "cache").cache_dir) == (
        str(tmp_path / "venv" / "bin" / "python"), tmp_path / "cache")
    assert flags(trainer, "--python", "python3").python == "python3", "a bare name is looked up on PATH"
    assert flags(generator).cache_dir == tmp_path / "generator-cache"


def test_an_idle_workers_fetch_timeout_comes_from_its_variable_or_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENZA_TRAINER_FETCH_TIMEOUT", "0.5")
    monkeypatch.setenv("CADENZA_GENERATOR_FETCH_TIMEOUT", "0.25")
    assert (flags(trainer).fetch_timeout, flags(trainer, "--fetch-timeout", "3").fetch_timeout) == (0.5, 3)
    assert (flags(generator).fetch_timeout, flags(generator, "--fetch-timeout", "3").fetch_timeout) == (0.25, 3)
    bus = SimpleNamespace(subject_root="cadenza")  # all a work queue takes from the bus
    assert trainer_worker.work_queue(bus, flags(trainer)).fetch_timeout == 0.5
    assert generator_worker.work_queue(bus, flags(generator)).fetch_timeout == 0.25
    for module in (trainer, generator):
        for bad in ("0", "nan", "inf"):
            with pytest.raises(ValueError, match="fetch_timeout must be above 0 seconds and finite"):
                flags(module, "--fetch-timeout", bad)
