"""What a multi-engine corpus holds: ``summary.json``, a short ``summary.md`` and ``summary.png``.

Counts come from the manifest (utterances and hours per split, distinct sentences and word types,
voices per engine, rows per QA family and augmentation); Whisper's WER per voice comes twice: on clean
clips before rendering (the voice check that set the shares) and on the corpus as built (augmented
rows of each voice and split, the first ``corpus.wer_sample_per_voice`` in manifest order; transcripts
are cached in ``summary_transcripts.json``, so a grown corpus only transcribes new rows). The targets of
the training corpus are checked and shown as a table.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.config import CorpusConfig
from pipeline.fs import atomic_write_bytes, atomic_write_text

SUMMARY_JSON, SUMMARY_MD, SUMMARY_PNG = "summary.json", "summary.md", "summary.png"
TRANSCRIPTS_NAME = "summary_transcripts.json"

TARGETS = {
    "train_utterances": 20_000,
    "train_hours": 15.0,
    "train_distinct_sentences": 15_000,
    "train_word_types": 10_000,
    "voices": 6,
    "engines": 3,
}
"""What the training corpus must reach; and voices Whisper hears poorly may make at most this much of its audio:"""
MAX_POOR_VOICE_AUDIO_SHARE = 0.2


def _words(text: str) -> list[str]:
    from pipeline.eval.metrics import normalize_text

    return normalize_text(text).split()


def _as_built_wer(out_dir: Path, rows: list[dict], cfg: CorpusConfig, teacher: str, cache_dir: Path,
                  progress: bool) -> dict[str, dict[str, float]]:
    from pipeline.models.teacher import whisper_transcripts
    from pipeline.eval.metrics import word_error_rate

    picked: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        group = picked[row["voice"], row["split"]]
        if len(group) < cfg.wer_sample_per_voice:
            group.append(row)
    cache_path = out_dir / TRANSCRIPTS_NAME
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    if cache.get("whisper") != teacher:
        cache = {"whisper": teacher, "transcripts": {}}
    known = cache["transcripts"]
    missing = [row for group in picked.values() for row in group if row["key"] not in known]
    if missing:
        clips = [sf.read(out_dir / row["audio"], dtype="float32")[0] for row in missing]
        label = f"summary: Whisper ({teacher}) transcribes rendered clips" if progress else None
        for row, text in zip(missing, whisper_transcripts(clips, teacher, cache_dir, progress=label)):
            known[row["key"]] = text
        partial = cache_path.with_name(cache_path.name + ".partial")
        partial.write_text(json.dumps(cache))
        os.replace(partial, cache_path)
    wer: dict[str, dict[str, float]] = defaultdict(dict)
    for (voice, split), group in sorted(picked.items()):
        if group:
            result = word_error_rate([r["text"] for r in group], [known[r["key"]] for r in group])
            wer[voice][split] = round(result.wer, 4)
    return dict(wer)


def summarize(rows: list[dict], cfg: CorpusConfig, voice_check: dict, build: dict,
              as_built_wer: dict[str, dict[str, float]] | None = None) -> dict:
    """The summary of a manifest's ``rows`` (see the module docstring); pure, so tests can call it."""
    from pipeline.data.qa import ACCURACY_FILE

    hours = Counter()
    by_split = Counter()
    voice_hours: dict[str, Counter] = defaultdict(Counter)
    voice_rows: dict[str, Counter] = defaultdict(Counter)
    words: dict[str, set[str]] = defaultdict(set)
    sentences: dict[str, set[str]] = defaultdict(set)
    tasks: dict[str, Counter] = defaultdict(Counter)
    families: dict[str, Counter] = defaultdict(Counter)
    questions: dict[str, set[str]] = defaultdict(set)
    augments = Counter()
    for row in rows:
        split, seconds = row["split"], row["duration"]
        by_split[split] += 1
        hours[split] += seconds / 3600
        voice_hours[row["voice"]][split] += seconds / 3600
        voice_rows[row["voice"]][split] += 1
        tasks[split][row["task"]] += 1
        words[split].update(_words(row["text"]))
        augments[row["augment"]] += 1
        if row["task"] == "transcribe":
            sentences[split].add(row["text"])
        else:
            families[split][row["qa_family"]] += 1
            questions[split].add(row["text"])
    voice_wer = voice_check.get("wer", {})
    poor = {v for v, w in voice_wer.items() if w is not None and w > cfg.poor_voice_wer}
    train_hours = hours["train"] or 1.0
    engines_of = defaultdict(set)
    for voice in voice_hours:
        engines_of[voice.split(":", 1)[0]].add(voice)
    accuracy = json.loads(ACCURACY_FILE.read_text()) if ACCURACY_FILE.is_file() else {}
    family_accuracy = accuracy.get("families", accuracy)
    summary = {
        "utterances": dict(by_split),
        "hours": {s: round(h, 3) for s, h in hours.items()},
        "tasks": {s: dict(c) for s, c in tasks.items()},
        "distinct_sentences": {s: len(v) for s, v in sentences.items()},
        "distinct_questions": {s: len(v) for s, v in questions.items()},
        "word_types": {s: len(v) for s, v in words.items()},
        "heldout_word_types_unseen_in_train": len(words["heldout"] - words["train"]),
        "voices": {v: {"engine": v.split(":", 1)[0], "hours": {s: round(h, 3) for s, h in voice_hours[v].items()},
                       "rows": dict(voice_rows[v]), "whisper_wer_clean": voice_wer.get(v),
                       "whisper_wer_as_built": (as_built_wer or {}).get(v, {}),
                       # of the rows as built: with corpus.voice_growth a voice's planned share differs by stage
                       "training_share": round(voice_rows[v].get("train", 0) / (by_split["train"] or 1), 4)}
                   for v in sorted(voice_hours)},
        "voices_per_engine": {e: sorted(v) for e, v in sorted(engines_of.items())},
        "training_voices": sorted(v for v in voice_hours if voice_hours[v]["train"] > 0),
        "dropped_voices": voice_check.get("dropped", {}),
        "poor_voice_audio_share": round(sum(voice_hours[v]["train"] for v in poor) / train_hours, 4),
        "qa_families": {f: {"rows": {s: families[s][f] for s in families if families[s][f]},
                            "text_llm_accuracy": (family_accuracy.get(f) or {}).get("accuracy")}
                        for f in sorted({f for c in families.values() for f in c})},
        "augmentation": dict(augments.most_common()),
        "build": build,
    }
    if build.get("render_wall_seconds"):
        core_minutes = build["render_wall_seconds"] * build["workers"] / 60
        summary["build"]["utterances_per_core_minute"] = round(build["rendered_rows"] / core_minutes, 1)
        summary["build"]["audio_hours_per_core_minute"] = round(build["rendered_audio_seconds"] / 3600 / core_minutes, 4)
    training_voices = summary["training_voices"]
    reached = {
        "train_utterances": by_split["train"],
        "train_hours": round(hours["train"], 2),
        "train_distinct_sentences": len(sentences["train"]),
        "train_word_types": len(words["train"]),
        "voices": len(voice_hours),
        "engines": len(engines_of),
    }
    summary["targets"] = {name: {"target": goal, "reached": reached[name], "met": reached[name] >= goal}
                          for name, goal in TARGETS.items()}
    summary["targets"]["poor_voice_audio_share"] = {
        "target": MAX_POOR_VOICE_AUDIO_SHARE, "reached": summary["poor_voice_audio_share"],
        "met": summary["poor_voice_audio_share"] <= MAX_POOR_VOICE_AUDIO_SHARE}
    summary["training_voices_count"] = len(training_voices)
    return summary


