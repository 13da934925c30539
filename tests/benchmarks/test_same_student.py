"""benchmarks.same_student: the released student against itself in fp32 is identical; one changed weight is found."""

import doctest
import json

from safetensors.torch import load_file, save_file

from benchmarks import same_student

RELEASE = "pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors"


def test_docstring_examples():
    assert doctest.testmod(same_student).failed == 0


def test_an_fp32_copy_of_the_release_is_identical_and_one_changed_weight_is_named(tmp_path):
    tensors = {name: t.float() for name, t in load_file(RELEASE).items()}
    save_file(tensors, str(tmp_path / "fp32.safetensors"))
    same_student.main([RELEASE, str(tmp_path / "fp32.safetensors"), "--out", str(tmp_path / "same.json")])
    assert json.loads((tmp_path / "same.json").read_text())["identical"] is True

    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] += 1.0
    save_file(tensors, str(tmp_path / "changed.safetensors"))
    same_student.main([RELEASE, str(tmp_path / "changed.safetensors"), "--out", str(tmp_path / "changed.json")])
    result = json.loads((tmp_path / "changed.json").read_text())
    assert not result["identical"] and result["tensors_differing"] == 1 and result["worst_tensor"] == name
    assert 0.99 < result["max_abs_diff"] < 1.01
