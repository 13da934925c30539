"""Metrics of the evaluation: WER, spoken-QA accuracy, latency percentiles and peak memory.

Text normalisation (:func:`normalize_text`), applied to references and hypotheses alike:

1. Unicode NFKC, lowercase, curly quotes made straight;
2. numbers written as words, the way the corpus writes them (``42`` -> ``forty two``, ``3.5`` ->
   ``three point five``, ``1,200`` -> ``one thousand two hundred``, ``21st`` -> ``twenty first``,
   ``10:30`` -> ``ten thirty``, ``%`` -> ``percent``); the corpus's own hyphenated number words
   (``forty-two``) become ``forty two`` in step 3, so digits and words agree;
3. hyphens, slashes and other punctuation become spaces; apostrophes are dropped inside words
   (``don't`` -> ``dont``), so a contraction counts as one word on both sides;
4. whitespace collapsed.

WER (:func:`word_error_rate`) is the corpus-level rate from jiwer on normalised text: total
substitutions + deletions + insertions over total reference words (utterances with an empty
normalised reference are left out and counted in ``skipped``).

Spoken-QA accuracy (:func:`qa_correct`), the rule: a prediction is correct when, after
normalisation, **the word sequence of some reference answer occurs contiguously in the first
sentence of the prediction, among its first ``len(answer words) + window`` words** (``window`` = 8
by default). So ``"Paris."``, ``"paris"``, ``"The capital of France is Paris."`` and ``"Paris, of
course"`` are right for ``Paris``; ``"seventy"`` is wrong for ``seven`` (whole words only); and an
answer in a later sentence or buried late in a ramble (``"It is hard to say. Paris?"``, ``"I think
it could be one of many European cities, maybe Paris"``) is wrong, so a system cannot score by
listing candidates. (A window of 4 rejected natural full-sentence answers such as ``"The capital of
Kenya is Nairobi."``; 8 admits them.) Several reference answers (SQuAD-style) count as correct when any
of them matches. An empty normalised answer never matches.

Latency (:class:`LatencyStats`): per-utterance wall time and time to first token, summarised as
p50/p95/mean (numpy's linear-interpolated percentiles).

Peak memory (:class:`PeakMemory`): measured per system, one system after another in one process.
On a GPU it is ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (minus what
was allocated before the system was loaded). On CPU it is the resident-set high-water mark:
``VmHWM`` from ``/proc/self/status`` after resetting it through ``/proc/self/clear_refs`` (Linux
>= 4.0), minus the RSS before the system was loaded; where the reset is not possible a sampling
thread (psutil, every 2 ms) takes the maximum RSS instead.

Usage::

    >>> normalize_text("He paid $42, didn't he?")
    'he paid forty two dollars didnt he'
    >>> word_error_rate(["the cat sat"], ["The cat sat."]).wer
    0.0
    >>> qa_correct("The answer is Paris.", ["Paris"])
    True
"""

from __future__ import annotations

import gc
import os
import re
import threading
import time
import unicodedata
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

# ------------------------------------------------------------------------------------------------
# Numbers as words

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}


def number_to_words(n: int) -> str:
    """English words for a non-negative integer, space separated: ``number_to_words(42) == "forty two"``.

    >>> number_to_words(0), number_to_words(115), number_to_words(2024)
    ('zero', 'one hundred fifteen', 'two thousand twenty four')
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return number_to_words(high) + f" {name}" + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    """``ordinal_words(21) == "twenty first"``."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _digits_to_words(digits: str) -> str:
    # Very long digit strings (ids, phone numbers) are read digit by digit.
    if len(digits) > 15:
        return " ".join(_ONES[int(d)] for d in digits)
    return number_to_words(int(digits))


_CURRENCY = {"$": "dollars", "€": "euros", "£": "pounds"}
_NUMBER = re.compile(
    r"(?P<cur>[$€£])?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?P<ord>st|nd|rd|th)?(?P<pct>%)?"
)
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})\b")


def _number_words(match: re.Match) -> str:
    integer = match.group("int").replace(",", "")
    if match.group("ord") and not match.group("frac"):
        words = ordinal_words(int(integer))
    else:
        words = _digits_to_words(integer)
        if match.group("frac"):
            words += " point " + " ".join(_ONES[int(d)] for d in match.group("frac"))
    if match.group("pct"):
        words += " percent"
    if match.group("cur"):
        words += " " + _CURRENCY[match.group("cur")]
    return f" {words} "


