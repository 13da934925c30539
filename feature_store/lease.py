"""Per-shard leases: how concurrent precompute jobs agree on who writes which shard group.

Zarr does not protect an array from two writers, so every shard group has exactly one writer,
the holder of its lease. A lease is a small JSON file ``<lease_dir>/<shard>.lease`` (owner, a
random token, pid, hostname, process start time, heartbeat time, ttl) that appears atomically:
it is written in full to a temporary file and hard-linked into place, which fails if the lease
exists (the same exclusivity as ``os.open(O_CREAT | O_EXCL)``, but nobody ever reads a
half-written lease; hard links are also the classic NFS-safe lock). Leases need a POSIX
directory shared by all workers (local disk, NFS, Lustre), not an object store.

A lease may be stolen when its holder is gone: its pid is dead on this host (or was reused by
another process), or its heartbeat is older than its ttl. The holder renews the heartbeat from
a background thread while it writes::

    >>> from feature_store.lease import try_claim
    >>> lease = try_claim("/data/store.zarr/_leases", "shard-000042", owner="precompute-7")
    >>> if lease is not None:  # doctest: +SKIP
    ...     with lease.keep_alive():       # heartbeat every ttl/4 until the block ends
    ...         ...                        # write the shard group
    ...     lease.release()

Stealing renames the stale file away (atomic, only one thief succeeds) and checks that what it
moved is the very lease it judged stale; if a fresh lease slipped in between, it is put back.
Wall-clock heartbeats assume hosts whose clocks agree to well within the ttl.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TTL_S = 300.0


class LeaseLost(RuntimeError):
    """The lease file no longer carries our token: another worker took the shard."""


def _process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        if fields[0] == "Z":  # a zombie has exited; it only waits to be reaped
            return -1
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` runs on this host (and, given ``start_ticks``, is still the same process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    live_start = _process_start_ticks(pid)
    if live_start == -1:
        return False
    if start_ticks is not None and live_start is not None and live_start != start_ticks:
        return False  # the pid now belongs to a different process
    return True


def _atomic_write_json(path: Path, payload: dict[str, Any], exclusive: bool) -> None:
    """Write ``payload`` to a temp file, fsync it, then link (exclusive) or rename it into place."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # raises FileExistsError when someone holds it
            except FileExistsError:
                raise
            except OSError:
                # No hard links here (some FUSE filesystems): fall back to O_EXCL creation.
                fd2 = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd2, "w") as f:
                    json.dump(payload, f)
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def read_lease_file(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The lease's JSON content; None when absent; ``{}`` when unreadable (being created)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


def stale_reason(info: dict[str, Any], path: Path, now: float | None = None) -> str | None:
    """Why the lease ``info`` (read from ``path``) may be stolen, or None while it is live."""
    now = time.time() if now is None else now
    if not info:
        # Only the O_EXCL fallback can expose an empty lease, and only for a moment.
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            return "lease vanished"
        return f"unreadable lease {age:.0f}s old" if age > DEFAULT_TTL_S else None
    if info.get("hostname") == socket.gethostname() and not pid_alive(
        int(info["pid"]), info.get("process_start")
    ):
        return f"holder pid {info['pid']} on {info['hostname']} is dead"
    age = now - float(info.get("heartbeat", 0.0))
    if age > float(info.get("ttl_s", DEFAULT_TTL_S)):
        return f"heartbeat {age:.0f}s old exceeds ttl {info.get('ttl_s')}s"
    return None


@dataclass
class Lease:
    """Exclusive right to write one shard group; see the module docstring."""

    path: Path
    shard_name: str
    owner: str
    token: str
    pid: int
    hostname: str
    ttl_s: float
    heartbeat: float
    process_start: int | None = None
    _lost: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def _payload(self) -> dict[str, Any]:
        return {
            "shard_name": self.shard_name,
            "owner": self.owner,
            "token": self.token,
            "pid": self.pid,
            "hostname": self.hostname,
            "process_start": self.process_start,
            "heartbeat": self.heartbeat,
            "ttl_s": self.ttl_s,
        }

    def is_held(self) -> bool:
        """True while the lease file still carries this lease's token."""
        info = read_lease_file(self.path)
        return bool(info) and info.get("token") == self.token

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless this lease is still ours."""
        if self._lost.is_set() or not self.is_held():
            self._lost.set()
            raise LeaseLost(f"lease on shard {self.shard_name!r} ({self.path}) was taken over")

    def renew(self) -> None:
        """Push the heartbeat forward; raises :class:`LeaseLost` if the lease was stolen."""
        self.check()
        # Between this check and the rename a thief could only act if our heartbeat had already
        # expired, i.e. this process stalled for a whole ttl; keep ttl >> renewal interval.
        self.heartbeat = time.time()
        _atomic_write_json(self.path, self._payload(), exclusive=False)

    def release(self) -> None:
        """Remove the lease file if it is still ours (a stolen lease is left to its new owner)."""
        if self.is_held():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @contextlib.contextmanager
    def keep_alive(self, interval_s: float | None = None) -> Iterator[Lease]:
        """Renew the heartbeat from a daemon thread every ``interval_s`` (ttl/4) in the block.

        A failed renewal marks the lease lost; writers call :meth:`check` before committing.
        """
        interval = self.ttl_s / 4 if interval_s is None else interval_s
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self.renew()
                except LeaseLost:
                    return
                except OSError:
                    continue  # transient filesystem trouble: try again next beat

        thread = threading.Thread(target=beat, name=f"lease-{self.shard_name}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()


def lease_path(lease_dir: str | os.PathLike[str], shard_file_name: str) -> Path:
    return Path(lease_dir) / f"{shard_file_name}.lease"


def try_claim(
    lease_dir: str | os.PathLike[str],
    shard_name: str,
    owner: str,
    ttl_s: float = DEFAULT_TTL_S,
    *,
    file_name: str | None = None,
) -> Lease | None:
    """Take the lease on ``shard_name``, stealing a stale one; None when someone live holds it.

    ``file_name`` is the filesystem-safe form of the shard name (defaults to the name itself).
    """
    lease_dir = Path(lease_dir)
    lease_dir.mkdir(parents=True, exist_ok=True)
    path = lease_path(lease_dir, file_name or shard_name)
    for _ in range(3):  # a steal frees the name; a bounded retry avoids livelock
        lease = Lease(
            path=path,
            shard_name=shard_name,
            owner=owner,
            token=uuid.uuid4().hex,
            pid=os.getpid(),
            hostname=socket.gethostname(),
            ttl_s=float(ttl_s),
            heartbeat=time.time(),
            process_start=_process_start_ticks(os.getpid()),
        )
        try:
            _atomic_write_json(path, lease._payload(), exclusive=True)
            return lease
        except FileExistsError:
            pass
        info = read_lease_file(path)
        if info is None:
            continue  # released between our attempt and the read: try again
        if stale_reason(info, path) is None:
            return None
        if not _steal(path, info):
            return None
    return None


def _steal(path: Path, stale_info: dict[str, Any]) -> bool:
    """Move the stale lease away; True when the name is free for a new claim."""
    moved = path.with_name(f".{path.name}.stolen.{uuid.uuid4().hex}")
    try:
        os.rename(path, moved)  # atomic: of several thieves exactly one moves a given file
    except FileNotFoundError:
        return True  # someone else removed it; competing for the name is fine
    try:
        moved_info = read_lease_file(moved) or {}
        if moved_info.get("token") != stale_info.get("token"):
            # We moved a lease created after our staleness check: give it back unless yet
            # another worker already claimed the name (then that worker holds the shard).
            with contextlib.suppress(FileExistsError):
                os.link(moved, path)
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(moved)


def active_leases(lease_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Content of every lease file present, with a ``stale`` reason (None when live)."""
    lease_dir = Path(lease_dir)
    if not lease_dir.is_dir():
        return []
    out = []
    for path in sorted(lease_dir.glob("*.lease")):
        info = read_lease_file(path)
        if info is None:
            continue
        out.append({**info, "stale": stale_reason(info, path)})
    return out
