"""Is a retrained student the released one? Two student files (exports or releases) compared tensor by tensor.

A release is packed in fp16 from an fp32 export, so the comparison is made at the lower precision of the two
files: "identical" means every tensor matches bit for bit once both are cast to it. Otherwise it reports how far
apart they are (the largest absolute difference and the difference's norm relative to the tensor's)::

    python -m benchmarks.same_student pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors \\
        runs/speech/checkpoints_stem_release/tasks/export/student.safetensors --out same.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file


def compare_students(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict:
    """Per-tensor distance between two students' tensors, at the lower precision of each pair.

    >>> x = {"w": torch.tensor([1.0, 2.0]), "v": torch.tensor([0.5])}
    >>> compare_students(x, {"w": torch.tensor([1.0, 2.0], dtype=torch.float16), "v": torch.tensor([0.5])})["identical"]
    True
    >>> compare_students({"heads": torch.tensor(6)}, {"heads": torch.tensor(6)})["identical"]
    True
    >>> r = compare_students(x, {"w": torch.tensor([1.0, 2.5]), "u": torch.tensor([0.0])})
    >>> r["identical"], r["only_in_a"], r["only_in_b"], r["max_abs_diff"], r["worst_tensor"]
    (False, ['v'], ['u'], 0.5, 'w')
    """
    shared = sorted(set(a) & set(b))
    per_tensor, mismatched_shapes = {}, []
    for name in shared:
        x, y = a[name], b[name]
        if x.shape != y.shape:
            mismatched_shapes.append(name)
            continue
        if x.is_floating_point() and y.is_floating_point():
            dtype = x.dtype if torch.finfo(x.dtype).bits <= torch.finfo(y.dtype).bits else y.dtype
            x, y = x.to(dtype).float(), y.to(dtype).float()
        else:  # an integer buffer (a layer's head count) is kept as it is in every precision: compared exactly
            x, y = x.double(), y.double()
        diff = x - y
        per_tensor[name] = {"max_abs_diff": diff.abs().max().item() if diff.numel() else 0.0,
                            "relative_norm_diff": (diff.norm() / x.norm().clamp_min(1e-12)).item()}
    worst = max(per_tensor, key=lambda n: per_tensor[n]["max_abs_diff"], default=None)
    return {
        "identical": not mismatched_shapes and set(a) == set(b)
        and all(t["max_abs_diff"] == 0 for t in per_tensor.values()),
        "tensors_compared": len(per_tensor),
        "only_in_a": sorted(set(a) - set(b)),
        "only_in_b": sorted(set(b) - set(a)),
        "mismatched_shapes": mismatched_shapes,
        "max_abs_diff": per_tensor[worst]["max_abs_diff"] if worst else 0.0,
        "worst_tensor": worst,
        "max_relative_norm_diff": max((t["relative_norm_diff"] for t in per_tensor.values()), default=0.0),
        "tensors_differing": sum(t["max_abs_diff"] > 0 for t in per_tensor.values()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.same_student", description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path, help="a student's safetensors (a release or an export)")
    p.add_argument("b", type=Path, help="another student's safetensors")
    p.add_argument("--out", type=Path, help="write the comparison as JSON here")
    args = p.parse_args(argv)
    result = {"a": str(args.a), "b": str(args.b), **compare_students(load_file(str(args.a)), load_file(str(args.b)))}
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    verdict = "identical" if result["identical"] else (
        f"differ: {result['tensors_differing']} of {result['tensors_compared']} tensors, largest difference "
        f"{result['max_abs_diff']:.3g} ({result['worst_tensor']}), relative norm up to {result['max_relative_norm_diff']:.3g}")
    print(f"{args.a} vs {args.b}: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