def _time_words(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f" {number_to_words(hours)} "
    minute_words = ("oh " + _ONES[minutes]) if minutes < 10 else number_to_words(minutes)
    return f" {number_to_words(hours)} {minute_words} "


_APOSTROPHES = re.compile(r"(?<=\w)['’`](?=\w)")
_NON_WORD = re.compile(r"[^\w\s]|_")


def normalize_text(text: str | None) -> str:
    """Lowercase, numbers as words, punctuation removed, whitespace collapsed (see the module docstring).

    >>> normalize_text("Forty-two!"), normalize_text("42"), normalize_text("It's 10:30.")
    ('forty two', 'forty two', 'its ten thirty')
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    text = _TIME.sub(_time_words, text)
    text = _NUMBER.sub(_number_words, text)
    text = text.replace("&", " and ")
    text = _APOSTROPHES.sub("", text)
    text = _NON_WORD.sub(" ", text)
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------------
# WER


@dataclass
class WerResult:
    wer: float | None  # None when there was nothing to score
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0
    reference_words: int = 0
    utterances: int = 0
    skipped: int = 0  # utterances whose normalised reference is empty

    @property
    def errors(self) -> int:
        """Word errors: substitutions + deletions + insertions (what paired comparisons count per utterance)."""
        return self.substitutions + self.deletions + self.insertions

    def to_dict(self) -> dict:
        return asdict(self)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> WerResult:
    """Corpus-level WER of ``hypotheses`` against ``references`` after :func:`normalize_text`.

    >>> r = word_error_rate(["a b c d"], ["a x c"])
    >>> r.wer, r.substitutions, r.deletions
    (0.5, 1, 1)
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs, hyps, skipped = [], [], 0
    for ref, hyp in zip(references, hypotheses):
        ref_n = normalize_text(ref)
        if not ref_n:
            skipped += 1
            continue
        refs.append(ref_n)
        hyps.append(normalize_text(hyp))
    if not refs:
        return WerResult(None, skipped=skipped)
    # jiwer refuses an empty hypothesis string in some versions; an empty hypothesis is all deletions.
    out = jiwer.process_words(refs, [h if h else "" for h in hyps])
    total = out.hits + out.substitutions + out.deletions
    return WerResult(
        wer=(out.substitutions + out.deletions + out.insertions) / total,
        substitutions=out.substitutions, deletions=out.deletions, insertions=out.insertions, hits=out.hits,
        reference_words=total, utterances=len(refs), skipped=skipped,
    )


# ------------------------------------------------------------------------------------------------
# Spoken-QA accuracy

QA_WINDOW = 8
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)|\n")


def qa_correct(prediction: str, answers: str | Iterable[str], window: int = QA_WINDOW) -> bool:
    """The spoken-QA rule of the module docstring: an answer's words within the prediction's first words.

    >>> qa_correct("Seven.", "seven"), qa_correct("seventy", "seven"), qa_correct("It is seven", ["7"])
    (True, False, True)
    """
    if isinstance(answers, str):
        answers = [answers]
    first_sentence = _SENTENCE_END.split((prediction or "").strip(), maxsplit=1)[0]
    words = normalize_text(first_sentence).split()
    for answer in answers:
        target = normalize_text(answer).split()
        if not target:
            continue
        head = words[: len(target) + window]
        for start in range(len(head) - len(target) + 1):
            if head[start : start + len(target)] == target:
                return True
    return False


@dataclass
class QAResult:
    accuracy: float | None
    correct: int = 0
    total: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def qa_accuracy(predictions: Sequence[str], answers: Sequence[str | Sequence[str]],
                window: int = QA_WINDOW) -> QAResult:
    """Share of predictions that :func:`qa_correct` accepts.

    >>> qa_accuracy(["Paris", "blue sky"], ["paris", "red"]).accuracy
    0.5
    """
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions but {len(answers)} answer sets")
    correct = sum(qa_correct(p, a, window) for p, a in zip(predictions, answers))
    total = len(predictions)
    return QAResult(correct / total if total else None, correct, total)


# ------------------------------------------------------------------------------------------------
# Latency


