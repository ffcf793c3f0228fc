"""What a generation worker holds: one MusicGenerator per base model, loaded on first use, and the
adapters' folders, fetched from the object store into a content-addressed cache."""
from __future__ import annotations

import asyncio
import os
import tempfile
import zipfile
from pathlib import Path

from nats.js.errors import NotFoundError

from events.base import ObjectRef
from events.bus import Bus
from events.objects import ObjectCorrupted
from model.errors import InputError
from model.generate import MusicGenerator
from services.generator.settings import GeneratorSettings
from services.trainer.archive import unpack_zip
from services.trainer.export import ObjectCache


class BadAdapter(Exception):
    """The adapter's weights cannot be fetched or unpacked: no retry will change that."""


class BaseModels:
    """One MusicGenerator per base model, loaded once (in a thread: it takes seconds to minutes)."""

    def __init__(self, settings: GeneratorSettings) -> None:
        self._settings = settings
        self._generators: dict[str, MusicGenerator] = {}
        self._lock = asyncio.Lock()

    async def get(self, base_model: str) -> MusicGenerator:
        """The generator of `base_model`; InputError if it cannot be loaded (unknown id, no folder)."""
        async with self._lock:
            if base_model not in self._generators:
                self._generators[base_model] = await asyncio.to_thread(
                    MusicGenerator, base_model, self._settings.device, self._settings.precision,
                    self._settings.max_adapters)
            return self._generators[base_model]


class AdapterFolders:
    """Adapters unpacked under `<root>/adapters/<sha256>`, from zips fetched into `<root>/objects`.
    A folder is renamed into place only once complete, so one that exists is the adapter."""

    def __init__(self, bus: Bus, root: Path) -> None:
        self._objects = ObjectCache(bus, root / "objects")
        self._root = root / "adapters"
        self._locks: dict[str, asyncio.Lock] = {}

    async def folder(self, adapter_id: str, ref: ObjectRef) -> Path:
        """The adapter's folder; BadAdapter if its object is missing, corrupted or not a zip."""
        folder = self._root / ref.sha256
        async with self._locks.setdefault(ref.sha256, asyncio.Lock()):
            if folder.exists():
                return folder
            try:
                archive = await self._objects.fetch(ref)
            except (NotFoundError, ObjectCorrupted) as error:  # a transient error is raised as it is: retried
                raise BadAdapter(f"the weights of adapter '{adapter_id}' ({ref.bucket}/{ref.name}) cannot be "
                                 f"fetched: {type(error).__name__}: {error}") from error
            self._root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self._root, prefix=".unpack-") as unpacking:
                try:
                    await asyncio.to_thread(unpack_zip, archive, Path(unpacking) / "adapter")
                except (zipfile.BadZipFile, ValueError) as error:
                    raise BadAdapter(f"the weights of adapter '{adapter_id}' are not an adapter zip: {error}") from error
                os.replace(Path(unpacking) / "adapter", folder)
        return folder


async def warm(models: BaseModels, folders: AdapterFolders, base_model: str, adapter_id: str,
               ref: ObjectRef) -> MusicGenerator:
    """`base_model`'s generator with the adapter loaded on it; InputError or BadAdapter say why not."""
    generator = await models.get(base_model)
    folder = await folders.folder(adapter_id, ref)
    try:
        await asyncio.to_thread(generator.warm, adapter_id, folder)
    except InputError as error:
        raise BadAdapter(f"adapter '{adapter_id}' does not load onto '{base_model}': {error}") from error
    return generator
