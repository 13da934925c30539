"""Loaders for public spoken-QA sets, in the formats they are distributed in, from local paths.

Nothing is downloaded: point a loader at files you already have. Every loader yields
:class:`SpokenQARow` records ``{key, audio (path), question, answers, task="spoken_qa", context,
transcript, source}`` that :mod:`pipeline.eval.run` can evaluate (``answers`` is a list: any of
them counts, see :func:`pipeline.eval.metrics.qa_correct`).

Formats
-------

``sdqa`` — SD-QA (Faisal et al. 2021, github.com/ffaisal93/SD-QA), any of:

* TyDi-QA-style JSONL (``*.jsonl`` or ``*.jsonl.gz``; one example per line with ``example_id``,
  ``question_text``, ``document_plaintext``, ``passage_answer_candidates`` and ``annotations``).
  Gold answers are the distinct non-null *minimal* answer spans (UTF-8 byte offsets into
  ``document_plaintext``); when an example has none, its passage spans (``candidate_index``) are
  used and the row is marked ``answer_kind="passage"``; examples with neither (null answers) are
  skipped unless ``keep_unanswerable``. The audio is ``wav_*/{example_id}.wav`` beside the file.
* the ``*.triples.jsonl`` files of the SD-QA repository (``example_id``, ``question``, ``answer``,
  ``answers``, ``has_answer``, ``audio_path``). ``audio_path`` starts with ``SD-QA/...`` (relative to
  the folder holding the repository); it is resolved against ``root``, the file's folder and their
  parents.
* DAQA/DialQA JSON (github.com/ffaisal93/DialQA): SQuAD-format JSON whose question ids map to
  ``audio/<split>/<lang>/<dialect>/<lang>-<id>-<dialect>.wav``; the audio is found by id under
  ``audio_dir`` (default: ``audio/`` beside the JSON).

``heysquad`` — HeySQuAD (Wu et al. 2023, arXiv 2304.13689), either:

* SQuAD v1/v2 JSON (``{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``) whose
  question entries reference their audio in one of ``audio_file``, ``audio_path``, ``audio``,
  ``audio_filepath``, ``file``, ``wav`` (a path, or a mapping with ``path``), or else by id
  (``<audio_dir>/<id>.wav|flac|mp3``). ``answers[].text`` are the references; unanswerable
  questions (``is_impossible``) are skipped unless ``keep_unanswerable``; ``transcription`` (what
  was spoken) is kept when present.
* JSONL rows as in the Hugging Face release (``id``, ``question``, ``transcription``, ``context``,
  ``answers`` as a list of ``{text, answer_start}`` or ``{text: [...]}``, ``audio`` as a path or
  ``{"path": ...}``).

Spoken-SQuAD-style questions are extractive: the answer is a span of a *text* context. The rows
keep ``context`` so a prompt can include it (``pipeline.eval.run`` prepends it to the instruction).

Usage::

    >>> rows = list(load_spoken_qa("sdqa", "SD-QA/dev/eng/gbr/english.dev.gbr-en-GB.jsonl"))  # doctest: +SKIP
    >>> rows = list(load_spoken_qa("heysquad", "heysquad_human/dev.json", audio_dir="heysquad_human/audio"))  # doctest: +SKIP
    >>> rows[0].key, rows[0].audio, rows[0].answers                                           # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
_AUDIO_FIELDS = ("audio_file", "audio_path", "audio", "audio_filepath", "file", "wav", "speech_file", "path")
FORMATS = ("sdqa", "heysquad")


class DatasetFormatError(ValueError):
    """A file is not in the format its loader reads."""


@dataclass
class SpokenQARow:
    key: str
    audio: Path
    question: str
    answers: list[str]
    task: str = "spoken_qa"
    context: str | None = None
    transcript: str | None = None  # what is spoken, when known (else the question text)
    answer_kind: str = "minimal"  # minimal | passage | squad | none
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        return self.answers[0] if self.answers else ""

    @property
    def text(self) -> str:
        """The words spoken in the audio (the text-only upper bound reads these)."""
        return self.transcript or self.question

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["audio"] = str(self.audio)
        out["answer"] = self.answer
        out["text"] = self.text
        return out


# ------------------------------------------------------------------------------------------------
# helpers


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetFormatError(f"{path}:{number}: not valid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise DatasetFormatError(f"{path}:{number}: expected a JSON object per line")
            yield number, obj


def _first_jsonl_object(path: Path) -> dict | None:
    for _, obj in _read_jsonl(path):
        return obj
    return None


def _utf8_span(text: str, start: int, end: int) -> str:
    return text.encode("utf-8")[start:end].decode("utf-8", errors="replace").strip()


def _audio_ref(entry: dict) -> str | None:
    for name in _AUDIO_FIELDS:
        value = entry.get(name)
        if isinstance(value, dict):
            value = value.get("path") or value.get("file")
        if isinstance(value, str) and value:
            return value
    return None


def _resolve(ref: str, bases: Iterable[Path]) -> Path | None:
    candidate = Path(ref)
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    for base in bases:
        path = base / candidate
        if path.exists():
            return path
    return None


class _AudioIndex:
    """Audio files under a folder, by stem, for datasets that name audio by question id."""

    def __init__(self, root: Path | None):
        self.root = root
        self._by_stem: dict[str, Path] | None = None

    def _build(self) -> dict[str, Path]:
        if self._by_stem is None:
            self._by_stem = {}
            if self.root is not None and self.root.is_dir():
                for path in sorted(self.root.rglob("*")):
                    if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
                        self._by_stem.setdefault(path.stem, path)
        return self._by_stem

    def find(self, ident: str) -> Path | None:
        index = self._build()
        if ident in index:
            return index[ident]
        # DialQA: "<lang>-<id>-<dialect>.wav" for question id "<id>"
        hits = [p for stem, p in index.items() if f"-{ident}-" in f"-{stem}-"]
        return hits[0] if len(hits) == 1 else None


def _answer_texts(answers: Any) -> list[str]:
    """SQuAD ``answers``: a list of ``{text, answer_start}``, or HF's ``{text: [...], answer_start: [...]}``."""
    texts: list[str] = []
    if isinstance(answers, dict):
        value = answers.get("text", [])
        texts = [value] if isinstance(value, str) else list(value)
    elif isinstance(answers, list):
        for a in answers:
            texts.append(a.get("text", "") if isinstance(a, dict) else str(a))
    elif isinstance(answers, str):
        texts = [answers]
    seen, out = set(), []
    for t in texts:
        t = str(t).strip()
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


