"""The evaluation report: ``report.md`` (tables + a few lines of interpretation), ``report.json`` and PNG plots.

:func:`write_report` takes the results dictionary that :func:`pipeline.eval.run.run_eval` builds
(the same dictionary is written as ``report.json``) and writes, into one folder:

* ``report.md`` — systems table (WER, QA accuracy, latency p50/p95, time to first token, peak
  memory, audio tokens), per-layer cosine table, interpretation, external datasets, example outputs;
* ``quality.png`` (WER and QA accuracy per system), ``latency.png`` (p50/p95 latency and TTFT),
  ``memory.png`` (peak memory), ``cosine.png`` (per-layer held-out cosine per export) and
  ``training.png`` (curves from ``<checkpoints>/{distill,tasks}/{metrics,eval}.csv`` and the bridge's
  ``metrics.csv``, when present).

Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

SYSTEM_ORDER = ("aura", "aura_ctc", "bridge", "cascade", "text")
LABELS = {"aura": "AuRA", "aura_ctc": "AuRA (CTC read-out)", "bridge": "Bridge", "cascade": "Cascade",
          "text": "Text-only"}
COLORS = {"aura": "#1f77b4", "aura_ctc": "#17becf", "bridge": "#ff7f0e", "cascade": "#2ca02c", "text": "#7f7f7f"}


def format_value(value: Any, digits: int = 3, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if percent:
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _systems(results: dict) -> list[str]:
    present = results.get("systems", {})
    return [s for s in SYSTEM_ORDER if s in present] + [s for s in present if s not in SYSTEM_ORDER]


def _ok_systems(results: dict) -> list[str]:
    return [s for s in _systems(results) if results["systems"][s].get("status") == "ok"]


def _set(results: dict, system: str, name: str = "heldout") -> dict:
    return results["systems"][system].get("sets", {}).get(name, {})


def _get(d: dict, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


# ------------------------------------------------------------------------------------------------
# CSV curves


def read_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics CSV with numeric values (non-numeric cells dropped); [] when missing."""
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for k, v in raw.items():
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    continue
            if "step" in row:
                rows.append(row)
    return rows


def training_curves(checkpoints: Path) -> dict[str, list[dict[str, float]]]:
    """The training CSVs that exist under ``checkpoints``."""
    curves = {
        "distill_metrics": read_csv(checkpoints / "distill" / "metrics.csv"),
        "distill_eval": read_csv(checkpoints / "distill" / "eval.csv"),
        "tasks_metrics": read_csv(checkpoints / "tasks" / "metrics.csv"),
        "tasks_eval": read_csv(checkpoints / "tasks" / "eval.csv"),
        "bridge_metrics": read_csv(checkpoints / "bridge" / "metrics.csv"),
    }
    return {k: v for k, v in curves.items() if v}


# ------------------------------------------------------------------------------------------------
# Plots


def headline(results: dict[str, Any], split: str = "heldout") -> list[str]:
    """One line per evaluated system: WER, QA accuracy and median latency on ``split`` (for a terminal).

    >>> headline({"systems": {"aura": {"status": "ok", "sets": {"heldout": {"utterances": 8,
    ...     "wer": {"wer": 0.5}, "qa": {"accuracy": 0.25}, "latency": {"p50_s": 0.9}}}}}})
    ['aura      WER 50.0%  QA 25.0%  latency p50 0.900 s  (8 utterances)']
    """
    lines = []
    for name, system in results.get("systems", {}).items():
        found = (system.get("sets") or {}).get(split)
        if system.get("status") != "ok" or not found:
            lines.append(f"{name:<9} {system.get('status', 'missing')}: {system.get('reason', '')}".rstrip(": "))
            continue
        lines.append(f"{name:<9} WER {format_value((found.get('wer') or {}).get('wer'), percent=True)}  "
                     f"QA {format_value((found.get('qa') or {}).get('accuracy'), percent=True)}  "
                     f"latency p50 {format_value((found.get('latency') or {}).get('p50_s'))} s  "
                     f"({found.get('utterances', 0)} utterances)")
    return lines


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, names: list[str], values: list[float | None], title: str, ylabel: str, percent: bool = False) -> None:
    xs = list(range(len(names)))
    heights = [0.0 if v is None else v for v in values]
    bars = ax.bar(xs, heights, color=[COLORS.get(n, "#999999") for n in names])
    ax.set_xticks(xs, [LABELS.get(n, n) for n in names], rotation=15)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    for bar, v in zip(bars, values):
        label = "n/a" if v is None else (f"{100 * v:.1f}%" if percent else f"{v:.3g}")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=8)


