import numpy as np
import pytest

from pipeline.eval.metrics import (
    LatencyStats,
    PeakMemory,
    normalize_text,
    number_to_words,
    qa_accuracy,
    qa_correct,
    word_error_rate,
)


@pytest.mark.parametrize("raw, expected", [
    ("Hello, World!", "hello world"),
    ("Forty-two", "forty two"),              # the corpus's hyphenated number words
    ("42", "forty two"),                     # digits become the same words
    ("It's 10:30.", "its ten thirty"),
    ("She came 1st; he paid $3.50", "she came first he paid three point five zero dollars"),
    ("1,200 people (50%)", "one thousand two hundred people fifty percent"),
    ("  Don’t   stop  ", "dont stop"),
    ("", ""),
    (None, ""),
])
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_number_words_match_the_corpus_convention():
    from pipeline.data.corpus import number_to_words as corpus_words

    for n in range(100):
        assert normalize_text(corpus_words(n)) == number_to_words(n) == normalize_text(str(n))


def test_wer_is_corpus_level_on_normalised_text():
    assert word_error_rate(["The cat sat."], ["the cat sat"]).wer == 0.0
    assert word_error_rate(["twenty one apples"], ["21 apples"]).wer == 0.0
    r = word_error_rate(["a b c d", "e f"], ["a x c", "e f g"])
    # 1 substitution + 1 deletion + 1 insertion over 6 reference words
    assert (r.substitutions, r.deletions, r.insertions, r.reference_words) == (1, 1, 1, 6)
    assert r.wer == pytest.approx(3 / 6)
    empty = word_error_rate(["a b"], [""])
    assert empty.wer == 1.0 and empty.deletions == 2
    skipped = word_error_rate(["!!", "a"], ["x", "a"])
    assert skipped.skipped == 1 and skipped.wer == 0.0
    assert word_error_rate([], []).wer is None


@pytest.mark.parametrize("prediction, answers, ok", [
    ("Paris", "paris", True),
    ("Paris.", ["Paris"], True),
    ("The answer is Paris", "Paris", True),            # within answer length + 8 words
    ("The capital of Kenya is Nairobi.", "Nairobi", True),  # a natural full-sentence answer
    ("It is hard to say. Paris?", "Paris", False),     # only the first sentence counts
    ("It is 3.5 metres", "3.5", True),                 # a decimal point does not end the sentence
    ("Paris, of course, it is Paris", "paris", True),
    ("seventy", "seven", False),                       # whole words only
    ("7", "seven", True),                              # numbers normalised on both sides
    ("I think it could be one of many European cities, maybe Paris", "Paris", False),  # too late: no listing candidates
    ("new york city", "New York", True),               # multi-word answer, contiguous
    ("york new", "New York", False),
    ("blue", ["red", "Blue"], True),                   # any of several answers
    ("", "paris", False),
    ("anything", ["", "!!"], False),                   # an empty answer never matches
])
def test_qa_rule(prediction, answers, ok):
    assert qa_correct(prediction, answers) is ok


def test_qa_accuracy_counts():
    r = qa_accuracy(["Paris", "green", "four"], ["paris", "blue", "4"])
    assert (r.correct, r.total) == (2, 3) and r.accuracy == pytest.approx(2 / 3)
    assert qa_accuracy([], []).accuracy is None


def test_latency_stats():
    s = LatencyStats.from_samples([0.1, 0.2, 0.3, 0.4, None])
    assert s.count == 4 and s.p50_s == pytest.approx(0.25) and s.p95_s == pytest.approx(0.385)
    assert LatencyStats.from_samples([]).p50_s is None


def test_peak_memory_sees_a_transient_allocation_on_cpu():
    import mmap

    def touched(n_bytes: int) -> mmap.mmap:
        # Fresh anonymous pages, written: resident for sure (malloc may reuse pages freed by earlier tests).
        block = mmap.mmap(-1, n_bytes)
        np.frombuffer(block, dtype=np.uint8)[:] = 1
        return block

    meter = PeakMemory("cpu")
    meter.baseline()
    resident = touched(64_000_000)  # ~61 MB held by the "system"
    meter.start()
    transient = touched(32_000_000)  # ~31 MB during the "workload", then freed
    transient.close()
    reading = meter.stop()
    assert reading.device == "cpu" and reading.method in ("vmhwm", "psutil_sampling")
    assert reading.peak_mb > 80, reading
    del resident