# ------------------------------------------------------------------------------------------------
# SD-QA


def _tydi_answers(obj: dict) -> tuple[list[str], str]:
    doc = obj.get("document_plaintext") or ""
    candidates = obj.get("passage_answer_candidates") or []
    minimal, passage = [], []
    for ann in obj.get("annotations") or []:
        span = ann.get("minimal_answer") or {}
        start, end = span.get("plaintext_start_byte", -1), span.get("plaintext_end_byte", -1)
        if start is not None and end is not None and start >= 0 and end > start:
            minimal.append(_utf8_span(doc, start, end))
        index = (ann.get("passage_answer") or {}).get("candidate_index", -1)
        if index is not None and 0 <= index < len(candidates):
            c = candidates[index]
            passage.append(_utf8_span(doc, c["plaintext_start_byte"], c["plaintext_end_byte"]))
        yes_no = (ann.get("yes_no_answer") or "NONE").upper()
        if yes_no in ("YES", "NO"):
            minimal.append(yes_no.lower())
    minimal = list(dict.fromkeys(a for a in minimal if a))
    passage = list(dict.fromkeys(a for a in passage if a))
    if minimal:
        return minimal, "minimal"
    if passage:
        return passage, "passage"
    return [], "none"


def _wav_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("wav_*") if p.is_dir())


