"""Worker pools die with their job: a killed parent leaves no worker behind to write files later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from feature_store.lease import pid_alive


def test_workers_exit_when_the_parent_is_killed(tmp_path: Path):
    pid_file = tmp_path / "worker.pid"
    script = textwrap.dedent(f"""
        import os, time
        from pipeline.workers import worker_pool

        def task(path):
            open(path, "w").write(str(os.getpid()))
            time.sleep(120)

        if __name__ == "__main__":
            with worker_pool(1) as pool:
                pool.submit(task, {str(pid_file)!r}).result()
    """)
    (tmp_path / "job.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "job.py")], cwd=Path(__file__).resolve().parents[1],
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    deadline = time.monotonic() + 60
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline and parent.poll() is None, "the worker never started"
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    assert pid_alive(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while pid_alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(worker), "the worker outlived its killed parent"