@dataclass
class LatencyStats:
    count: int
    p50_s: float | None
    p95_s: float | None
    mean_s: float | None

    @classmethod
    def from_samples(cls, seconds: Sequence[float | None]) -> "LatencyStats":
        """p50/p95/mean of the given times (``None`` entries are ignored).

        >>> LatencyStats.from_samples([1.0, 2.0, 3.0]).p50_s
        2.0
        """
        values = np.asarray([s for s in seconds if s is not None], dtype=np.float64)
        if values.size == 0:
            return cls(0, None, None, None)
        return cls(int(values.size), float(np.percentile(values, 50)), float(np.percentile(values, 95)),
                   float(values.mean()))

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------
# Peak memory


def current_rss_bytes() -> int:
    """Resident set size of this process now."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


def _read_hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    """Reset the RSS high-water mark to the current RSS (``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    hwm = _read_hwm_bytes()
    # The reset worked when the mark dropped to (about) the current RSS.
    return hwm is not None and hwm <= current_rss_bytes() * 1.05 + (1 << 20)


@dataclass
class MemoryReading:
    device: str  # "cuda" or "cpu"
    method: str  # cuda_max_memory_allocated | vmhwm | psutil_sampling
    peak_bytes: int  # peak during the measured block, absolute (process RSS or CUDA allocated)
    baseline_bytes: int  # before the system was loaded
    peak_over_baseline_bytes: int  # what the system itself added at its peak

    @property
    def peak_mb(self) -> float:
        return self.peak_over_baseline_bytes / 2**20

    def to_dict(self) -> dict:
        return {**asdict(self), "peak_mb": round(self.peak_mb, 2)}


class _RssSampler:
    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self.peak = current_rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_bytes())
            time.sleep(self.interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, current_rss_bytes())


class PeakMemory:
    """Peak memory of one system, measured in this process (see the module docstring).

    Call :meth:`baseline` before loading the system, :meth:`start` once it is loaded (so load-time
    transients are not counted, but the loaded weights are), run the workload, then :meth:`stop`.

    >>> meter = PeakMemory("cpu"); meter.baseline()                      # doctest: +SKIP
    >>> model = load(...); meter.start(); run(model); reading = meter.stop()   # doctest: +SKIP
    """

    def __init__(self, device: str = "cpu"):
        self.device = "cuda" if str(device).startswith("cuda") else "cpu"
        self._baseline = 0
        self._sampler: _RssSampler | None = None
        self._method = ""

    def baseline(self) -> int:
        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            self._baseline = torch.cuda.memory_allocated()
        else:
            self._baseline = current_rss_bytes()
        return self._baseline

    def start(self) -> None:
        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._method = "cuda_max_memory_allocated"
        elif _reset_hwm():
            self._method = "vmhwm"
        else:
            self._sampler = _RssSampler()
            self._sampler.start()
            self._method = "psutil_sampling"

    def stop(self) -> MemoryReading:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        elif self._method == "vmhwm":
            peak = max(_read_hwm_bytes() or 0, current_rss_bytes())
        else:
            assert self._sampler is not None, "start() was not called"
            peak = self._sampler.stop()
        return MemoryReading(self.device, self._method, int(peak), int(self._baseline),
                             int(max(0, peak - self._baseline)))


__all__ = [
    "LatencyStats", "MemoryReading", "PeakMemory", "QAResult", "WerResult", "current_rss_bytes",
    "normalize_text", "number_to_words", "ordinal_words", "qa_accuracy", "qa_correct", "word_error_rate",
]


def collapse_repeats(text: str) -> str:
    """The first period of a hypothesis that repeats itself (``"a b. a b. a"`` -> ``"a b."``).

    Whisper's decoder reading only the kept frames (no 30 s padding after the speech) often does
    not stop: it transcribes the clip, then starts over, until the token limit. That loop is the
    same in every window mode and swamps the WER, so the table reports the WER of the collapsed
    hypotheses next to the raw one.

    >>> collapse_repeats("the cat sat. the cat sat. the ca")
    'the cat sat.'
    """
    words = text.split()
    plain = ["".join(ch for ch in w.lower() if ch.isalnum()) for w in words]
    last = len(words) - 1
    for period in range(1, len(words) // 2 + 1):
        # the token limit may cut the last repeat mid-word
        if all(plain[i] == plain[i % period] or (i == last and plain[i % period].startswith(plain[i]))
               for i in range(period, len(words))):
            return " ".join(words[:period])
    return text
