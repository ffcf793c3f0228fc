"""The README's two set-up commands are what users and CI run."""
import argparse
import re
from pathlib import Path

from services.cli import _parser

ROOT = Path(__file__).parents[2]


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+)\n```", (ROOT / "README.md").read_text())


def test_the_readme_has_one_command_to_start_and_one_to_test() -> None:
    start, test = readme_commands()
    assert start.startswith("python3 -m venv .venv && ") and start.endswith(" && .venv/bin/cadenza up")
    assert test.startswith("python3 -m venv .venv && ") and test.endswith(" && .venv/bin/python -m pytest")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in ci_lines
    assert ci_lines[-1] == readme_commands()[1]


def test_the_readme_lists_every_cadenza_command_and_no_other() -> None:
    documented = set(re.findall(r"^\| `cadenza ([a-z-]+)", (ROOT / "README.md").read_text(), re.MULTILINE))
    commands = next(action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert documented == set(commands.choices)
