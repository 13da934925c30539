"""A weight average ("model soup", Wortsman et al. 2022) of students trained on from one start: every floating
tensor averaged with the given weights, the rest taken from the first file, whose metadata the soup keeps.

Two stages continued from the same student with different augmentations stay in one basin; their average often
reads new data better than either. LoRA factors are averaged one by one (A with A, B with B), as LoRA soups do; with
a shared start and small moves that is close to averaging their products::

    python -m benchmarks.student_soup runs/a/step-000800.safetensors runs/releases/742786a.safetensors \\
        --out runs/soup.safetensors           # equal weights; --weights 0.7 0.3 for others
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def average_students(students: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """The weighted average of students with the same tensors (fp32 out); the weights are normalised to sum to 1.

    >>> a = {"w": torch.tensor([1.0, 2.0]), "step": torch.tensor([3])}
    >>> b = {"w": torch.tensor([3.0, 6.0], dtype=torch.float16), "step": torch.tensor([5])}
    >>> soup = average_students([a, b], [1.0, 1.0])
    >>> soup["w"].tolist(), soup["step"].tolist()
    ([2.0, 4.0], [3])
    >>> average_students([a, {"v": torch.tensor([0.0])}], [1.0, 1.0])
    Traceback (most recent call last):
    ValueError: the students' tensors differ: only in some: ['step', 'v', 'w']
    >>> average_students([a, b], [1.0, -1.0])
    Traceback (most recent call last):
    ValueError: the weights must be non-negative and not all zero: [1.0, -1.0]
    """
    if len(students) != len(weights) or not students:
        raise ValueError(f"{len(students)} students and {len(weights)} weights")
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"the weights must be non-negative and not all zero: {weights}")
    names = set(students[0])
    differing = sorted(set().union(*students) - names.intersection(*students))
    if differing:
        raise ValueError(f"the students' tensors differ: only in some: {differing}")
    total = float(sum(weights))
    soup = {}
    for name, first in students[0].items():
        if any(s[name].shape != first.shape for s in students):
            raise ValueError(f"tensor {name!r} differs in shape between the students")
        if first.is_floating_point():
            soup[name] = sum(s[name].float() * (w / total) for s, w in zip(students, weights))
        else:
            soup[name] = first.clone()
    return soup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("students", nargs="+", type=Path, help="student files (exports or releases); the first "
                        "gives the metadata")
    parser.add_argument("--weights", nargs="+", type=float, help="one per student (default: equal)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    weights = args.weights or [1.0] * len(args.students)
    soup = average_students([load_file(str(p)) for p in args.students], weights)
    with safe_open(str(args.students[0]), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    metadata.pop("aura_release", None)  # a soup is not the release it may have come from
    metadata["aura_soup"] = json.dumps({"students": [str(p) for p in args.students], "weights": weights})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(soup, str(args.out), metadata=metadata)
    print(f"{args.out}: the average of {len(args.students)} students (weights {weights})")


if __name__ == "__main__":
    main()
