"""benchmarks.paired_ctc: the paired gap, and the kept transcripts that spare a student's second reading."""

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks import paired_ctc

RELEASED = "pipeline/released/aura-smollm2-135m-whisper-tiny-en"


def test_docstring_examples():
    assert doctest.testmod(paired_ctc).failed == 0


def test_a_student_reads_each_clip_once(tmp_path):
    from pipeline.config import load_config
    from pipeline.infer import EncoderFreeModel

    cfg = load_config("configs/student.yaml")
    model = EncoderFreeModel.from_config(cfg, export_path=f"{RELEASED}/student.safetensors")
    clips = {f"examples::{name}": f"{RELEASED}/examples/{name}.flac" for name in ("sc0-0000033", "sc0-0000066")}
    calls = []

    def read(clip_id):
        calls.append(clip_id)
        audio, rate = sf.read(clips[clip_id], dtype="float32")
        assert rate == 16000
        return model.ctc_transcribe([audio])[0].text

    cache = paired_ctc.cache_file(tmp_path, Path(f"{RELEASED}/student.safetensors"), {"beam": 1})
    first = paired_ctc.transcripts(list(clips), read, cache)
    assert calls == list(clips) and all(first)
    assert json.loads(cache.read_text()) == dict(zip(clips, first))

    def must_not_read(clip_id):
        raise AssertionError(f"{clip_id} was read again")

    assert paired_ctc.transcripts(list(clips)[::-1], must_not_read, cache) == first[::-1]
    clips["examples::sc0-0000099"] = f"{RELEASED}/examples/sc0-0000099.flac"
    calls.clear()
    third = paired_ctc.transcripts(list(clips), read, cache)
    assert calls == ["examples::sc0-0000099"] and third[:2] == first
    assert paired_ctc.transcripts(list(clips), read, None) == third  # no cache: read again, the same texts


def test_paired_gap_is_zero_for_the_same_errors():
    errors, words = np.array([1, 3, 0, 2]), np.array([5, 6, 4, 7])
    gap = paired_ctc.paired_gap(errors, errors, words)
    assert gap["gap"] == gap["low"] == gap["high"] == 0.0
    assert gap["fewer_errors"] == gap["more_errors"] == 0.0
    assert paired_ctc.paired_gap(errors, errors + 1, words)["gap"] == pytest.approx(4 / 22)
