"""A run's dataset, exported from the stream to the JSONL the model CLI reads, with local audio.

The trainer depends on the stream only (not on the registry's PostgreSQL): the dataset is the
`ClipAdded` (supervised) or `PreferencePairAdded` (preference) events of its history up to the run
request, less those a `ClipRemoved` / `PreferencePairRemoved` before the request took out, so a run
trains on exactly what its dataset held when it was requested, on every attempt.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path, PurePosixPath

from nats.js.errors import NotFoundError

from events.base import AudioFile, ObjectRef
from events.bus import Bus
from events.objects import ObjectCorrupted
from events.reader import StoredEvent
from events.codec import UndecodableEvent
from events.catalogue import ClipAdded, ClipRemoved, DatasetKind, PreferencePairAdded, PreferencePairRemoved

# A dataset's events that must be readable: skipping one would train on the wrong rows.
DATASET_EVENTS = tuple(
    event.event_name() for event in (ClipAdded, PreferencePairAdded, ClipRemoved, PreferencePairRemoved)
)
AUDIO_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")
PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")


class ObjectCache:
    """Objects fetched from the object store into `<root>/<sha256>`, shared by runs and processes.

    Content-addressed: a file is only ever renamed into place once its sha256 was verified, so one
    that exists is correct. Each download goes to its own temporary folder first, so concurrent
    fetches of the same object (two runs, two trainers on one disk) never write the same file.
    """

    def __init__(self, bus: Bus, root: Path) -> None:
        self._bus = bus
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}

    async def fetch(self, ref: ObjectRef) -> Path:
        path = self.root / ref.sha256
        async with self._locks.setdefault(ref.sha256, asyncio.Lock()):
            if path.exists():
                return path
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.root, prefix=".download-") as folder:
                downloaded = await self._bus.get_file(ref, Path(folder) / ref.sha256)
                os.replace(downloaded, path)
        return path


class DatasetUnavailable(Exception):
    """An audio file of the dataset is missing from the object store or no longer matches its
    checksum, or one of its clips or pairs cannot be read: no retry will bring it back."""


def dataset_rows(history: list[StoredEvent], dataset_type: DatasetKind, up_to_seq: int) -> list[dict]:
    """The dataset's rows as (prompt, audio files) records, in the order they were added, without
    those removed before the run request. Like the registry, a row is added once (an add stored
    again keeps its first place) and a removed one stays removed, re-added or not."""
    rows: dict[str, dict] = {}
    removed: set[str] = set()
    for stored in history:
        if stored.seq >= up_to_seq:
            break
        event = stored.event
        if dataset_type == "supervised" and isinstance(event, ClipAdded):
            rows.setdefault(event.clip_id, {"id": event.clip_id, "prompt": event.prompt, "audio": {"audio_path": event.audio}})
        elif dataset_type == "preference" and isinstance(event, PreferencePairAdded):
            audio = {"chosen_path": event.chosen, "rejected_path": event.rejected}
            rows.setdefault(event.pair_id, {"id": event.pair_id, "prompt": event.prompt, "audio": audio})
        elif isinstance(event, ClipRemoved):
            removed.add(event.clip_id)
        elif isinstance(event, PreferencePairRemoved):
            removed.add(event.pair_id)
    return [row for row_id, row in rows.items() if row_id not in removed]


def _link_name(number: int, row_id: str, role: str, audio: AudioFile) -> str:
    """`<clip or pair id>-<role>.<extension>`, the model naming that in its errors. The uploader's
    file name is never part of a path (it may be `..`, hold a slash, anything), nor is an id that
    is not a plain token (the stream may hold events of other producers): then the row's number
    stands in. The extension, which tells the decoder the format, is the stored object's."""
    name = row_id if PLAIN_TOKEN.fullmatch(row_id) else f"row-{number}"
    suffix = PurePosixPath(audio.name).suffix
    return f"{name}-{role}{suffix if AUDIO_SUFFIX.fullmatch(suffix) else ''}"


async def export_dataset(bus: Bus, cache: ObjectCache, dataset_id: str, dataset_type: DatasetKind,
                         up_to_seq: int, folder: Path) -> Path:
    """Write `<folder>/dataset.jsonl` with audio paths into `<folder>/audio/`, linked to the cache;
    return its path. Its digest is the model CLI's to take (its `started` line reports it)."""
    try:
        history = await bus.history("dataset", dataset_id, needed=DATASET_EVENTS)
    except UndecodableEvent as error:
        raise DatasetUnavailable(f"dataset {dataset_id}: {error}") from error
    rows = dataset_rows(history, dataset_type, up_to_seq)
    audio_folder = folder / "audio"
    lines = []
    for number, row in enumerate(rows, start=1):
        line = {"id": row["id"], "prompt": row["prompt"]}
        for key, audio in row["audio"].items():
            try:
                cached = await cache.fetch(audio)
            except (ObjectCorrupted, NotFoundError) as error:
                problem = "does not match its checksum" if isinstance(error, ObjectCorrupted) else "is missing"
                raise DatasetUnavailable(
                    f"{audio.filename} (row {row['id']} of dataset {dataset_id}): the stored audio {problem} "
                    f"in the object store ({error}); upload the file again"
                ) from error
            link = audio_folder / _link_name(number, row["id"], key.removesuffix("_path"), audio)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(cached)
            line[key] = str(link)
        lines.append(json.dumps(line))
    path = folder / "dataset.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
