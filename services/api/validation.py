"""What the stream and the read models can hold, checked on every request before anything is
published: text without NUL characters or unpaired surrogates (PostgreSQL and UTF-8 refuse them),
numbers that are finite (JSON has no NaN or Infinity, PostgreSQL's jsonb neither), times with a
time zone that exist in UTC (asyncpg converts them to UTC for PostgreSQL)."""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field

# json.loads joins a valid surrogate pair into one character, so any surrogate left is unpaired.
UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    if (found := UNSTORABLE_CHARACTER.search(text)) is not None:
        character = found.group()
        what = "a NUL character" if character == "\x00" else "an unpaired surrogate"
        raise ValueError(f"contains {what} (U+{ord(character):04X}) at position {found.start()}, which cannot be stored")
    return text


def storable_json(value: Any, path: str = "") -> Any:
    """`value` unchanged if every text and number in it can be stored; else a ValueError naming
    where (`path`, e.g. `config.learning_rate`) and what is wrong."""
    where = f"{path}: " if path else ""
    if isinstance(value, str):
        try:
            storable_text(value)
        except ValueError as error:
            raise ValueError(f"{where}{error}") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}must be a finite number, not {value}")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_json(key, f"{path}.{key!r}" if path else repr(key))
            storable_json(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            storable_json(item, f"{path}[{index}]")
    return value


def storable_moment(moment: datetime) -> datetime:
    try:
        moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("is outside the years 1 to 9999 in UTC") from None
    return moment


Text = Annotated[str, AfterValidator(storable_text)]
Name = Annotated[str, Field(min_length=1), AfterValidator(storable_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(storable_json)]
# A naive time would be compared with aware ones, and asyncpg would read it in the server's zone.
Moment = Annotated[AwareDatetime, AfterValidator(storable_moment)]


def renderable(value: Any) -> Any:
    """`value` with what JSON cannot carry made printable: a 422 quotes the input it refused,
    which may be NaN or hold an unpaired surrogate."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {renderable(key): renderable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [renderable(item) for item in value]
    return value
