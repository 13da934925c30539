"""The converted-model cache: each bundled or random model is built once into ``cache_dir/<name>-<key>``.

A build is written into a hidden temporary directory and renamed into place only when complete (its
marker written last, its files fsynced first), under a file lock so that concurrent processes build it
once; temporary directories of killed builders are removed. :func:`weights_fingerprint` hashes a model
directory's weights, cached beside them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator


from feature_store.lease import pid_alive
from pipeline.fs import file_sha256, fsync_dir

from pipeline.cluster import deepspeed_accelerator_for_host, quiet_transformers
from pipeline.models.errors import ModelNotFoundError

logger = logging.getLogger(__name__)

#: Bump when a converter or random config changes, so old cache entries are not reused.
CONVERTER_VERSION = 1
#: Written last into a cache entry; an entry without it is incomplete.
COMPLETE_MARKER = "aura_source.json"
FINGERPRINT_FILE = ".aura_weights_fingerprint.json"
_TEMP_PREFIX = ".tmp-"


def announce(message: str) -> None:
    """Log at INFO; also print to stderr when logging is not configured (conversions take seconds)."""
    logger.info(message)
    if not logging.getLogger().hasHandlers():
        from tqdm import tqdm

        tqdm.write(f"[aura] {message}", file=sys.stderr)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock, so concurrent processes do not convert the same model twice."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_complete(entry: Path) -> bool:
    return (entry / COMPLETE_MARKER).is_file() and (entry / "config.json").is_file()


def _remove_dead_temp_dirs(cache_dir: Path, entry_name: str) -> None:
    """Delete temp dirs of ``entry_name`` left by killed processes on this host (others are ignored)."""
    host = socket.gethostname()
    for tmp in cache_dir.glob(f"{_TEMP_PREFIX}{entry_name}-*"):
        parts = tmp.name[len(f"{_TEMP_PREFIX}{entry_name}-"):].rsplit("-", 2)
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not pid_alive(int(parts[1])):
            shutil.rmtree(tmp, ignore_errors=True)


def _relax_permissions(directory: Path) -> None:
    """Give every file the umask's default mode (some writers create private 0600 files), so a
    shared cache is readable by whoever could read a normally created file."""
    probe = directory / ".mode-probe"
    probe.touch()
    mode = probe.stat().st_mode & 0o777
    probe.unlink()
    for f in directory.iterdir():
        if f.is_file() and f.stat().st_mode & 0o777 != mode:
            f.chmod(mode)


def _fsync_files(directory: Path) -> None:
    """fsync a directory's files and the directory entry itself."""
    for path in directory.iterdir():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(directory)


def cached_build(cache_dir: Path, entry_name: str, build: Callable[[Path], None], info: dict) -> Path:
    """Return ``cache_dir/entry_name``, building it first (atomically) if it is not complete."""
    entry = cache_dir / entry_name
    if _is_complete(entry):
        return entry
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / f".{entry_name}.lock"):
        if _is_complete(entry):  # another process finished it while we waited
            return entry
        _remove_dead_temp_dirs(cache_dir, entry_name)
        tmp = cache_dir / f"{_TEMP_PREFIX}{entry_name}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            announce(f"building {info['spec']} into {entry} ...")
            start = time.perf_counter()
            deepspeed_accelerator_for_host()
            with quiet_transformers():  # conversion and loading bars: the two lines around it say enough
                build(tmp)
            _relax_permissions(tmp)
            weights_fingerprint(tmp)  # precompute; its cache stays valid after the rename
            seconds = time.perf_counter() - start
            (tmp / COMPLETE_MARKER).write_text(json.dumps({**info, "build_seconds": round(seconds, 2)}, indent=2))
            _fsync_files(tmp)  # the data is on disk before the name says "complete"
            if entry.exists():  # an incomplete entry (no marker): move it aside, then drop it
                stale = cache_dir / f"{_TEMP_PREFIX}{entry_name}-stale-{secrets.token_hex(4)}"
                os.replace(entry, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, entry)
            fsync_dir(cache_dir)
            announce(f"built {info['spec']} in {seconds:.1f} s")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return entry


def cache_key(payload: dict) -> str:
    blob = json.dumps({"converter_version": CONVERTER_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_fingerprint(model_dir: str | Path) -> str:
    """sha256 over a model directory's safetensors files (name and bytes, in name order).

    The result is cached in ``.aura_weights_fingerprint.json`` beside the files, keyed by each
    file's size and mtime, so asking again costs a ``stat``. Feature stores use it to tell
    teacher weights apart.

    >>> weights_fingerprint(resolve_model_dir("bundled:whisper-tiny.en"))  # doctest: +SKIP
    'c3d5...'
    """
    model_dir = Path(model_dir)
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ModelNotFoundError(f"No *.safetensors files in {model_dir} to fingerprint")
    stats = {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}
    cache_file = model_dir / FINGERPRINT_FILE
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(cache_file.read_text())
        if cached.get("files") == stats and isinstance(cached.get("sha256"), str):
            return cached["sha256"]
    hasher = hashlib.sha256()
    for f in files:
        hasher.update(f.name.encode() + b"\0")
        file_sha256(f, hasher)
    digest = hasher.hexdigest()
    with contextlib.suppress(OSError):  # a read-only directory just means no cache
        tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"sha256": digest, "files": stats}))
        os.replace(tmp, cache_file)
    return digest
