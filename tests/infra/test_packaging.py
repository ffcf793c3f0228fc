"""An installed Cadenza (a wheel, as in the Docker image) has the files its services read at run time,
not only the Python modules."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
READ_AT_RUN_TIME = ("services/registry/migrations", "services/api/static")


def packaged_data() -> set[Path]:
    """The files setuptools puts in the wheel beside the modules, from pyproject's package-data."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    return {path for package, patterns in package_data.items() for pattern in patterns
            for path in (ROOT / package).glob(pattern) if path.is_file()}


def test_migrations_and_the_web_ui_ship_in_the_wheel() -> None:
    needed = {path for folder in READ_AT_RUN_TIME for path in (ROOT / folder).rglob("*")
              if path.is_file() and "__pycache__" not in path.parts}
    assert any(path.suffix == ".sql" for path in needed)
    assert needed - packaged_data() == set()
