"""Crash-safe file writes shared by the pipeline's writers (shards, manifests, batch-inference parts).

A writer puts its bytes in a temporary file named after itself (``.<name>.tmp-<host>.<pid>``) beside
the target, fsyncs it and renames it into place, so a reader sees the old file or the whole new one,
never half of one. A writer killed mid-write leaves only its temporary file, which the next run
removes once that pid is gone (files of live writers, or of other hosts on a shared file system, stay).

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write_bytes(folder / "a.txt", b"hello")
    >>> (folder / "a.txt").read_bytes()
    b'hello'
    >>> remove_stale_temp_files(folder)
    []
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
from pathlib import Path
from typing import BinaryIO, Callable

from feature_store.lease import pid_alive

_TEMP_NAME = re.compile(r"^\..+\.tmp-(?P<host>[^.]+)\.(?P<pid>\d+)$")


def _host() -> str:
    return socket.gethostname().replace(".", "_")


def temp_path_for(path: Path) -> Path:
    """Where this process writes ``path`` before renaming it into place."""
    return path.with_name(f".{path.name}.tmp-{_host()}.{os.getpid()}")


def file_sha256(path: Path, digest=None) -> str:
    """The hex SHA-256 of a file's bytes, read 1 MiB at a time; with ``digest`` (a hashlib object), the
    bytes are added to it, so several files can make one digest."""
    digest = digest or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where the file system cannot fsync a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, content: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``content`` (bytes, or a function that writes to an open binary file) to ``path`` atomically."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temporary files of writers that were killed (their pid is gone on this host)."""
    folder = Path(folder)
    removed = []
    for path in folder.glob(".*.tmp-*") if folder.is_dir() else []:
        match = _TEMP_NAME.match(path.name)
        if match is None or match["host"] != _host() or pid_alive(int(match["pid"])):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
