"""A corpus manifest: ``manifest.jsonl``, one JSON object per utterance, in key order.

Both corpus builders (:mod:`pipeline.data.corpus`, the tiny eSpeak template corpus, and
:mod:`pipeline.data.speech_corpus`, real sentences over several engines) plan every row before any audio
exists, as a :class:`PlannedRow` subclass that adds the engine's own prosody fields, and write it with the
rendered clip's length. :mod:`pipeline.data.ingest` reads any manifest with these fields.

    >>> row = PlannedRow(key="u1", audio="audio/u1.flac", text="What is the capital of Norway?",
    ...                  task="spoken_qa", question="What is the capital of Norway?", answer="Oslo",
    ...                  target="Oslo", qa_family="capitals", qa_fact="norway", voice="en-us",
    ...                  speaker="espeak:en-us", split="train")
    >>> row.task in TASKS
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.prompts import TASK_INSTRUCTIONS

MANIFEST_NAME = "manifest.jsonl"
TASKS = tuple(TASK_INSTRUCTIONS)  # ("transcribe", "spoken_qa"): the tasks a prompt exists for


@dataclass(frozen=True)
class PlannedRow:
    """The fields every manifest row has, before its audio exists.

    ``text`` is what is spoken; ``target`` what the student answers (the text itself for ``transcribe``,
    the answer for ``spoken_qa``, whose ``question`` / ``answer`` / ``qa_family`` / ``qa_fact`` are None
    for transcription rows); ``voice`` the engine's voice, ``speaker`` who a split by speaker sees.
    """

    key: str
    audio: str
    text: str
    task: str
    question: str | None
    answer: str | None
    target: str
    qa_family: str | None
    qa_fact: str | None
    voice: str
    speaker: str
    split: str
