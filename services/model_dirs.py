"""Which `base_model` a client may ask for: a Hugging Face hub id, or a local folder inside one of
the folders the operator allows (`CADENZA_MODEL_DIRS`).

The check reads the name alone and never the file system, so its answer is the same whether a
folder exists or not, and tells a client nothing about the servers' disks.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

# `name` or `owner/name`: letters, digits, `-`, `_`, `.`, not starting with `.` or `-`.
HUB_ID = re.compile(r"[A-Za-z0-9_][\w.-]*(/[A-Za-z0-9_][\w.-]*)?")


def base_model_refusal(name: str, model_dirs: Sequence[Path]) -> str | None:
    """Why `name` may not be used as a base model, or None when it may."""
    if ".." not in name and HUB_ID.fullmatch(name):
        return None
    if os.path.isabs(name):
        folder = os.path.normpath(name)  # lexically: "/models/../etc" is "/etc"
        for allowed in model_dirs:
            root = os.path.normpath(os.path.abspath(allowed))
            if os.path.commonpath([folder, root]) == root:
                return None
    return ("must be a Hugging Face hub id (e.g. facebook/musicgen-small) or the absolute path of a folder "
            "inside one of the model folders this server allows (CADENZA_MODEL_DIRS)")