def plot_quality(results: dict, path: Path) -> Path | None:
    names = _ok_systems(results)
    if not names:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    _bars(axes[0], names, [_get(_set(results, n), "wer", "wer") for n in names], "WER (transcription, lower is better)",
          "WER", percent=True)
    _bars(axes[1], names, [_get(_set(results, n), "qa", "accuracy") for n in names],
          "Spoken-QA accuracy (higher is better)", "accuracy", percent=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_latency(results: dict, path: Path) -> Path | None:
    names = _ok_systems(results)
    if not names:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    series = [("p50", lambda n: _get(_set(results, n), "latency", "p50_s")),
              ("p95", lambda n: _get(_set(results, n), "latency", "p95_s")),
              ("TTFT p50", lambda n: _get(_set(results, n), "ttft", "p50_s"))]
    for i, (label, get) in enumerate(series):
        xs = [j + (i - 1) * width for j in range(len(names))]
        ax.bar(xs, [get(n) or 0.0 for n in names], width, label=label)
    ax.set_xticks(range(len(names)), [LABELS.get(n, n) for n in names])
    ax.set_ylabel("seconds per utterance")
    ax.set_title(f"Latency per utterance ({results.get('device', '?')})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_memory(results: dict, path: Path) -> Path | None:
    names = [n for n in _ok_systems(results) if _get(results["systems"][n], "memory", "peak_mb") is not None]
    if not names:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    _bars(ax, names, [results["systems"][n]["memory"]["peak_mb"] for n in names],
          f"Peak memory per system ({results.get('device', '?')})", "MB")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_cosine(results: dict, path: Path) -> Path | None:
    cosine = {k: v for k, v in (results.get("cosine") or {}).items() if v.get("layers")}
    if not cosine:
        return None
    plt = pyplot()
    layers = sorted({int(layer) for v in cosine.values() for layer in v["layers"]})
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(layers) + 2), 4))
    width = 0.8 / len(cosine)
    for i, (name, v) in enumerate(cosine.items()):
        xs = [j + (i - (len(cosine) - 1) / 2) * width for j in range(len(layers))]
        ax.bar(xs, [v["layers"].get(str(layer), 0.0) for layer in layers], width, label=f"{name} export")
    ax.set_xticks(range(len(layers)), [f"teacher L{layer}" for layer in layers])
    ax.set_ylabel("mean cosine (held-out)")
    ax.set_ylim(min(0.0, min(min(v["layers"].values()) for v in cosine.values())), 1.0)
    ax.set_title("Student heads vs cached teacher states")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training(curves: dict[str, list[dict[str, float]]], path: Path) -> Path | None:
    panels = []
    if "distill_metrics" in curves:
        panels.append(("Stage 1: distillation loss (train)", [("loss", curves["distill_metrics"], "loss")]))
    if "distill_eval" in curves:
        rows = curves["distill_eval"]
        keys = sorted(k for k in rows[0] if k.startswith("cos_"))
        panels.append(("Stage 1: held-out cosine", [(k, rows, k) for k in keys]))
    if "tasks_metrics" in curves or "tasks_eval" in curves:
        series = []
        if "tasks_metrics" in curves:
            series.append(("train loss", curves["tasks_metrics"], "loss"))
        if "tasks_eval" in curves:
            series.append(("held-out loss", curves["tasks_eval"], "heldout_loss"))
        panels.append(("Stage 2: answer LM loss", series))
    if "bridge_metrics" in curves:
        panels.append(("Bridge projector: answer LM loss", [("train loss", curves["bridge_metrics"], "loss")]))
    if not panels:
        return None
    plt = pyplot()
    cols = min(2, len(panels))
    rows_n = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(6 * cols, 3.6 * rows_n), squeeze=False)
    for ax, (title, series) in zip(axes.flat, panels):
        for label, rows, key in series:
            points = [(r["step"], r[key]) for r in rows if key in r]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=label, marker="." if len(points) < 30 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------