def _sdqa_tydi(path: Path, keep_unanswerable: bool) -> Iterator[SpokenQARow]:
    wav_dirs = _wav_dirs(path.parent)
    for number, obj in _read_jsonl(path):
        if "example_id" not in obj or "question_text" not in obj:
            raise DatasetFormatError(f"{path}:{number}: a TyDi-style SD-QA line needs example_id and question_text")
        ident = str(obj["example_id"])
        answers, kind = _tydi_answers(obj)
        if not answers and not keep_unanswerable:
            continue
        audio = next((d / f"{ident}.wav" for d in wav_dirs if (d / f"{ident}.wav").exists()), None)
        if audio is None:
            log.warning("SD-QA %s: no audio for example %s under %s/wav_*", path.name, ident, path.parent)
            continue
        yield SpokenQARow(key=f"sdqa-{ident}", audio=audio, question=obj["question_text"], answers=answers,
                          context=obj.get("document_plaintext"), answer_kind=kind, source=str(path),
                          meta={"language": obj.get("language"), "title": obj.get("document_title")})


def _sdqa_triples(path: Path, root: Path | None, keep_unanswerable: bool) -> Iterator[SpokenQARow]:
    bases = [b for b in (root, path.parent, *path.parents) if b is not None]
    for number, obj in _read_jsonl(path):
        if "example_id" not in obj or "question" not in obj:
            raise DatasetFormatError(f"{path}:{number}: an SD-QA triple needs example_id and question")
        answers = _answer_texts(obj.get("answers") or ([obj["answer"]] if obj.get("answer") not in (None, "-1") else []))
        if (not answers or obj.get("has_answer") is False) and not keep_unanswerable:
            continue
        ref = obj.get("audio_path")
        audio = _resolve(ref, bases) if ref else None
        if audio is None and ref and ref.startswith("SD-QA/"):
            audio = _resolve(ref.split("/", 1)[1], bases)  # root may be the repository itself
        if audio is None:
            log.warning("SD-QA %s:%d: audio %s not found", path.name, number, ref)
            continue
        yield SpokenQARow(key=f"sdqa-{obj['example_id']}", audio=audio, question=obj["question"], answers=answers,
                          answer_kind="minimal" if answers else "none", source=str(path))


def _squad_json(path: Path, audio_dir: Path | None, keep_unanswerable: bool, prefix: str) -> Iterator[SpokenQARow]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DatasetFormatError(f"{path}: expected SQuAD-format JSON with a top-level 'data' list")
    index = _AudioIndex(audio_dir if audio_dir is not None else path.parent / "audio")
    bases = [b for b in (audio_dir, path.parent) if b is not None]
    for article in doc["data"]:
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            for qa in paragraph.get("qas", []):
                if "id" not in qa or "question" not in qa:
                    raise DatasetFormatError(f"{path}: every entry of 'qas' needs an id and a question")
                ident = str(qa["id"])
                answers = _answer_texts(qa.get("answers"))
                if (qa.get("is_impossible") or not answers) and not keep_unanswerable:
                    continue
                ref = _audio_ref(qa)
                audio = _resolve(ref, bases) if ref else index.find(ident)
                if audio is None:
                    log.warning("%s: no audio for question %s (%s)", path.name, ident, ref or "looked up by id")
                    continue
                yield SpokenQARow(key=f"{prefix}-{ident}", audio=audio, question=qa["question"], answers=answers,
                                  context=context, transcript=qa.get("transcription"),
                                  answer_kind="squad" if answers else "none", source=str(path),
                                  meta={"title": article.get("title")})


def _jsonl_rows(path: Path, audio_dir: Path | None, keep_unanswerable: bool, prefix: str) -> Iterator[SpokenQARow]:
    index = _AudioIndex(audio_dir)
    bases = [b for b in (audio_dir, path.parent) if b is not None]
    for number, obj in _read_jsonl(path):
        ident = str(obj.get("id", obj.get("example_id", number)))
        if "question" not in obj:
            raise DatasetFormatError(f"{path}:{number}: a row needs a question")
        answers = _answer_texts(obj.get("answers", obj.get("answer")))
        if (obj.get("is_impossible") or not answers) and not keep_unanswerable:
            continue
        ref = _audio_ref(obj)
        audio = _resolve(ref, bases) if ref else index.find(ident)
        if audio is None:
            log.warning("%s:%d: no audio for %s", path.name, number, ident)
            continue
        yield SpokenQARow(key=f"{prefix}-{ident}", audio=audio, question=obj["question"], answers=answers,
                          context=obj.get("context"), transcript=obj.get("transcription"),
                          answer_kind="squad" if answers else "none", source=str(path))


