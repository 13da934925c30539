"""benchmarks.student_soup: the soup of the release with itself is the release; with a changed copy, the midpoint."""

import doctest
import json

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from benchmarks import student_soup

RELEASE = "pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors"


def test_docstring_examples():
    assert doctest.testmod(student_soup).failed == 0


def test_the_soup_of_the_release_and_a_shifted_copy_is_their_midpoint_and_keeps_the_student_metadata(tmp_path):
    release = load_file(RELEASE)
    shifted = {name: t.float() + 1.0 if t.is_floating_point() else t for name, t in release.items()}
    save_file(shifted, str(tmp_path / "shifted.safetensors"))
    out = tmp_path / "soup.safetensors"
    student_soup.main([RELEASE, str(tmp_path / "shifted.safetensors"), "--weights", "3", "1", "--out", str(out)])
    soup = load_file(str(out))
    assert soup.keys() == release.keys()
    for name, tensor in release.items():
        expected = tensor.float() + 0.25 if tensor.is_floating_point() else tensor
        assert (soup[name] - expected).abs().max() < 1e-6, name
    with safe_open(RELEASE, framework="pt") as handle:
        release_meta = handle.metadata()
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["aura_student"] == release_meta["aura_student"] and "aura_release" not in meta
    assert json.loads(meta["aura_soup"])["weights"] == [3.0, 1.0]
