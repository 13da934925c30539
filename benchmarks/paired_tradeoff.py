"""What each student gains on one set of clips against what it loses on another, from paired results.

Reads :mod:`benchmarks.paired_ctc` results (every student's WER gap to the release, with its 95 % interval) for two
sets of clips, e.g. the voices a student was adapted to (``--gain``) and the voices it already knew (``--cost``),
and draws every student found in both as one point with its intervals: a student that keeps both lies low and to
the left, and arms that merely trade one for the other lie on a line. Writes the PNG and a markdown table.

    python -m benchmarks.paired_tradeoff --gain results/paired_unseen_adapted_voices*.json \\
        --cost results/paired_dev*.json --out results/tradeoff.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def gaps_by_student(paths: list[Path]) -> dict[str, dict]:
    """``{student: {"gap", "low", "high", "clips"}}`` over paired-result files (a student's first file wins: the same
    student on the same clips scores the same in every file that pairs it).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.json").write_text(json.dumps({"clips": 9, "students": {"release": {"wer": 0.5},
    ...     "x": {"wer": 0.4, "vs_release": {"gap": -0.1, "low": -0.2, "high": 0.0}}}}))
    >>> gaps_by_student([d / "a.json"])
    {'x': {'gap': -0.1, 'low': -0.2, 'high': 0.0, 'clips': 9}}
    """
    found: dict[str, dict] = {}
    for path in paths:
        result = json.loads(Path(path).read_text())
        for name, student in result["students"].items():
            if "vs_release" in student and name not in found:
                gap = student["vs_release"]
                found[name] = {"gap": gap["gap"], "low": gap["low"], "high": gap["high"], "clips": result["clips"]}
    return found


def tradeoff_table(gain: dict[str, dict], cost: dict[str, dict], gain_name: str, cost_name: str) -> str:
    """A markdown table of the students found in both, in WER points against the release (95 % interval)."""

    def points(g: dict) -> str:
        return f"{100 * g['gap']:+.1f} ({100 * g['low']:+.1f} .. {100 * g['high']:+.1f})"

    lines = [f"| student | {gain_name} | {cost_name} |", "|---|---|---|"]
    for name in sorted(set(gain) & set(cost), key=lambda n: gain[n]["gap"]):
        lines.append(f"| {name} | {points(gain[name])} | {points(cost[name])} |")
    return "\n".join(lines) + "\n"


def plot_tradeoff(gain: dict[str, dict], cost: dict[str, dict], gain_name: str, cost_name: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    for i, name in enumerate(sorted(set(gain) & set(cost), key=lambda n: gain[n]["gap"])):
        g, c = gain[name], cost[name]
        x, y = 100 * g["gap"], 100 * c["gap"]
        ax.errorbar(x, y, xerr=[[x - 100 * g["low"]], [100 * g["high"] - x]],
                    yerr=[[y - 100 * c["low"]], [100 * c["high"] - y]], fmt="o", capsize=3)
        # labels alternate above and below, left to right: neighbours' labels do not overlap
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5 if i % 2 == 0 else -12), fontsize=8)
    ax.plot(0, 0, "k*", markersize=10)
    ax.annotate("release", (0, 0), textcoords="offset points", xytext=(5, -12), fontsize=8)
    ax.set_xlabel(f"{gain_name}: WER points vs the release")
    ax.set_ylabel(f"{cost_name}: WER points vs the release")
    ax.set_title("Gain against cost, paired with the release (95 % intervals)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paired_tradeoff", description=__doc__.split("\n\n")[0])
    p.add_argument("--gain", nargs="+", type=Path, required=True, help="paired_ctc results on the clips to gain on")
    p.add_argument("--cost", nargs="+", type=Path, required=True, help="paired_ctc results on the clips to keep")
    p.add_argument("--gain-name", default="new voices")
    p.add_argument("--cost-name", default="known voices")
    p.add_argument("--out", type=Path, required=True, help="the PNG; the table goes beside it (.md)")
    args = p.parse_args(argv)
    gain, cost = gaps_by_student(args.gain), gaps_by_student(args.cost)
    if not set(gain) & set(cost):
        p.error("no student is paired with the release in both sets of results")
    plot_tradeoff(gain, cost, args.gain_name, args.cost_name, args.out)
    table = tradeoff_table(gain, cost, args.gain_name, args.cost_name)
    args.out.with_suffix(".md").write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
