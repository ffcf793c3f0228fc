"""Folders packed into single files for the object store, and back.

Checkpoints travel as tar (their tensors do not compress; tar keeps it a plain copy), adapters as
zip (what a person or a deployment script opens without tools). Both are written to a file next to
the folder rather than into memory, since a real checkpoint holds optimizer state of some size.
"""
from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def pack_tar(folder: Path, archive: Path) -> Path:
    """`folder`'s files under the folder's own name, e.g. `step-000010/adapter_model.safetensors`."""
    with tarfile.open(archive, "w") as tar:
        for path in _files(folder):
            tar.add(path, arcname=str(Path(folder.name) / path.relative_to(folder)))
    return archive


def unpack_tar(archive: Path, destination: Path) -> Path:
    """Extract into `destination` (refusing links and paths outside it); return the folder it held."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        names = {Path(member.name).parts[0] for member in tar.getmembers()}
        if len(names) != 1:
            raise ValueError(f"{archive}: expected one folder, found {sorted(names)}")
        tar.extractall(destination, filter="data")
    return destination / names.pop()


def pack_zip(folder: Path, archive: Path) -> Path:
    """`folder`'s files at the zip's top level (an adapter folder: config, weights, manifest)."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zip_file:
        for path in _files(folder):
            zip_file.write(path, arcname=str(path.relative_to(folder)))
    return archive


def unpack_zip(archive: Path, destination: Path) -> Path:
    """Extract a zip written by `pack_zip` into `destination`, refusing paths that leave it."""
    destination.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zip_file:
        for name in zip_file.namelist():
            if not (destination / name).resolve().is_relative_to(destination.resolve()):
                raise ValueError(f"{archive}: {name!r} would be written outside {destination}")
        zip_file.extractall(destination)
    return destination
