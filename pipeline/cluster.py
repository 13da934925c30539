"""The Ray runtime the jobs share: joining a cluster or starting a local one, and whether to use GPUs."""

from __future__ import annotations

import logging
import os
from typing import Literal


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join ``address`` (or $RAY_ADDRESS), else start a local Ray bound to loopback."""
    import ray

    if ray.is_initialized():
        return
    quiet_ray()
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        # Ray Train's controller uses the state API, which lives in the dashboard process: keep it,
        # bound to loopback. Token auth is Ray's default; nothing listens beyond this machine.
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=True, dashboard_host="127.0.0.1",
                 logging_level=logging.WARNING, _node_ip_address="127.0.0.1")


# Loggers whose warnings say nothing a user of these jobs can act on (shown with -v / --verbose).
_NOISY_LOGGERS = (
    "ray._private.authentication.authentication_token_setup",  # "token authentication is enabled" (the default)
    "ray.data",  # execution plans and "progress bars disabled": the jobs draw their own bar
)


def quiet_ray() -> None:
    """Hide Ray's start-up notices and Ray Data's execution logs unless debug logging is on (``-v``).
    Call it again after importing ``ray.data``, which configures its own loggers on import."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def cluster_has_gpu(policy: Literal["auto", "always", "never"], setting: str) -> bool:
    """Whether a job's workers take a GPU each: ``auto`` when the Ray cluster has any; ``always`` refuses
    a cluster without one (``setting`` names the config field in the message)."""
    if policy == "never":
        return False
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if policy == "always" and gpus == 0:
        raise RuntimeError(f"{setting}=always but the Ray cluster has no GPU")
    return gpus > 0
