"""The Ray runtime the jobs share: joining a cluster or starting a local one, and whether to use GPUs."""

from __future__ import annotations

import contextlib
import io
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
        # The preemption watcher reports spot-node notices, which a single machine never gets; Ray announces
        # its actor with a warning on every training run.
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
        # Ray Train's controller uses the state API, which lives in the dashboard process: keep it,
        # bound to loopback. Token auth is Ray's default; nothing listens beyond this machine.
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=True, dashboard_host="127.0.0.1",
                 logging_level=logging.WARNING, _node_ip_address="127.0.0.1")


# Loggers whose warnings say nothing a user of these jobs can act on (shown with -v / --verbose).
_NOISY_LOGGERS = (
    "ray._private.authentication.authentication_token_setup",  # "token authentication is enabled" (the default)
    "ray.data",  # execution plans and "progress bars disabled": the jobs draw their own bar
)


VERBOSE_ENV = "AURA_VERBOSE"  # set by `aura -v`; Ray workers inherit it


def verbose() -> bool:
    """Whether the user asked for library output (``aura -v``): every notice is shown then."""
    return os.environ.get(VERBOSE_ENV) == "1"


def quiet_ray() -> None:
    """Hide Ray's start-up notices and Ray Data's execution logs unless ``-v``. Call it again after
    importing ``ray.data``, which configures its own loggers on import."""
    # Ray Train routes workers' print() through a logger that also echoes it: every line twice.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    if verbose():
        return
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def deepspeed_accelerator_for_host() -> None:
    """Name DeepSpeed's accelerator (CPU on a host without CUDA) before anything imports it: otherwise it
    guesses, and warns about the guess, in every process that imports it (transformers may, on a save)."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def quiet_worker() -> None:
    """In a training worker: hide DeepSpeed's notices and torch.distributed's deprecation warnings unless ``-v``."""
    if verbose():
        return
    import warnings

    from deepspeed.utils import logger as deepspeed_logger

    deepspeed_logger.setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")


@contextlib.contextmanager
def quiet_stdout():
    """Swallow what a library prints to stdout inside the block (DeepSpeed announces its built ops) unless ``-v``."""
    if verbose():
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


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


@contextlib.contextmanager
def quiet_transformers():
    """transformers' warnings about its own internal arguments (Whisper's generate warns on every call)
    and its weight-loading bars, hidden for the block; keeps the terminal readable."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
