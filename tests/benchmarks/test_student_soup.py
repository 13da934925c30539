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


def test_soup_once_writes_the_soup_then_leaves_it_as_it_is(tmp_path):
    """benchmarks/soup_once.sh (the results scripts' resumable soup): the soup is written once; run again with other
    students, the file already there is kept."""
    import subprocess

    from tests.conftest import REPO

    release = load_file(RELEASE)
    save_file({name: t.float() + 1.0 if t.is_floating_point() else t for name, t in release.items()},
              str(tmp_path / "shifted.safetensors"))
    out = tmp_path / "soup.safetensors"
    script = str(REPO / "benchmarks" / "soup_once.sh")
    subprocess.run(["bash", script, str(out), RELEASE, str(tmp_path / "shifted.safetensors")], check=True,
                   cwd=REPO, capture_output=True, timeout=300)
    first = out.read_bytes()
    assert (load_file(str(out))["ctc.proj.weight"] - (release["ctc.proj.weight"].float() + 0.5)).abs().max() < 1e-6
    subprocess.run(["bash", script, str(out), RELEASE, RELEASE], check=True, cwd=REPO, capture_output=True, timeout=300)
    assert out.read_bytes() == first
    usage = subprocess.run(["bash", script, str(out)], cwd=REPO, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_keep_stage_keeps_an_fp16_copy_with_the_metadata_once(tmp_path):
    """benchmarks/keep_stage.sh (a stage's export kept in git for checkouts without runs/): every floating tensor in
    fp16, the rest and the metadata as they were; a copy already there is left as it is."""
    import subprocess

    import torch

    from tests.conftest import REPO

    release = load_file(RELEASE)
    export = {name: t.float() if t.is_floating_point() else t for name, t in release.items()}
    with safe_open(RELEASE, framework="pt") as handle:
        metadata = handle.metadata()
    save_file(export, str(tmp_path / "export.safetensors"), metadata=metadata)
    kept = tmp_path / "kept" / "stage.safetensors"
    script = str(REPO / "benchmarks" / "keep_stage.sh")
    subprocess.run(["bash", script, str(tmp_path / "export.safetensors"), str(kept)], check=True, cwd=REPO,
                   capture_output=True, timeout=300)
    copy = load_file(str(kept))
    assert copy.keys() == export.keys()
    for name, tensor in export.items():
        assert torch.equal(copy[name], tensor.half() if tensor.is_floating_point() else tensor), name
    with safe_open(str(kept), framework="pt") as handle:
        assert handle.metadata() == metadata
    first = kept.read_bytes()
    subprocess.run(["bash", script, RELEASE, str(kept)], check=True, cwd=REPO, capture_output=True, timeout=300)
    assert kept.read_bytes() == first