def load_sdqa(path: str | Path, root: str | Path | None = None, audio_dir: str | Path | None = None,
              keep_unanswerable: bool = False) -> Iterator[SpokenQARow]:
    """SD-QA rows from a TyDi-style ``.jsonl[.gz]``, a ``.triples.jsonl`` or a DialQA SQuAD JSON (see the module docstring).

    ``path`` may also be a folder: every ``*.triples.jsonl`` in it (recursively) is read, else every TyDi JSONL.
    """
    path = Path(path)
    root = Path(root) if root is not None else None
    if path.is_dir():
        files = sorted(path.rglob("*.triples.jsonl")) or sorted(
            p for p in path.rglob("*.jsonl*") if p.name.endswith((".jsonl", ".jsonl.gz")))
        if not files:
            raise DatasetFormatError(f"{path}: no SD-QA .jsonl files in this folder")
        for f in files:
            yield from load_sdqa(f, root=root, audio_dir=audio_dir, keep_unanswerable=keep_unanswerable)
        return
    if not path.exists():
        raise FileNotFoundError(f"SD-QA file not found: {path}")
    if path.name.endswith(".json"):
        yield from _squad_json(path, Path(audio_dir) if audio_dir else None, keep_unanswerable, "daqa")
        return
    first = _first_jsonl_object(path)
    if first is None:
        return
    if "question_text" in first and "annotations" in first:
        yield from _sdqa_tydi(path, keep_unanswerable)
    elif "question" in first and "example_id" in first:
        yield from _sdqa_triples(path, root, keep_unanswerable)
    else:
        raise DatasetFormatError(f"{path}: neither TyDi-style SD-QA (question_text, annotations) nor SD-QA triples "
                                 f"(example_id, question, answers, audio_path); first line has {sorted(first)[:8]}")


def load_heysquad(path: str | Path, audio_dir: str | Path | None = None,
                  keep_unanswerable: bool = False) -> Iterator[SpokenQARow]:
    """HeySQuAD rows from SQuAD-format JSON with audio references, or HF-style JSONL (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"HeySQuAD file not found: {path}")
    audio = Path(audio_dir) if audio_dir is not None else None
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        yield from _jsonl_rows(path, audio, keep_unanswerable, "heysquad")
    else:
        yield from _squad_json(path, audio, keep_unanswerable, "heysquad")


def load_spoken_qa(fmt: str, path: str | Path, **kwargs) -> Iterator[SpokenQARow]:
    """Dispatch on ``fmt`` (``sdqa`` or ``heysquad``)."""
    if fmt == "sdqa":
        return load_sdqa(path, **kwargs)
    if fmt == "heysquad":
        return load_heysquad(path, **kwargs)
    raise ValueError(f"unknown spoken-QA format {fmt!r}; use one of {FORMATS}")


def parse_dataset_arg(value: str) -> tuple[str, Path, Path | None]:
    """``FORMAT:PATH[:AUDIO_DIR]`` (the ``aura eval --dataset`` syntax) -> ``(format, path, audio_dir)``.

    >>> parse_dataset_arg("heysquad:data/dev.json:data/audio")
    ('heysquad', PosixPath('data/dev.json'), PosixPath('data/audio'))
    """
    fmt, _, rest = value.partition(":")
    if fmt not in FORMATS or not rest:
        raise ValueError(f"--dataset {value!r}: expected FORMAT:PATH[:AUDIO_DIR] with FORMAT in {FORMATS}")
    path, _, audio_dir = rest.partition(":")
    return fmt, Path(path), Path(audio_dir) if audio_dir else None
