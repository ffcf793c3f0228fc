"""What workers tell clients (a run's log lines and errors, a generation's error) without the
folders of the server.

Where a worker keeps its files, and where Python and Cadenza are installed, are none of a
client's business. A traceback stays useful: its file names are shown relative to placeholders
such as `<site-packages>/torch/nn/modules/module.py`, with their line numbers.
"""
from __future__ import annotations

import re
import site
import sys
import sysconfig
from pathlib import Path

from services.trainer.process import model_source_root

CACHE_PLACEHOLDER = "<cache>"


def server_folders(cache_root: Path) -> dict[str, str]:
    """Each folder of this server that a run's output may name, with the placeholder shown instead."""
    folders = dict.fromkeys((sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix), "<python>")
    folders[sysconfig.get_path("stdlib")] = "<stdlib>"
    folders[str(model_source_root())] = "<source>"
    # Once Cadenza is installed its source folder is site-packages, which holds the libraries too.
    folders.update(dict.fromkeys((*site.getsitepackages(), site.getusersitepackages(),
                                  sysconfig.get_path("purelib"), sysconfig.get_path("platlib")), "<site-packages>"))
    folders[str(cache_root.absolute())] = CACHE_PLACEHOLDER
    # Replacing "/" would mangle every path.
    return {folder: placeholder for folder, placeholder in folders.items() if folder != "/"}


class ServerFolders:
    """Replaces the server's folders in text with their placeholders."""

    def __init__(self, cache_root: Path) -> None:
        self._placeholders = server_folders(cache_root)
        # Longest first, so a folder inside another (site-packages inside a prefix) gets its own
        # placeholder; and only whole names: "/opt/venv" is not replaced in "/opt/venv2".
        alternatives = "|".join(re.escape(folder) for folder in sorted(self._placeholders, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<![\w.-])(?:{alternatives})(?![\w-])")

    def hidden(self, text: str) -> str:
        return self._pattern.sub(lambda match: self._placeholders[match.group(0)], text)
