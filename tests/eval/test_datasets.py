"""The spoken-QA loaders on tiny synthetic files in each distributed format."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.eval.datasets import DatasetFormatError, load_heysquad, load_sdqa, load_spoken_qa, parse_dataset_arg


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32), 16000)
    return path


DOC = "Rock is made of minerals. Basalt is the most common rock on Earth. Café au lait."


def _byte_span(text: str, piece: str) -> tuple[int, int]:
    start = text.encode().index(piece.encode())
    return start, start + len(piece.encode())


def _tydi_example(example_id: int, question: str, minimal: str | None, passage: bool = True) -> dict:
    candidates = [{"plaintext_start_byte": 0, "plaintext_end_byte": 25},
                  {"plaintext_start_byte": 26, "plaintext_end_byte": 67}]
    if minimal is None:
        annotations = [{"annotation_id": 1, "minimal_answer": {"plaintext_start_byte": -1, "plaintext_end_byte": -1},
                        "passage_answer": {"candidate_index": 1 if passage else -1}, "yes_no_answer": "NONE"}]
    else:
        s, e = _byte_span(DOC, minimal)
        annotations = [
            {"annotation_id": 1, "minimal_answer": {"plaintext_start_byte": s, "plaintext_end_byte": e},
             "passage_answer": {"candidate_index": 1}, "yes_no_answer": "NONE"},
            {"annotation_id": 2, "minimal_answer": {"plaintext_start_byte": s, "plaintext_end_byte": e},
             "passage_answer": {"candidate_index": 1}, "yes_no_answer": "NONE"},
        ]
    return {"annotations": annotations, "document_plaintext": DOC, "document_title": "Rock",
            "document_url": "https://en.wikipedia.org/wiki/Rock", "example_id": example_id, "language": "english",
            "passage_answer_candidates": candidates, "question_text": question}


def test_sdqa_tydi_jsonl_gz(tmp_path):
    folder = tmp_path / "SD-QA" / "dev" / "eng" / "gbr"
    lines = [_tydi_example(-188, "what is the most common rock on earth ?", "Basalt"),
             _tydi_example(77, "what is rock made of ?", None),              # passage answer only
             _tydi_example(99, "unanswerable ?", None, passage=False),       # null: skipped
             _tydi_example(123, "a question without audio ?", "minerals")]   # no wav: skipped
    path = folder / "english.dev.gbr-en-GB.jsonl.gz"
    folder.mkdir(parents=True)
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(x) for x in lines) + "\n")
    for ident in (-188, 77, 99):
        _wav(folder / "wav_eng" / f"{ident}.wav")
    rows = list(load_sdqa(path))
    assert [r.key for r in rows] == ["sdqa--188", "sdqa-77"]
    assert rows[0].answers == ["Basalt"] and rows[0].answer_kind == "minimal"
    assert rows[0].audio == folder / "wav_eng" / "-188.wav"
    assert rows[0].question.startswith("what is the most common") and rows[0].task == "spoken_qa"
    assert rows[1].answer_kind == "passage" and rows[1].answers == ["Basalt is the most common rock on Earth."]
    with_null = list(load_sdqa(path, keep_unanswerable=True))
    assert [r.key for r in with_null] == ["sdqa--188", "sdqa-77", "sdqa-99"] and with_null[2].answers == []
    # a folder is read recursively
    assert [r.key for r in load_spoken_qa("sdqa", tmp_path / "SD-QA")] == ["sdqa--188", "sdqa-77"]


def test_sdqa_triples(tmp_path):
    repo = tmp_path / "SD-QA"
    _wav(repo / "test" / "eng" / "gbr" / "wav_eng" / "5.wav")
    _wav(repo / "test" / "eng" / "gbr" / "wav_eng" / "6.wav")
    triples = repo / "test" / "eng" / "gbr" / "english.test.gbr-en-GB.triples.jsonl"
    triples.write_text("\n".join(json.dumps(x) for x in [
        {"example_id": 5, "question": "capital of france ?", "answer": "Paris", "answers": ["Paris", "paris city"],
         "has_answer": True, "audio_path": "SD-QA/test/eng/gbr/wav_eng/5.wav", "audio_exists": True},
        {"example_id": 6, "question": "no answer ?", "answer": "-1", "answers": [], "has_answer": False,
         "audio_path": "SD-QA/test/eng/gbr/wav_eng/6.wav", "audio_exists": True},
    ]) + "\n")
    rows = list(load_sdqa(triples, root=tmp_path))
    assert len(rows) == 1 and rows[0].answers == ["Paris", "paris city"] and rows[0].audio.exists()
    # without root: resolved against the file's parents
    assert list(load_sdqa(triples))[0].audio.resolve() == (repo / "test/eng/gbr/wav_eng/5.wav").resolve()


def _squad(qas: list[dict]) -> dict:
    return {"version": "v2.0", "data": [{"title": "France", "paragraphs": [
        {"context": "Paris is the capital of France.", "qas": qas}]}]}


def test_heysquad_squad_json_with_audio_references(tmp_path):
    _wav(tmp_path / "audio" / "q1.wav")
    _wav(tmp_path / "audio" / "by-id-2.flac")
    _wav(tmp_path / "audio" / "q3.wav")
    doc = _squad([
        {"id": "q1", "question": "What is the capital of France?", "audio_file": "audio/q1.wav",
         "transcription": "what is the capital of france",
         "answers": [{"text": "Paris", "answer_start": 0}, {"text": "Paris", "answer_start": 0}], "is_impossible": False},
        {"id": "by-id-2", "question": "Which country?", "answers": [{"text": "France", "answer_start": 24}]},
        {"id": "q3", "question": "Who?", "audio": {"path": "audio/q3.wav"}, "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "Paris", "answer_start": 0}]},
    ])
    path = tmp_path / "dev-v2.json"
    path.write_text(json.dumps(doc))
    rows = list(load_heysquad(path))
    assert [r.key for r in rows] == ["heysquad-q1", "heysquad-by-id-2"]
    assert rows[0].answers == ["Paris"] and rows[0].context.startswith("Paris is")
    assert rows[0].transcript == "what is the capital of france" and rows[0].text == rows[0].transcript
    assert rows[1].audio.name == "by-id-2.flac" and rows[1].text == "Which country?"
    assert len(list(load_heysquad(path, keep_unanswerable=True))) == 3


def test_heysquad_hf_style_jsonl(tmp_path):
    _wav(tmp_path / "clips" / "a.wav")
    path = tmp_path / "validation.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "Q?", "transcription": "q", "context": "c",
                                "answers": {"text": ["x", "y"], "answer_start": [0, 1]},
                                "audio": {"path": "clips/a.wav"}, "is_impossible": False}) + "\n")
    rows = list(load_heysquad(path))
    assert rows[0].answers == ["x", "y"] and rows[0].audio == tmp_path / "clips" / "a.wav"


def test_daqa_dialqa_json_maps_ids_to_dialect_audio(tmp_path):
    _wav(tmp_path / "audio" / "dev" / "eng" / "nga" / "eng-123-nga.wav")
    path = tmp_path / "dialqa-dev-aug.json"
    path.write_text(json.dumps(_squad([{"id": "123", "question": "capital?",
                                        "answers": [{"text": "Paris", "answer_start": 0}]}])))
    rows = list(load_sdqa(path))
    assert rows[0].key == "daqa-123" and rows[0].audio.name == "eng-123-nga.wav"


def test_bad_files_are_refused_with_a_reason(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text(json.dumps({"foo": 1}) + "\n")
    with pytest.raises(DatasetFormatError, match="neither TyDi"):
        list(load_sdqa(bad))
    notjson = tmp_path / "y.json"
    notjson.write_text(json.dumps({"rows": []}))
    with pytest.raises(DatasetFormatError, match="'data' list"):
        list(load_heysquad(notjson))
    with pytest.raises(FileNotFoundError):
        list(load_sdqa(tmp_path / "missing.jsonl"))


def test_parse_dataset_arg():
    assert parse_dataset_arg("sdqa:/d/x.jsonl") == ("sdqa", Path("/d/x.jsonl"), None)
    with pytest.raises(ValueError):
        parse_dataset_arg("librispeech:/x")