def _percent(value) -> str:
    return "" if value is None or value != value else f"{100 * value:.1f} %"


def render_markdown(summary: dict) -> str:
    """``summary.md``: targets, voices, splits, QA families, augmentation, build speed."""
    lines = ["# Speech corpus", "", "| target | goal | reached | met |", "|---|---|---|---|"]
    for name, t in summary["targets"].items():
        goal = f"<= {t['target']}" if name == "poor_voice_audio_share" else f">= {t['target']}"
        lines.append(f"| {name} | {goal} | {t['reached']} | {'yes' if t['met'] else 'no'} |")
    lines += ["", "| split | utterances | hours | distinct sentences | distinct questions | word types |",
              "|---|---|---|---|---|---|"]
    for split in ("train", "dev", "heldout"):
        if split in summary["utterances"]:
            lines.append(f"| {split} | {summary['utterances'][split]} | {summary['hours'][split]:.2f} | "
                         f"{summary['distinct_sentences'].get(split, 0)} | {summary['distinct_questions'].get(split, 0)} | "
                         f"{summary['word_types'].get(split, 0)} |")
    lines += ["", "Whisper WER per voice: on clean clips (the voice check that set the shares) and on the corpus as "
              "built (augmented rows). Share: of the training rows.", "",
              "| voice | engine | train h | dev h | held-out h | share | WER clean | WER as built (train) | "
              "WER as built (held-out) |", "|---|---|---|---|---|---|---|---|---|"]
    for voice, v in summary["voices"].items():
        h = v["hours"]
        built = v["whisper_wer_as_built"]
        lines.append(f"| {voice} | {v['engine']} | {h.get('train', 0):.2f} | {h.get('dev', 0):.2f} | "
                     f"{h.get('heldout', 0):.2f} | {_percent(v['training_share'])} | {_percent(v['whisper_wer_clean'])} | "
                     f"{_percent(built.get('train'))} | {_percent(built.get('heldout'))} |")
    for voice, reason in summary["dropped_voices"].items():
        lines.append(f"\nLeft out: {voice} ({reason}).")
    lines += ["", "| QA family | train rows | dev rows | held-out rows | text-LLM accuracy |", "|---|---|---|---|---|"]
    for family, f in summary["qa_families"].items():
        r = f["rows"]
        lines.append(f"| {family} | {r.get('train', 0)} | {r.get('dev', 0)} | {r.get('heldout', 0)} | "
                     f"{_percent(f['text_llm_accuracy'])} |")
    aug = ", ".join(f"{k} {n}" for k, n in summary["augmentation"].items())
    lines += ["", f"Augmentation (rows): {aug}.", ""]
    b = summary["build"]
    if b.get("utterances_per_core_minute"):
        lines.append(f"Build: {b['rendered_rows']} rows rendered in {b['render_wall_seconds']:.0f} s on {b['workers']} "
                     f"workers ({b['utterances_per_core_minute']} utterances and {b['audio_hours_per_core_minute']} audio "
                     f"hours per core-minute); {b['reused_parts']} parts reused, {b['rejected_rows']} rows rejected.")
    return "\n".join(lines) + "\n"


