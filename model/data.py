"""Dataset JSONL files: one row per line, checked before any training starts.

supervised:  {"prompt": str, "audio_path": str}
preference:  {"prompt": str, "chosen_path": str, "rejected_path": str}

Relative paths resolve against the JSONL file's folder. Other keys (ids the exporter adds)
are ignored. Blank lines are skipped.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from model.errors import InputError

AUDIO_FIELDS = {"supervised": ("audio_path",), "preference": ("chosen_path", "rejected_path")}


@dataclass(frozen=True)
class Row:
    line: int
    prompt: str
    # One path for supervised rows, (chosen, rejected) for preference rows.
    audio: tuple[Path, ...]


def read_rows(path: Path, dataset_type: str) -> list[Row]:
    """Parse and check every row of `path`; raise InputError with the line number on the first bad one."""
    if not path.is_file():
        raise InputError(f"{path}: dataset file not found")
    fields = AUDIO_FIELDS[dataset_type]
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if text.strip():
                rows.append(_parse(text, number, path, fields))
    if not rows:
        raise InputError(f"{path}: dataset has no rows")
    return rows


def _parse(text: str, number: int, path: Path, fields: tuple[str, ...]) -> Row:
    where = f"{path}, line {number}"
    try:
        item = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(item).__name__}")
    for key in ("prompt", *fields):
        if key not in item:
            raise InputError(f"{where}: missing field {key!r} (rows need {', '.join(('prompt', *fields))})")
        if not isinstance(item[key], str) or not item[key].strip():
            raise InputError(f"{where}: field {key!r} must be a non-empty string")
    audio = []
    for key in fields:
        audio_path = Path(item[key]).expanduser()
        if not audio_path.is_absolute():
            audio_path = path.parent / audio_path
        if not audio_path.is_file():
            raise InputError(f"{where}: {key} {str(audio_path)!r} does not exist")
        audio.append(audio_path)
    return Row(line=number, prompt=item["prompt"], audio=tuple(audio))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_digest(rows: list[Row], audio_sha256: dict[Path, str]) -> str:
    """sha256 of the rows' prompts and audio contents, in order: independent of where the files lie,
    so a run resumed on another machine can check it has the same data."""
    canonical = [[row.prompt, [audio_sha256[p] for p in row.audio]] for row in rows]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()
