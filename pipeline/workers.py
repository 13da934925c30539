"""Process pools for the CPU-bound stages (corpus rendering, ingest decoding) that do not outlive their job.

A worker of a plain :class:`~concurrent.futures.ProcessPoolExecutor` keeps running when its parent is killed
(SIGTERM, SIGKILL, a lost terminal): it finishes its task and may write files long after the job is gone, for a
plan that a restarted job has since changed. :func:`worker_pool`'s workers exit when the parent process dies
(Linux: ``PR_SET_PDEATHSIG``; elsewhere they check their parent before each task). They are started with
``spawn``, not ``fork``: the parent may hold threads (tqdm, torch, Ray) that ``fork`` would copy.

    >>> with worker_pool(2) as pool:
    ...     sorted(pool.map(abs, [-2, 1]))
    [1, 2]
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def exit_with_parent(parent_pid: int) -> None:
    """For a worker process (a pool initializer, a helper process): the kernel sends SIGKILL to it when its parent exits."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the request above took effect
        os._exit(1)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A spawn-context pool of ``workers`` processes that die with the calling process."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=exit_with_parent, initargs=(os.getpid(),))
