import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """An empty data folder. Not under pytest's tmp_path: as root the embedded PostgreSQL runs as
    the `postgres` user, which cannot enter pytest's private /tmp/pytest-of-root."""
    path = Path(tempfile.mkdtemp(prefix="cadenza-infra-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
