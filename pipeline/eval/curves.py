"""Learning curves: held-out WER and spoken-QA accuracy against the examples a student has seen.

Every checkpoint of a training stage leaves a small student file under ``<run>/exports/step-N.safetensors``
(:meth:`pipeline.train.recipe.StudentRecipe.save_checkpoint`). This module answers the same held-out
requests with each of them (batched greedy decoding, encoder-free) and writes a table, a JSON file and a
plot, beside what answering without hearing scores on the same requests: an empty transcript (WER
100 %; a guessed sentence usually scores worse) and, for the spoken questions, always the most frequent
training answer.

    >>> points = learning_curve(cfg, "runs/speech/checkpoints/tasks", max_samples=200)   # doctest: +SKIP
    >>> write_curves(points, "benchmarks/results/student")                             # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.config import AuraConfig
from pipeline.layout import RunLayout


def checkpoint_exports(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, file)`` of every per-checkpoint student file of a stage's run folder, by step."""
    found = []
    run_dir = Path(run_dir)
    for path in RunLayout(run_dir.parent).step_students_dir(run_dir.name).glob("step-*.safetensors"):
        match = re.fullmatch(r"step-(\d+)\.safetensors", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def guess_baselines(cfg: AuraConfig, items) -> dict[str, Any]:
    """What answering without hearing scores on ``items``: the most frequent training answer for the
    questions, and an empty transcript (WER 100 %) for transcription."""
    from pipeline.data.shards import ShardSet
    from pipeline.eval.metrics import qa_accuracy, word_error_rate
    from pipeline.prompts import target_for

    rows = [r for r in ShardSet(cfg.paths.shards).manifest_rows() if (r.get("split") or "train") == "train"]
    answers = Counter(target_for(r).lower() for r in rows if r.get("task") == "spoken_qa")
    common = answers.most_common(1)[0][0] if answers else ""
    qa = [i for i in items if i.task == "spoken_qa"]
    trans = [i for i in items if i.task == "transcribe"]
    out: dict[str, Any] = {"most_frequent_answer": common}
    if qa:
        out["qa_accuracy"] = qa_accuracy([common] * len(qa), [i.answers or [i.reference] for i in qa]).accuracy
    if trans:
        out["wer_empty"] = word_error_rate([i.reference for i in trans], [""] * len(trans)).wer
    return out


def evaluate_export(cfg: AuraConfig, export: Path, items, batch_size: int = 8, max_new_tokens: int | None = None,
                    progress: bool = True, desc: str = "") -> dict[str, Any]:
    """WER and QA accuracy of one student file on ``items`` (batched; greedy)."""
    from tqdm import tqdm

    from pipeline.eval.metrics import qa_accuracy, word_error_rate
    from pipeline.eval.run import free_memory
    from pipeline.infer import EncoderFreeModel

    model = EncoderFreeModel.from_export(cfg.models.llm, export, cache_dir=cfg.models.cache_dir,
                                         trust_remote_code=cfg.models.trust_remote_code)
    limit = max_new_tokens or cfg.eval.max_new_tokens
    order = sorted(range(len(items)), key=lambda i: len(items[i].audio))  # similar lengths batch well
    texts: dict[int, str] = {}
    bar = tqdm(total=len(items), desc=desc or f"curve {export.stem}", disable=not progress, unit="utt")
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        results = model.generate([items[i].audio for i in chunk], [items[i].instruction for i in chunk], limit)
        for i, result in zip(chunk, results):
            texts[i] = result.text
        bar.update(len(chunk))
    bar.close()
    predictions = [texts[i] for i in range(len(items))]
    del model
    free_memory()
    trans = [(i, p) for i, p in zip(items, predictions) if i.task == "transcribe"]
    qa = [(i, p) for i, p in zip(items, predictions) if i.task == "spoken_qa"]
    return {
        "wer": word_error_rate([i.reference for i, _ in trans], [p for _, p in trans]).wer if trans else None,
        "qa_accuracy": qa_accuracy([p for _, p in qa], [i.answers or [i.reference] for i, _ in qa]).accuracy if qa else None,
        "distinct_outputs": len(set(predictions)),
        "examples": [{"key": i.key, "task": i.task, "reference": i.reference, "prediction": p}
                     for i, p in list(zip(items, predictions))[:6]],
    }


def learning_curve(cfg: AuraConfig, run_dir: str | Path, max_samples: int | None = 200, steps: Sequence[int] | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Evaluate every checkpoint file of ``run_dir`` (or those at ``steps``) on the held-out split."""
    from pipeline.eval.run import heldout_items
    from pipeline.train.launch import stage_config

    stage = Path(run_dir).name
    stage_cfg = stage_config(cfg, stage if stage in ("distill", "tasks") else "tasks")
    examples_per_step = stage_cfg.train.batch_size * stage_cfg.train.num_workers
    items, _ = heldout_items(cfg, max_samples)
    exports = checkpoint_exports(run_dir)
    start = RunLayout(Path(run_dir).parent).student("distill")
    if stage == "tasks" and start.is_file():
        exports.insert(0, (0, start))  # stage 2 starts from the stage-1 student: the curve's first point
    exports = [(s, p) for s, p in exports if steps is None or s in set(steps)]
    if not exports:
        raise FileNotFoundError(f"no per-checkpoint student files under {Path(run_dir) / 'exports'}")
    points = []
    for step, path in exports:
        result = evaluate_export(cfg, path, items, progress=progress, desc=f"curve step {step}")
        points.append({"step": step, "examples_seen": step * examples_per_step, "export": str(path), **result})
    return {"run_dir": str(run_dir), "utterances": len(items),
            "transcribe": sum(i.task == "transcribe" for i in items),
            "spoken_qa": sum(i.task == "spoken_qa" for i in items),
            "baselines": guess_baselines(cfg, items), "points": points}


def write_curves(curve: dict[str, Any], out_dir: str | Path, name: str = "learning_curve") -> dict[str, Path]:
    """``<name>.json``, ``<name>.md`` (table) and ``<name>.png`` (WER and QA accuracy against examples seen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md", "png": out / f"{name}.png"}
    paths["json"].write_text(json.dumps(curve, indent=1))
    base = curve["baselines"]
    lines = [f"# Learning curve ({curve['run_dir']})", "",
             f"Held-out split: {curve['transcribe']} transcriptions, {curve['spoken_qa']} spoken questions "
             "(voices and texts never trained on).", "",
             "| step | examples seen | WER ↓ | QA accuracy ↑ | distinct outputs |", "|---|---|---|---|---|"]
    for p in curve["points"]:
        wer = "" if p["wer"] is None else f"{100 * p['wer']:.1f}%"
        acc = "" if p["qa_accuracy"] is None else f"{100 * p['qa_accuracy']:.1f}%"
        lines.append(f"| {p['step']} | {p['examples_seen']} | {wer} | {acc} | {p['distinct_outputs']} |")
    lines += ["", "Without hearing: an empty transcript scores WER "
              f"{100 * base.get('wer_empty', float('nan')):.1f}%; always answering the most frequent training "
              f"answer ({base.get('most_frequent_answer')!r}) scores QA accuracy "
              f"{100 * base.get('qa_accuracy', float('nan')):.1f}%."]
    paths["md"].write_text("\n".join(lines) + "\n")

    xs = [p["examples_seen"] for p in curve["points"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label, guess in ((axes[0], "wer", "held-out WER", base.get("wer_empty")),
                                  (axes[1], "qa_accuracy", "held-out QA accuracy", base.get("qa_accuracy"))):
        ys = [np.nan if p[key] is None else 100 * p[key] for p in curve["points"]]
        ax.plot(xs, ys, marker="o", label="AuRA")
        if guess is not None:
            ax.axhline(100 * guess, color="grey", linestyle="--", label="without hearing")
        ax.set_xlabel("training examples seen (stage 2)")
        ax.set_ylabel(f"{label} (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths
