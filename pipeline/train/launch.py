"""Launching a training recipe: Ray Train (default), or ``torchrun`` / ``deepspeed`` for Slurm users.

Ray Train's ``TorchTrainer`` starts ``train.num_workers`` workers and a torch process group (gloo on
CPU, nccl on GPU) that DeepSpeed reuses. When a worker dies, Ray Train restarts the group
(``train.max_failures`` times) and the recipe resumes from the latest complete checkpoint. Under
``torchrun``/``deepspeed`` (``WORLD_SIZE`` set) the recipe runs in the current process.

Usage::

    >>> result = launch(cfg, stage="distill", resume=False, fresh=True)       # doctest: +SKIP
    >>> result.run_dir  # doctest: +SKIP
    PosixPath('runs/demo/checkpoints/distill')
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import AuraConfig
from pipeline.layout import RunLayout

WORKER_ENV = {
    "OMP_NUM_THREADS": "1",  # one thread per worker: ~8x faster than oversubscribed cores here
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
}


class RunExistsError(RuntimeError):
    """Checkpoints exist and neither resume nor fresh was asked for."""


@dataclass
class LaunchResult:
    run_dir: Path
    launcher: str


def run_dir_for(cfg: AuraConfig, stage: str) -> Path:
    return RunLayout.of(cfg).stage_dir(stage)


def stage_config(cfg: AuraConfig, stage: str) -> AuraConfig:
    """``cfg`` with the stage's own train settings in force: stage 2 (``tasks``) takes ``train.tasks_*``
    (steps, learning rate, warmup) where they are set, and its own starting point (``tasks_init_from``,
    never stage 1's ``init_from``)."""
    if stage != "tasks":
        return cfg
    cfg = cfg.model_copy(deep=True)
    t = cfg.train
    t.max_steps = t.tasks_max_steps if t.tasks_max_steps is not None else t.max_steps
    t.lr = t.tasks_lr if t.tasks_lr is not None else t.lr
    t.warmup_steps = t.tasks_warmup_steps if t.tasks_warmup_steps is not None else t.warmup_steps
    t.init_from = t.tasks_init_from
    return cfg


def recipe_class(stage: str):
    """The recipe class that trains ``stage``: one recipe per training method. Imported where it runs (a
    training worker), so the driver never loads DeepSpeed."""
    from pipeline.train.distill import DistillRecipe
    from pipeline.train.tasks import TasksRecipe

    recipes = {"distill": DistillRecipe, "tasks": TasksRecipe}
    if stage not in recipes:
        raise ValueError(f"unknown stage {stage!r} ({' or '.join(recipes)})")
    return recipes[stage]


def _worker_environment() -> None:
    from pipeline.cluster import deepspeed_accelerator_for_host, quiet_worker

    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    deepspeed_accelerator_for_host()
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "aura" / "torch_extensions"))
    quiet_worker()


def train_worker(loop_config: dict[str, Any]) -> None:
    """The per-worker entry point (Ray Train, torchrun, deepspeed)."""
    _worker_environment()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = AuraConfig.model_validate_json(loop_config["config"])
    recipe = recipe_class(loop_config["stage"])(cfg, Path(loop_config["run_dir"]))
    try:
        recipe.setup()
        recipe.train()
    except BaseException:
        recipe.cleanup(clean_exit=False)  # no barrier: the other ranks may never reach it
        raise
    recipe.cleanup()


def prepare_run_dir(run_dir: Path, resume: bool, fresh: bool) -> None:
    checkpoints = run_dir / "checkpoints"
    has_checkpoints = checkpoints.exists() and any(checkpoints.iterdir())
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    elif has_checkpoints and not resume:
        raise RunExistsError(
            f"{run_dir} already holds checkpoints: pass --resume to continue that run or --fresh to start over"
        )
    run_dir.mkdir(parents=True, exist_ok=True)


def preflight(cfg: AuraConfig, stage: str) -> None:
    """Fail fast, in the driver, when the store does not fit the config or lacks targets.

    Raises ``FingerprintMismatch`` (naming the differing field) or ``TrainingDataError``.
    """
    from pipeline.store import open_store_for
    from pipeline.train.data import training_data
    from pipeline.train.recipe import starting_parts

    from pipeline.models.sources import resolve_model_dir

    # Convert/cache the LLM once here, not concurrently in every worker.
    resolve_model_dir(cfg.models.llm, cfg.models.cache_dir)
    store = open_store_for(cfg, mode="r")
    training_data(cfg, store).check_complete()  # and the replayed corpus's, whose store must fit the config too
    starting_parts(cfg, stage)  # the trained parts it starts from exist


def launch(cfg: AuraConfig, stage: str, resume: bool = False, fresh: bool = False,
           address: str | None = None) -> LaunchResult:
    """Train ``stage`` with the configured launcher; see the module docstring."""
    run_dir = run_dir_for(cfg, stage)
    cfg = stage_config(cfg, stage)
    preflight(cfg, stage)
    loop_config = {"config": cfg.model_dump_json(), "stage": stage, "run_dir": str(run_dir)}
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        # torchrun / deepspeed launcher: every process is a worker; rank 0 prepares the run dir.
        if int(os.environ["RANK"]) == 0:
            prepare_run_dir(run_dir, resume, fresh)
        train_worker(loop_config)
        return LaunchResult(run_dir, "torchrun")

    prepare_run_dir(run_dir, resume, fresh)
    import ray
    from ray.train import FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from pipeline.cluster import init_ray, verbose

    init_ray(address or cfg.precompute.address, num_cpus=max(os.cpu_count() or 1, cfg.train.num_workers))
    use_gpu = ray.cluster_resources().get("GPU", 0) > 0
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": 1}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(
            name=f"aura-{stage}",
            storage_path=str((run_dir / "ray").resolve()),
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            # Ray Train's own INFO lines (worker group placement) only with -v.
            logging_config=LoggingConfig(log_level="DEBUG" if verbose() else "WARNING"),
        ),
    )
    trainer.fit()
    return LaunchResult(run_dir, "ray")
