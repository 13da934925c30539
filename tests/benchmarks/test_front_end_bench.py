"""The front-end benchmark: its variants keep the released parts, and it runs end to end on the shipped release."""

import json

import torch

from benchmarks.front_end_bench import front_end_with_layers, main
from pipeline.models.patch_embedding import AudioPatchEmbedding


def test_variants_keep_the_released_parts_and_copy_its_last_layer():
    torch.manual_seed(0)
    patch = AudioPatchEmbedding(n_mels=16, llm_width=12, stride=4, hidden=10, teacher_stem_width=24,
                                teacher_blocks=2).eval()
    with torch.no_grad():
        for p in patch.parameters():
            p.normal_(0, 0.1)
    mel = torch.randn(1, 16, 12)
    assert torch.equal(front_end_with_layers(patch, 2)(mel, 3), patch(mel, 3))
    three = front_end_with_layers(patch, 3)
    assert torch.equal(three.teacher_blocks[2].fc1.weight, patch.teacher_blocks[1].fc1.weight)
    assert torch.equal(three.teacher_blocks[0].fc1.weight, patch.teacher_blocks[0].fc1.weight)
    none = front_end_with_layers(patch, 0)
    assert none.teacher_blocks is None and torch.equal(none.stem_proj.weight, patch.stem_proj.weight)
    assert not torch.equal(none(mel, 3), patch(mel, 3))  # the layers' projection no longer adds its part


def test_benchmark_on_the_shipped_release(tmp_path):
    from safetensors import safe_open

    from pipeline.released import RELEASE_DIR

    with safe_open(str(RELEASE_DIR / "student.safetensors"), "pt") as handle:
        owned = json.loads(handle.metadata()["aura_student"])["student"]["teacher_blocks"]
    out = tmp_path / "front_end.md"
    assert main(["--layers", f"0,{owned}", "--reps", "1", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["release_layers"] == owned and set(result["variants"]) == {"0", str(owned)}
    release, floor = result["variants"][str(owned)], result["variants"]["0"]
    assert release["transcribe_vs_release"] == 1.0 and floor["front_end_vs_floor"] == 1.0
    assert release["layer_weights"] > 3_000_000 and floor["layer_weights"] == 0
    assert release["transcribe_ms"] > release["front_end_ms"] > 0
    assert f"| {owned} (the release) |" in out.read_text()
