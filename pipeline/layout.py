"""Where a training run keeps what it writes, in one place: every reader and writer asks here.

    <paths.checkpoints>/
      distill/                  stage 1 (one folder per stage)
        checkpoints/step-*/     resumable DeepSpeed checkpoints
        export/student.safetensors   the trained parts at the end of the stage
        exports/step-*.safetensors   the trained parts at every checkpoint (learning curves)
        metrics.csv, eval.csv   training and watched-split logs
      tasks/                    stage 2, the same layout
      bridge/projector.safetensors, bridge/metrics.csv   the bridge baseline

    >>> layout = RunLayout("/runs/demo/checkpoints")
    >>> str(layout.student("tasks"))
    '/runs/demo/checkpoints/tasks/export/student.safetensors'
    >>> str(layout.step_student("distill", 300))
    '/runs/demo/checkpoints/distill/exports/step-000300.safetensors'
"""

from __future__ import annotations

from pathlib import Path

STUDENT_FILE = "student.safetensors"


def stage_student(stage_dir: str | Path) -> Path:
    """The end-of-stage student file of a stage folder (also for folders outside a layout, e.g. sweeps)."""
    return Path(stage_dir) / "export" / STUDENT_FILE


class RunLayout:
    """The paths under one ``paths.checkpoints`` folder (see the module docstring)."""

    def __init__(self, checkpoints: str | Path):
        self.root = Path(checkpoints)

    @classmethod
    def of(cls, cfg) -> "RunLayout":
        """The layout of a config's ``paths.checkpoints``."""
        return cls(cfg.paths.checkpoints)

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def export_dir(self, stage: str) -> Path:
        return self.stage_dir(stage) / "export"

    def student(self, stage: str) -> Path:
        return stage_student(self.stage_dir(stage))

    def step_students_dir(self, stage: str) -> Path:
        return self.stage_dir(stage) / "exports"

    def step_student(self, stage: str, step: int) -> Path:
        return self.step_students_dir(stage) / f"step-{step:06d}.safetensors"

    def metrics(self, stage: str) -> Path:
        return self.stage_dir(stage) / "metrics.csv"

    def eval_log(self, stage: str) -> Path:
        return self.stage_dir(stage) / "eval.csv"

    @property
    def projector(self) -> Path:
        return self.stage_dir("bridge") / "projector.safetensors"