# Markdown


def _ratio(a: float | None, b: float | None) -> str | None:
    if a is None or b is None or b == 0:
        return None
    return f"{a / b:.2f}x"


def interpretation(results: dict) -> list[str]:
    """A few sentences read off the numbers (and the caveats that apply to them)."""
    lines: list[str] = []
    ok = _ok_systems(results)
    lat = {n: _get(_set(results, n), "latency", "p50_s") for n in ok}
    mem = {n: _get(results["systems"][n], "memory", "peak_mb") for n in ok}
    wer = {n: _get(_set(results, n), "wer", "wer") for n in ok}
    acc = {n: _get(_set(results, n), "qa", "accuracy") for n in ok}
    if "aura" in ok:
        parts = [f"{_ratio(lat['aura'], lat[n])} the {LABELS[n].lower()}'s" for n in ("bridge", "cascade")
                 if n in ok and _ratio(lat["aura"], lat[n])]
        if lat.get("aura") is not None and parts:
            lines.append(f"Latency: AuRA answers in {lat['aura']:.3f} s per utterance (p50), " + " and ".join(parts)
                         + " (below 1x means AuRA is faster).")
        if "text" in ok and _ratio(lat.get("aura"), lat.get("text")):
            lines.append(f"Against the LLM alone on the reference text, AuRA's p50 latency is "
                         f"{_ratio(lat['aura'], lat['text'])}: the audio tokens are the only extra work "
                         "(no encoder runs).")
        mparts = [f"{LABELS[n]} {mem[n]:.0f} MB" for n in ("bridge", "cascade", "text") if n in ok and mem.get(n) is not None]
        if mem.get("aura") is not None and mparts:
            lines.append(f"Peak memory: AuRA {mem['aura']:.0f} MB vs " + ", ".join(mparts)
                         + ". AuRA loads only the LLM and a patch embedding; the bridge and the cascade also hold Whisper.")
        if wer.get("aura") is not None:
            others = ", ".join(f"{LABELS[n]} {100 * wer[n]:.1f}%" for n in ("bridge", "cascade", "text")
                               if n in ok and wer.get(n) is not None)
            lines.append(f"Transcription: AuRA WER {100 * wer['aura']:.1f}%" + (f" vs {others}" if others else "")
                         + " (the cascade's output is Whisper's own transcript).")
        if acc.get("aura") is not None:
            others = ", ".join(f"{LABELS[n]} {100 * acc[n]:.1f}%" for n in ("bridge", "cascade", "text")
                               if n in ok and acc.get(n) is not None)
            lines.append(f"Spoken QA: AuRA accuracy {100 * acc['aura']:.1f}%" + (f" vs {others}" if others else "")
                         + "; the text-only system reads the reference transcript and bounds what hearing can add.")
    cosine = results.get("cosine") or {}
    for name, v in cosine.items():
        if v.get("mean") is not None:
            lines.append(f"Distillation ({name} export): mean held-out cosine to the teacher {v['mean']:.3f}"
                         + (f", from {min(v['layers'].values()):.3f} to {max(v['layers'].values()):.3f} across layers"
                            if v.get("layers") else "") + ".")
    caveats = []
    models = results.get("models", {})
    if any(str(models.get(k, "")).startswith("random:") for k in ("teacher", "llm")):
        caveats.append("the models are random-weight test models, so quality figures say nothing about the method")
    n = _get(results, "dataset", "utterances")
    if n is not None and n < 100:
        caveats.append(f"only {n} held-out utterances: differences of a few points are within noise")
    if results.get("device") == "cpu":
        caveats.append("timings are CPU timings on a shared machine: compare the ratios, read absolute times on a GPU")
    aura_export = _get(results, "systems", "aura", "describe", "export") or ""
    if "distill" in str(aura_export):
        caveats.append("AuRA ran from the stage-1 (distill) export, which was never tuned to answer")
    if caveats:
        lines.append("Caveats: " + "; ".join(caveats) + ".")
    return lines


