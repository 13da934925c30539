"""The released AuRA student shipped with the package: its trained parts and its model card.

The trained parts of a student are small (patch embedding, LoRA, distillation heads: a few MB in fp16);
the LLM they adapt is the bundled SmolLM2-135M-Instruct. ``aura transcribe`` and ``aura ask`` use the
released student when the config's workdir holds no trained export and none is given
(:func:`pipeline.infer.trained_export_path`).

    >>> student = released_student("bundled:smollm2-135m-instruct")
    >>> student is None or student.name == "student.safetensors"
    True
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

RELEASE_DIR = Path(__file__).resolve().parent / "aura-smollm2-135m-whisper-tiny-en"


def released_student(llm_spec: str) -> Path | None:
    """The released student file when it adapts ``llm_spec`` (the LLM it was trained on), else None."""
    path = RELEASE_DIR / "student.safetensors"
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("aura_release", "{}"))
    return path if meta.get("llm") == llm_spec else None


def released_results() -> dict | None:
    """The released student's headline results (``results.json`` beside its model card: held-out, dev and unseen-voice
    WER and QA, each beside what a read-out that does not listen scores), or None when no release is shipped.

    >>> r = released_results()
    >>> r is None or r["heldout"]["wer"] < r["heldout"]["wer_the_of_the"]
    True
    """
    path = RELEASE_DIR / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def released_examples() -> list[dict]:
    """The held-out clips shipped beside the released student (``examples/examples.jsonl``: ``file``, ``key``, ``task``,
    ``reference`` per clip), each row with ``path``, its audio file's full path; empty when no release is shipped.

    >>> all(row["path"].is_file() for row in released_examples())
    True
    """
    folder = RELEASE_DIR / "examples"
    return examples_in(folder) if (folder / "examples.jsonl").is_file() else []


def examples_in(folder: str | Path) -> list[dict]:
    """The clips a folder of examples indexes (``examples.jsonl``, a row per clip with its ``file`` name, e.g. a
    release's ``examples/``), each row with ``path``, its audio file's full path.

    >>> [row["file"] for row in examples_in(RELEASE_DIR / "examples")] == [row["file"] for row in released_examples()]
    True
    """
    folder = Path(folder)
    rows = [json.loads(line) for line in (folder / "examples.jsonl").read_text().splitlines()]
    return [{**row, "path": folder / row["file"]} for row in rows]


def pack_release(export: str | Path, out_dir: str | Path, llm_spec: str, facts: dict,
                 target_stats: str | Path | None = None) -> Path:
    """Write ``export``'s tensors in fp16 to ``out_dir/student.safetensors``, with its student metadata and
    ``facts`` (``llm`` = ``llm_spec``, data, budget, results) as ``aura_release`` metadata; ``target_stats`` (the
    training store's ``target_stats.npz``) is copied beside it: a run that goes on from the release without that
    store keeps its target space with it (``train.target_stats_from``). A teacher layers' positional table that is
    Whisper's formula (:func:`~pipeline.models.patch_embedding.whisper_positions`) is left out: loading computes it."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from pipeline.models.patch_embedding import whisper_positions
    from pipeline.models.student import TEACHER_POSITIONS_KEY

    export = Path(export)
    with safe_open(str(export), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    if "aura_student" not in metadata:
        raise ValueError(f"{export} is not an AuRA student file")
    tensors = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(str(export)).items()}
    table = tensors.get(TEACHER_POSITIONS_KEY)
    if table is not None and torch.equal(table.float(), whisper_positions(*table.shape)):
        del tensors[TEACHER_POSITIONS_KEY]  # Whisper's sinusoids: the loader computes them (1.15 MB for tiny.en)
    metadata["aura_release"] = json.dumps({**facts, "llm": llm_spec})
    out = Path(out_dir) / "student.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=metadata)
    stats_out = out.parent / "target_stats.npz"
    if target_stats is not None and Path(target_stats).resolve() != stats_out.resolve():  # a new release, same store
        shutil.copyfile(target_stats, stats_out)
    return out
