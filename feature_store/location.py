"""Where a store lives: a local directory or an fsspec URL, with the atomic writes, listings, sizes and
fsyncs the store needs from either (:class:`StoreLocation`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import zarr


class StoreLocation:
    """Filesystem operations on the store root that zarr does not offer (markers, deletes,
    listing, fsync), for a local directory or, through fsspec, a remote URL."""

    def __init__(self, path: str | os.PathLike[str], storage_options: dict[str, Any] | None):
        text = os.fspath(path)
        self.storage_options = storage_options or {}
        if "://" in text and not text.startswith("file://"):
            import fsspec

            self.local = False
            self.fs, self.root = fsspec.core.url_to_fs(text, **self.storage_options)
            self.url = text.rstrip("/")
        else:
            self.local = True
            self.fs = None
            self.root = str(Path(text.removeprefix("file://")).absolute())
            self.url = self.root

    def path(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def zarr_path(self, rel: str = "") -> str:
        return f"{self.url}/{rel}" if rel else self.url

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.path(rel)) if self.local else self.fs.exists(self.path(rel))

    def read_text(self, rel: str) -> str | None:
        try:
            if self.local:
                with open(self.path(rel)) as f:
                    return f.read()
            return self.fs.cat_file(self.path(rel)).decode()
        except FileNotFoundError:
            return None

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            if self.local:
                with open(self.path(rel), "rb") as f:
                    return f.read()
            return self.fs.cat_file(self.path(rel))
        except FileNotFoundError:
            return None

    def write_text_atomic(self, rel: str, text: str, fsync: bool) -> None:
        self.write_bytes_atomic(rel, text.encode(), fsync)

    def write_bytes_atomic(self, rel: str, payload: bytes, fsync: bool) -> None:
        if not self.local:
            self.fs.pipe_file(self.path(rel), payload)  # object PUTs are atomic
            return
        target = Path(self.path(rel))
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
        if fsync:
            fsync_dir(target.parent)

    def delete_file(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.local:
                os.unlink(self.path(rel))
            else:
                self.fs.rm_file(self.path(rel))

    def rmtree(self, rel: str) -> None:
        if self.local:
            shutil.rmtree(self.path(rel), ignore_errors=True)
        elif self.fs.exists(self.path(rel)):
            self.fs.rm(self.path(rel), recursive=True)

    def list_dirs(self, rel: str) -> list[str]:
        if self.local:
            try:
                return [e.name for e in os.scandir(self.path(rel)) if e.is_dir()]
            except FileNotFoundError:
                return []
        if not self.fs.exists(self.path(rel)):
            return []
        return [
            info["name"].rstrip("/").rsplit("/", 1)[-1]
            for info in self.fs.ls(self.path(rel), detail=True)
            if info["type"] == "directory"
        ]

    def du(self, rel: str = "") -> int:
        if not self.local:
            return int(self.fs.du(self.path(rel))) if self.fs.exists(self.path(rel)) else 0
        total = 0
        for dirpath, _, files in os.walk(self.path(rel)):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(dirpath, name)).st_size
        return total

    def fsync_tree(self, rel: str) -> None:
        """Flush a written group to stable storage before its marker says it is complete."""
        if not self.local:
            return
        for dirpath, _, files in os.walk(self.path(rel)):
            for name in files:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def create_root_exclusively(loc: StoreLocation, attributes: dict[str, Any]) -> None:
    """Create the root group unless one exists; of two concurrent creators exactly one wins
    (locally: build zarr.json in a temp dir and hard-link it into place)."""
    if not loc.local:
        with contextlib.suppress(zarr.errors.ContainsGroupError, FileExistsError):
            zarr.open_group(
                loc.zarr_path(), mode="w-", attributes=attributes, zarr_format=3,
                storage_options=loc.storage_options,
            )
        return
    os.makedirs(loc.root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".creating-", dir=loc.root)
    try:
        zarr.open_group(tmp, mode="w", attributes=attributes, zarr_format=3)
        with contextlib.suppress(FileExistsError):
            os.link(os.path.join(tmp, "zarr.json"), loc.path("zarr.json"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