def _system_table(results: dict, set_name: str = "heldout") -> list[str]:
    rows = ["| System | WER ↓ | QA acc ↑ | Latency p50 (s) | Latency p95 (s) | TTFT p50 (s) | Peak memory (MB) "
            "| Audio tokens / utt | Utterances |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in _systems(results):
        system = results["systems"][name]
        label = LABELS.get(name, name)
        if system.get("status") != "ok":
            rows.append(f"| {label} | – | – | – | – | – | – | – | skipped: {system.get('reason', '')} |")
            continue
        s = _set(results, name, set_name)
        if not s:
            continue
        wer = _get(s, "wer", "wer")
        rows.append(
            f"| {label} | {format_value(wer, percent=True)} | {format_value(_get(s, 'qa', 'accuracy'), percent=True)} "
            f"| {format_value(_get(s, 'latency', 'p50_s'))} | {format_value(_get(s, 'latency', 'p95_s'))} "
            f"| {format_value(_get(s, 'ttft', 'p50_s'))} | {format_value(_get(system, 'memory', 'peak_mb'), 1)} "
            f"| {format_value(s.get('audio_tokens_mean'), 1)} | {s.get('utterances', 0)} |")
    return rows


def _cosine_table(results: dict) -> list[str]:
    cosine = {k: v for k, v in (results.get("cosine") or {}).items() if v.get("layers")}
    if not cosine:
        return []
    layers = sorted({int(layer) for v in cosine.values() for layer in v["layers"]})
    rows = ["| Export | " + " | ".join(f"teacher L{j} (student L{_get(cosine, next(iter(cosine)), 'layer_map', str(j), default='?')})"
                                      for j in layers) + " | mean |",
            "|---|" + "---|" * (len(layers) + 1)]
    for name, v in cosine.items():
        rows.append(f"| {name} | " + " | ".join(format_value(v["layers"].get(str(j))) for j in layers) + f" | {format_value(v.get('mean'))} |")
    baselines = next((v["baselines"] for v in cosine.values() if v.get("baselines")), {})
    for kind, label in (("constant", "constant predictor (does not listen)"),
                        ("position_mean", "position-mean predictor (does not listen)")):
        if kind in baselines:
            values = [baselines[kind].get(str(j)) for j in layers]
            mean = sum(values) / len(values) if all(x is not None for x in values) else None
            rows.append(f"| {label} | " + " | ".join(format_value(x) for x in values) + f" | {format_value(mean)} |")
    probes = {name: v["probe"] for name, v in cosine.items() if v.get("probe")}
    if probes:
        rows += ["", "Probe: Whisper's decoder transcribes from the student's prediction of teacher layer "
                 f"{next(iter(probes.values())).get('teacher_layer')} (WER, same utterances):", "",
                 "| Export | student | teacher states (pooled as trained) | position mean |", "|---|---|---|---|"]
        for name, probe in probes.items():
            w = probe["wer"]
            rows.append(f"| {name} | {format_value(w.get('student'), percent=True)} | {format_value(w.get('teacher'), percent=True)} | "
                        f"{format_value(w.get('position_mean'), percent=True)} |")
    return rows


def _ctc_search_note(search: dict | None) -> str:
    """How a CTC read-out was decoded, when not by its greedy path (``eval.ctc_*``).

    >>> _ctc_search_note({"beam": 1, "lm_weight": 0.0, "length_bonus": 0.0}), _ctc_search_note(None)
    ('', '')
    >>> _ctc_search_note({"beam": 6, "lm_weight": 0.3, "length_bonus": 2.0})
    '; CTC read-outs by beam search (beam 6) with the LLM as language model (weight 0.3, 2.0 per token)'
    """
    if not search or (search["beam"] == 1 and not search["lm_weight"] and not search["length_bonus"]):
        return ""
    lm = f" with the LLM as language model (weight {search['lm_weight']}" if search["lm_weight"] else " (no LM"
    return f"; CTC read-outs by beam search (beam {search['beam']}){lm}, {search['length_bonus']} per token)"


def render_markdown(results: dict, plots: dict[str, str]) -> str:
    dataset = results.get("dataset", {})
    models = results.get("models", {})
    lines = [
        "# AuRA evaluation report",
        "",
        f"Held-out split (voices and texts never trained on): {dataset.get('utterances', 0)} utterances "
        f"({dataset.get('transcribe', 0)} transcription, {dataset.get('spoken_qa', 0)} spoken QA, "
        f"{format_value(dataset.get('audio_seconds'), 1)} s of audio). Teacher `{models.get('teacher')}`, LLM `{models.get('llm')}`; "
        f"device {results.get('device')} ({results.get('dtype')}); greedy decoding, at most "
        f"{results.get('max_new_tokens')} new tokens{_ctc_search_note(results.get('ctc_search'))}; one utterance "
        "per request.",
        "",
        "## Systems",
        "",
        *_system_table(results),
        "",
        "WER: corpus-level on normalised text (lowercase, punctuation removed, numbers as words). QA accuracy: the "
        "reference answer's words must appear in the first sentence of the normalised prediction, within its first "
        f"answer length + {results.get('qa_window', 8)} words. Latency: from the request (raw audio) to the last "
        "token; TTFT: to the first generated token (the cascade's includes the whole Whisper transcript). Peak "
        f"memory: {results.get('memory_method', 'see report.json')}, over what the process held before the system "
        "was loaded.",
        "",
    ]
    interp = interpretation(results)
    if interp:
        lines += ["## Interpretation", "", *[f"- {line}" for line in interp], ""]
    cos = _cosine_table(results)
    if cos:
        lines += ["## Distillation: per-layer cosine (held-out)", "",
                  "Mean per-token cosine between each distillation head's output at the audio positions and the "
                  "cached teacher layer (in the space the student was trained in: pooled, standardised when "
                  "configured), over the held-out utterances, beside two predictors that do not listen.", "", *cos, ""]
    bridge = results.get("bridge_training")
    if bridge:
        lines += ["## Bridge training", "",
                  f"Projector trained for {bridge.get('steps')} steps x batch {bridge.get('batch_size')} "
                  f"(AuRA stage-2 budget), teacher states from the {bridge.get('source', 'store')}; LM loss "
                  f"{format_value(bridge.get('first_loss'))} -> {format_value(bridge.get('last_loss'))}"
                  + (f" in {bridge['seconds']:.0f} s" if bridge.get("seconds") else "") + ".", ""]
    externals = sorted({k for n in _ok_systems(results) for k in results["systems"][n].get("sets", {}) if k != "heldout"})
    for set_name in externals:
        lines += [f"## External set: {set_name}", "", *_system_table(results, set_name), ""]
    samples_shown = 0
    example_lines = ["## Examples", "", "| System | Task | Reference | Output |", "|---|---|---|---|"]
    for name in _ok_systems(results):
        for sample in _set(results, name).get("samples", [])[:3]:
            ref = str(sample.get("reference", "")).replace("|", "\\|")
            out = str(sample.get("prediction", "")).replace("|", "\\|").replace("\n", " ")
            example_lines.append(f"| {LABELS.get(name, name)} | {sample.get('task')} | {ref} | {out[:120]} |")
            samples_shown += 1
    if samples_shown:
        lines += example_lines + [""]
    if plots:
        lines += ["## Plots", ""]
        for title, file in plots.items():
            lines += [f"![{title}]({file})", ""]
    notes = results.get("notes") or []
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines.append("All figures are also in `report.json`.")
    return "\n".join(lines) + "\n"


def write_report(results: dict, out_dir: str | Path, checkpoints: str | Path | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and the PNG plots into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = training_curves(Path(checkpoints)) if checkpoints is not None else {}
    made: dict[str, Path] = {}
    for title, name, fn, arg in (
        ("Quality", "quality.png", plot_quality, results),
        ("Latency", "latency.png", plot_latency, results),
        ("Peak memory", "memory.png", plot_memory, results),
        ("Per-layer cosine", "cosine.png", plot_cosine, results),
        ("Training curves", "training.png", plot_training, curves),
    ):
        path = fn(arg, out / name)
        if path is not None:
            made[title] = path
    results["plots"] = {title: p.name for title, p in made.items()}
    results["training_curves"] = sorted(curves)
    (out / "report.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "report.md").write_text(render_markdown(results, results["plots"]))
    return {"markdown": out / "report.md", "json": out / "report.json", **{t: p for t, p in made.items()}}