def plot_summary(summary: dict, path: Path) -> Path:
    """``summary.png``: hours per voice and split, Whisper WER per voice, text-LLM accuracy per QA family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    voices = list(summary["voices"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    bottom = np.zeros(len(voices))
    for split, color in (("train", "tab:blue"), ("dev", "tab:orange"), ("heldout", "tab:green")):
        values = np.array([summary["voices"][v]["hours"].get(split, 0.0) for v in voices])
        axes[0].bar(voices, values, bottom=bottom, label=split, color=color)
        bottom += values
    axes[0].set_title("audio hours per voice")
    axes[0].legend()
    x = np.arange(len(voices))
    clean = [summary["voices"][v]["whisper_wer_clean"] or 0 for v in voices]
    # as built: the voice's training rows (a held-out voice's held-out rows); dev samples are few
    built = [(lambda w: w.get("train", w.get("heldout", 0)) or 0)(summary["voices"][v]["whisper_wer_as_built"])
             for v in voices]
    axes[1].bar(x - 0.2, np.array(clean) * 100, 0.4, label="clean (voice check)")
    axes[1].bar(x + 0.2, np.array(built) * 100, 0.4, label="as built (augmented, train / held-out rows)")
    axes[1].set_xticks(x, voices)
    axes[1].set_title("Whisper WER per voice (%)")
    axes[1].legend()
    families = list(summary["qa_families"])
    accuracy = [(summary["qa_families"][f]["text_llm_accuracy"] or 0) * 100 for f in families]
    axes[2].bar(families, accuracy, color="tab:purple")
    axes[2].set_title("text-only LLM accuracy per QA family (%)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.tight_layout()
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def write_summary(out_dir: Path, cfg: CorpusConfig, voice_check, build: dict, *, teacher: str | None = None,
                  cache_dir: Path | None = None, progress: bool = True) -> dict:
    """Write ``summary.json``, ``summary.md`` and ``summary.png`` for the manifest in ``out_dir``."""
    from pipeline.config import ModelsConfig

    out_dir = Path(out_dir)
    models = ModelsConfig()
    rows = [json.loads(line) for line in (out_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if line]
    check = voice_check.to_dict() if hasattr(voice_check, "to_dict") else dict(voice_check)
    as_built = None
    if cfg.wer_sample_per_voice:
        as_built = _as_built_wer(out_dir, rows, cfg, teacher or check.get("whisper") or models.teacher,
                                 cache_dir or models.cache_dir, progress)
    summary = summarize(rows, cfg, check, build, as_built)
    # New files renamed into place, never rewritten: a hard-linked copy of this corpus keeps its own.
    atomic_write_text(out_dir / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    markdown = render_markdown(summary)
    atomic_write_text(out_dir / SUMMARY_MD, markdown)
    plot_summary(summary, out_dir / SUMMARY_PNG)
    if progress:
        print(markdown, flush=True)
    return summary
