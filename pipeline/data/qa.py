"""Spoken QA facts: short-answer questions a small text LLM can answer, at scale.

Every fact has a ``fact_id`` (all phrasings of one question share it, so a held-out split is made
by fact), several phrasings, and a one- to four-word answer written as it is spoken (numbers are
words). Two sets of families:

* :data:`QA_FAMILIES`: the six small hand-written families the demo corpus
  (:mod:`pipeline.data.corpus`) uses: arithmetic, capitals, opposites, colors, letters, weekdays.
* :data:`LARGE_QA_FAMILIES`: families with hundreds to thousands of facts each, built from
  maintained data (``num2words`` for numbers, ``inflect`` for plurals, ``countryinfo`` for
  capitals, WordNet antonym pointers filtered by ``wordfreq`` for opposites).

:data:`ALL_QA_FAMILIES` is both. Which of them the bundled text LLM can actually answer is
measured once (:func:`measure_family_accuracy`, ``python -m pipeline.data.qa --measure``) and
committed as ``qa_family_accuracy.json`` beside this file; :func:`answerable_families` reads it.

    >>> facts = qa_facts(["months"])
    >>> facts[0].phrasings[0], facts[0].answer, facts[0].fact_id
    ('What month comes after January?', 'February', 'month_after:1:January')
    >>> len({f.fact_id for f in facts}) == len(facts)
    True
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import logging
import random
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ACCURACY_FILE = Path(__file__).with_name("qa_family_accuracy.json")
DEFAULT_LLM_SPEC = "bundled:smollm2-135m-instruct"
WORDNET_DIR = Path("/usr/share/wordnet")

# ---------------------------------------------------------------------------------------------
# Numbers as words (espeak would read digits too, but the transcript must be what is spoken)

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_to_words(n: int) -> str:
    """English words for 0-99: ``number_to_words(42) == "forty-two"``."""
    if not 0 <= n <= 99:
        raise ValueError(f"number_to_words handles 0-99, got {n}")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + ("" if ones == 0 else "-" + _ONES[ones])



# ---------------------------------------------------------------------------------------------
# Spoken QA: facts, each with several phrasings of its question


@dataclass(frozen=True)
class QAFact:
    """One question-answer fact; ``phrasings`` are alternative wordings of the same question."""

    family: str
    fact_id: str
    phrasings: tuple[str, ...]
    answer: str
    #: other answers a scorer should accept (the training target is always ``answer``)
    alternatives: tuple[str, ...] = ()

    @property
    def answers(self) -> tuple[str, ...]:
        """``answer`` and its ``alternatives``, for :func:`pipeline.eval.metrics.qa_correct`."""
        return (self.answer, *self.alternatives)


def _arithmetic_facts() -> list[QAFact]:
    facts = []
    w = number_to_words
    for a in range(11):
        for b in range(11):
            facts.append(QAFact("arithmetic", f"plus:{a}:{b}", (
                f"What is {w(a)} plus {w(b)}?", f"How much is {w(a)} plus {w(b)}?",
                f"What do you get if you add {w(a)} and {w(b)}?"), w(a + b)))
    for a in range(1, 13):
        for b in range(a + 1):
            facts.append(QAFact("arithmetic", f"minus:{a}:{b}", (
                f"What is {w(a)} minus {w(b)}?",
                f"What do you get if you take {w(b)} from {w(a)}?"),
                w(a - b)))
    for a in range(1, 7):
        for b in range(1, 7):
            facts.append(QAFact("arithmetic", f"times:{a}:{b}", (
                f"What is {w(a)} times {w(b)}?", f"What is {w(a)} multiplied by {w(b)}?"),
                w(a * b)))
    return facts


_CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Russia": "Moscow", "Egypt": "Cairo", "Canada": "Ottawa",
    "Australia": "Canberra", "Greece": "Athens", "Portugal": "Lisbon", "Ireland": "Dublin",
    "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen",
    "Poland": "Warsaw", "Austria": "Vienna", "Hungary": "Budapest", "Kenya": "Nairobi",
    "Argentina": "Buenos Aires", "Peru": "Lima", "Thailand": "Bangkok", "South Korea": "Seoul",
    "India": "New Delhi", "the United Kingdom": "London", "Belgium": "Brussels",
    "the Netherlands": "Amsterdam", "Turkey": "Ankara", "Cuba": "Havana", "Chile": "Santiago",
    "Iran": "Tehran", "Vietnam": "Hanoi", "Indonesia": "Jakarta", "the Philippines": "Manila",
    "Switzerland": "Bern", "Czechia": "Prague", "Scotland": "Edinburgh", "Wales": "Cardiff",
}


def _capital_facts() -> list[QAFact]:
    return [QAFact("capitals", f"capital:{country}", (
        f"What is the capital of {country}?", f"Which city is the capital of {country}?",
        f"What is the capital city of {country}?"), city) for country, city in _CAPITALS.items()]


# Pairs whose opposite is unambiguous in both directions; one-way entries follow.
_OPPOSITE_PAIRS = (
    ("hot", "cold"), ("up", "down"), ("fast", "slow"), ("happy", "sad"), ("day", "night"),
    ("early", "late"), ("full", "empty"), ("wet", "dry"), ("hard", "soft"), ("loud", "quiet"),
    ("rich", "poor"), ("strong", "weak"), ("thick", "thin"), ("push", "pull"), ("buy", "sell"),
    ("north", "south"), ("east", "west"), ("inside", "outside"), ("above", "below"),
    ("first", "last"), ("true", "false"), ("clean", "dirty"), ("cheap", "expensive"),
    ("always", "never"), ("black", "white"), ("question", "answer"), ("summer", "winter"),
    ("top", "bottom"), ("love", "hate"), ("win", "lose"), ("open", "closed"), ("asleep", "awake"),
    ("arrive", "leave"), ("remember", "forget"), ("sweet", "sour"), ("entrance", "exit"),
)
_OPPOSITE_ONE_WAY = (("tall", "short"), ("heavy", "light"), ("dark", "light"), ("young", "old"),
                     ("new", "old"), ("wide", "narrow"))


def _opposite_facts() -> list[QAFact]:
    directed = [*_OPPOSITE_PAIRS, *((b, a) for a, b in _OPPOSITE_PAIRS), *_OPPOSITE_ONE_WAY]
    return [QAFact("opposites", f"opposite:{word}", (
        f"What is the opposite of {word}?", f"What word means the opposite of {word}?"), answer)
        for word, answer in directed]


_COLORS = {
    "the sky": "blue", "grass": "green", "snow": "white", "coal": "black",
    "a ripe banana": "yellow", "a ripe tomato": "red", "a carrot": "orange", "milk": "white",
    "a lemon": "yellow", "a strawberry": "red", "an emerald": "green", "chocolate": "brown",
    "a pumpkin": "orange", "a polar bear": "white", "a crow": "black", "a flamingo": "pink",
    "an eggplant": "purple", "a fire truck": "red", "a lime": "green", "a school bus": "yellow",
    "a raven": "black", "a swan": "white", "a cucumber": "green", "a sapphire": "blue",
}


def _color_facts() -> list[QAFact]:
    return [QAFact("colors", f"color:{thing}", (
        f"What color is {thing}?", f"What is the usual color of {thing}?"), color)
        for thing, color in _COLORS.items()]


# Words whose spelling follows from their sound (no homophones such as "eight" or "write").
_SPELLING_WORDS = (
    "cat", "dog", "sun", "tree", "house", "apple", "river", "garden", "window", "yellow",
    "music", "bread", "chair", "table", "orange", "planet", "school", "pencil", "flower",
    "winter", "guitar", "rabbit", "basket", "kitchen", "blanket", "morning", "elephant",
    "computer", "mountain", "sandwich", "umbrella", "hospital", "book", "fish", "moon", "lamp",
    "cup", "bus", "green", "happy", "summer", "bottle", "doctor", "island", "jacket", "ladder",
    "market", "number", "pocket", "silver", "ticket", "tomato", "village", "wallet", "zebra",
)


def _letter_count_facts() -> list[QAFact]:
    return [QAFact("letters", f"letters:{word}", (
        f"How many letters are in the word {word}?",
        f"How many letters does the word {word} have?"), number_to_words(len(word)))
        for word in _SPELLING_WORDS]


def _weekday_facts() -> list[QAFact]:
    facts = []
    for i, day in enumerate(_WEEKDAYS):
        after, before = _WEEKDAYS[(i + 1) % 7], _WEEKDAYS[(i - 1) % 7]
        facts.append(QAFact("weekdays", f"after:1:{day}", (
            f"What day comes after {day}?", f"Which day of the week follows {day}?"), after))
        facts.append(QAFact("weekdays", f"before:{day}", (
            f"What day comes before {day}?", f"Which day of the week is just before {day}?"),
            before))
        for n in range(2, 7):
            facts.append(QAFact("weekdays", f"after:{n}:{day}", (
                f"What day is {number_to_words(n)} days after {day}?",
                f"If today is {day}, what day will it be in {number_to_words(n)} days?"),
                _WEEKDAYS[(i + n) % 7]))
    return facts


QA_FAMILIES: dict[str, Callable[[], list[QAFact]]] = {
    "arithmetic": _arithmetic_facts,
    "capitals": _capital_facts,
    "opposites": _opposite_facts,
    "colors": _color_facts,
    "letters": _letter_count_facts,
    "weekdays": _weekday_facts,
}
"""Spoken QA families; each builds its full, fixed list of facts."""


def spoken_qa_facts() -> list[QAFact]:
    """Every QA fact of every family (about 500), in a fixed order.

    >>> facts = spoken_qa_facts()
    >>> [(f.phrasings[0], f.answer) for f in facts if f.fact_id in ("plus:2:3", "color:the sky")]
    [('What is two plus three?', 'five'), ('What color is the sky?', 'blue')]
    """
    return [fact for build in QA_FAMILIES.values() for fact in build()]


# ---------------------------------------------------------------------------------------------
# Large families, from maintained data


def spoken_number(n: int) -> str:
    """A whole number as it is said, via ``num2words`` (American style, no "and").

    >>> spoken_number(42), spoken_number(100), spoken_number(343)
    ('forty-two', 'one hundred', 'three hundred forty-three')
    """
    from num2words import num2words

    return num2words(n).replace(" and ", " ").replace(",", "")


def _sum_facts() -> list[QAFact]:
    w = spoken_number
    facts = []
    for a in range(1, 100):
        for b in range(1, 101 - a):
            if a <= 10 and b <= 10:
                continue  # the small sums are the "arithmetic" family's
            facts.append(QAFact("sums", f"sum:{a}:{b}", (
                f"What is {w(a)} plus {w(b)}?", f"How much is {w(a)} plus {w(b)}?",
                f"What do you get if you add {w(a)} and {w(b)}?"), w(a + b)))
    return facts


def _difference_facts() -> list[QAFact]:
    w = spoken_number
    facts = []
    for a in range(13, 101):
        for b in range(1, a + 1):
            facts.append(QAFact("differences", f"difference:{a}:{b}", (
                f"What is {w(a)} minus {w(b)}?", f"How much is {w(a)} minus {w(b)}?",
                f"What do you get if you take {w(b)} from {w(a)}?"), w(a - b)))
    return facts


def _times_table_facts() -> list[QAFact]:
    w = spoken_number
    return [QAFact("times_tables", f"times_table:{a}:{b}", (
        f"What is {w(a)} times {w(b)}?", f"What is {w(a)} multiplied by {w(b)}?",
        f"How much is {w(a)} times {w(b)}?"), w(a * b))
        for a in range(2, 13) for b in range(2, 13) if a > 6 or b > 6]


def _number_after_facts() -> list[QAFact]:
    w = spoken_number
    return [QAFact("number_after", f"number_after:{n}", (
        f"What number comes after {w(n)}?", f"What number comes right after {w(n)}?",
        f"Which number follows {w(n)}?"), w(n + 1)) for n in range(1, 1000)]


def _number_before_facts() -> list[QAFact]:
    w = spoken_number
    return [QAFact("number_before", f"number_before:{n}", (
        f"What number comes before {w(n)}?", f"What number comes just before {w(n)}?",
        f"Which number is one less than {w(n)}?"), w(n - 1)) for n in range(2, 1001)]


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def _month_facts() -> list[QAFact]:
    facts = []
    for i, month in enumerate(_MONTHS):
        facts.append(QAFact("months", f"month_after:1:{month}", (
            f"What month comes after {month}?", f"Which month follows {month}?"),
            _MONTHS[(i + 1) % 12]))
        facts.append(QAFact("months", f"month_before:{month}", (
            f"What month comes before {month}?", f"Which month is just before {month}?"),
            _MONTHS[(i - 1) % 12]))
    for i, month in enumerate(_MONTHS):
        for n in range(2, 12):
            facts.append(QAFact("months", f"month_after:{n}:{month}", (
                f"What month is {spoken_number(n)} months after {month}?",
                f"If it is {month} now, what month will it be in {spoken_number(n)} months?"),
                _MONTHS[(i + n) % 12]))
    facts.extend(QAFact("months", f"month_number:{i + 1}", (
        f"What is the {_ordinal(i + 1)} month of the year?",
        f"Which month is the {_ordinal(i + 1)} month of the year?"), month)
        for i, month in enumerate(_MONTHS))
    return facts


def _ordinal(n: int) -> str:
    from num2words import num2words

    return num2words(n, to="ordinal")


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _alphabet_facts() -> list[QAFact]:
    facts = []
    for i, letter in enumerate(_LETTERS.upper()):
        if i + 1 < 26:
            facts.append(QAFact("alphabet", f"letter_after:{letter}", (
                f"What letter comes after {letter}?",
                f"Which letter of the alphabet follows {letter}?"), _LETTERS[i + 1]))
        if i > 0:
            facts.append(QAFact("alphabet", f"letter_before:{letter}", (
                f"What letter comes before {letter}?",
                f"Which letter of the alphabet is just before {letter}?"), _LETTERS[i - 1]))
    return facts


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()


# countryinfo names that are not how a country is usually said, or duplicate a better entry
_COUNTRY_SKIP = {"Burma", "Swaziland", "East Timor", "Macau", "Republic of Macedonia"}
_COUNTRY_ARTICLE = ("United", "Netherlands", "Philippines", "Bahamas", "Maldives",
                    "Czech Republic", "Central African Republic", "Dominican Republic",
                    "Democratic Republic", "Republic of the", "Ivory Coast", "Gambia",
                    "Comoros", "Seychelles", "Marshall Islands", "Solomon Islands",
                    "Vatican City")


@functools.lru_cache(maxsize=1)
def _country_capitals() -> tuple[tuple[str, str, int], ...]:
    """(country as said in a question, capital, population) from ``countryinfo``, ASCII only."""
    from countryinfo import all_countries

    rows = {}
    for country in all_countries():
        try:
            name, capital, population = country.name(), country.capital(), country.population()
        except Exception:  # noqa: BLE001 - entries without a capital or population
            continue
        if not isinstance(name, str) or not isinstance(capital, str):
            continue  # a few entries have no capital, or several
        name, capital = _ascii(name).strip(), _ascii(capital).strip()
        if (not capital or name in _COUNTRY_SKIP or not re.fullmatch(r"[A-Za-z .'-]+", name)
                or not re.fullmatch(r"[A-Za-z '-]+", capital) or not population):
            continue
        if name.startswith("The "):
            name = "the " + name[4:]
        elif any(name.startswith(p) or p in name for p in _COUNTRY_ARTICLE):
            name = "the " + name
        rows[name] = (name, capital, int(population))
    return tuple(sorted(rows.values(), key=lambda r: (-r[2], r[0])))


def _world_capital_facts(min_population: int = 1_000_000) -> list[QAFact]:
    return [QAFact("world_capitals", f"world_capital:{name}", (
        f"What is the capital of {name}?", f"Which city is the capital of {name}?",
        f"What is the capital city of {name}?"), capital)
        for name, capital, population in _country_capitals() if population >= min_population]


def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def _read_wordnet(path: Path) -> Iterable[str]:
    if not path.exists():
        raise FileNotFoundError(f"WordNet QA families need the Debian package wordnet-base "
                                f"(apt-get install wordnet-base): {path} not found")
    with path.open(encoding="latin-1") as handle:
        for line in handle:
            if not line.startswith(" "):
                yield line


@functools.lru_cache(maxsize=4)
def wordnet_antonyms(wordnet_dir: Path = WORDNET_DIR, min_zipf: float = 4.0
                     ) -> tuple[tuple[str, str], ...]:
    """(word, antonym) pairs from WordNet's ``!`` pointers between adjectives and adverbs (noun and
    verb antonyms are too often technical: "ground" / "figure", "recall" / "issue"),
    both words single, lower-case and common (``wordfreq`` Zipf frequency >= ``min_zipf``).
    A word with more than one such antonym is dropped (its question has no single answer)."""
    found: dict[str, set[str]] = {}
    for pos in ("adj", "adv"):
        synsets: dict[str, list[str]] = {}
        pointers: list[tuple[str, int, str, int]] = []
        for line in _read_wordnet(Path(wordnet_dir) / f"data.{pos}"):
            fields = line.split(" | ", 1)[0].split()
            offset, count = fields[0], int(fields[3], 16)
            words = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]) for i in range(count)]
            synsets[offset] = words
            at = 4 + 2 * count
            for k in range(int(fields[at])):
                symbol, target, _, source_target = fields[at + 1 + 4 * k: at + 5 + 4 * k]
                if symbol == "!":
                    pointers.append((offset, int(source_target[:2], 16), target,
                                     int(source_target[2:], 16)))
        for offset, source, target, target_word in pointers:
            if source == 0 or target_word == 0 or target not in synsets:
                continue
            word, antonym = synsets[offset][source - 1], synsets[target][target_word - 1]
            if all(re.fullmatch(r"[a-z]+", w) for w in (word, antonym)):
                found.setdefault(word, set()).add(antonym)
    pairs = []
    for word in sorted(found):
        antonyms = found[word]
        if len(antonyms) == 1:
            (antonym,) = antonyms
            if _zipf(word) >= min_zipf and _zipf(antonym) >= min_zipf:
                pairs.append((word, antonym))
    return tuple(pairs)


def _wordnet_opposite_facts() -> list[QAFact]:
    small = {f.fact_id for f in _opposite_facts()}
    return [QAFact("wordnet_opposites", f"opposite:{word}", (
        f"What is the opposite of {word}?", f"What word means the opposite of {word}?",
        f"What is the antonym of {word}?"), antonym)
        for word, antonym in wordnet_antonyms() if f"opposite:{word}" not in small]


@functools.lru_cache(maxsize=4)
def common_plurals(wordnet_dir: Path = WORDNET_DIR, min_zipf: float = 4.0,
                   min_plural_zipf: float = 3.0) -> tuple[tuple[str, str], ...]:
    """(noun, plural) for common WordNet nouns whose ``inflect`` plural is itself common (which
    leaves out mass nouns such as "water" and words that are already plural). Words that WordNet
    also lists as verbs or adjectives ("steal", "separate") are left out: the question must be
    about a noun."""
    import inflect

    engine = inflect.engine()
    other = {line.split(" ", 1)[0] for pos in ("verb", "adj", "adv")
             for line in _read_wordnet(Path(wordnet_dir) / f"index.{pos}")}
    nouns = []
    for line in _read_wordnet(Path(wordnet_dir) / "index.noun"):
        lemma = line.split(" ", 1)[0]
        if re.fullmatch(r"[a-z]{3,}", lemma):
            nouns.append(lemma)
    pairs = []
    for noun in sorted(set(nouns)):
        if noun in other or _zipf(noun) < min_zipf or engine.singular_noun(noun):
            continue
        plural = engine.plural_noun(noun)
        if plural != noun and re.fullmatch(r"[a-z]+", plural) and _zipf(plural) >= max(
                min_plural_zipf, _zipf(noun) - 1.2):
            pairs.append((noun, plural))
    return tuple(pairs)


def _plural_facts() -> list[QAFact]:
    return [QAFact("plurals", f"plural:{noun}", (
        f"What is the plural of {noun}?", f"What is the plural form of the word {noun}?",
        f"How do you say more than one {noun}?"), plural) for noun, plural in common_plurals()]


LARGE_QA_FAMILIES: dict[str, Callable[[], list[QAFact]]] = {
    "sums": _sum_facts,
    "differences": _difference_facts,
    "times_tables": _times_table_facts,
    "number_after": _number_after_facts,
    "number_before": _number_before_facts,
    "months": _month_facts,
    "alphabet": _alphabet_facts,
    "world_capitals": _world_capital_facts,
    "wordnet_opposites": _wordnet_opposite_facts,
    "plurals": _plural_facts,
}
"""Large spoken QA families (hundreds to thousands of facts each); none repeats a fact_id of
:data:`QA_FAMILIES`."""

ALL_QA_FAMILIES: dict[str, Callable[[], list[QAFact]]] = {**QA_FAMILIES, **LARGE_QA_FAMILIES}
"""Every QA family, small then large."""


def qa_facts(families: Iterable[str] | None = None) -> list[QAFact]:
    """The facts of ``families`` (names in :data:`ALL_QA_FAMILIES`; default all), in a fixed order.

    >>> [(f.phrasings[0], f.answer) for f in qa_facts(["times_tables"])][:1]
    [('What is two times seven?', 'fourteen')]
    """
    names = list(ALL_QA_FAMILIES) if families is None else list(families)
    unknown = [n for n in names if n not in ALL_QA_FAMILIES]
    if unknown:
        raise KeyError(f"unknown QA families {unknown}; known: {sorted(ALL_QA_FAMILIES)}")
    return [fact for name in names for fact in ALL_QA_FAMILIES[name]()]


# ---------------------------------------------------------------------------------------------
# Which families the text LLM can answer


def sample_questions(families: Iterable[str] | None = None, per_family: int = 40, seed: int = 0
                     ) -> list[tuple[QAFact, str]]:
    """``per_family`` (fact, phrasing) pairs per family, drawn without replacement (seeded)."""
    rng = random.Random(f"aura-qa-measure:{seed}")
    out = []
    for name in (list(ALL_QA_FAMILIES) if families is None else list(families)):
        facts = qa_facts([name])
        for fact in rng.sample(facts, min(per_family, len(facts))):
            out.append((fact, rng.choice(fact.phrasings)))
    return out


def measure_family_accuracy(
    families: Iterable[str] | None = None,
    *,
    per_family: int = 40,
    seed: int = 0,
    llm_spec: str = DEFAULT_LLM_SPEC,
    cache_dir: str | Path | None = None,
    max_new_tokens: int = 48,
    batch_size: int = 40,
    device: str | None = None,
    llm=None,
    tokenizer=None,
) -> dict:
    """Text-only accuracy of the LLM per QA family, asked and scored the way the eval does.

    Each sampled question is one user turn ``{question}\\n{spoken_qa instruction}`` (the
    text-only system's prompt, :func:`pipeline.prompts.text_prompt`), answered greedily
    (:func:`pipeline.decoding.text_only_generate`) and scored by
    :func:`pipeline.eval.metrics.qa_correct`. Pass ``llm`` and ``tokenizer`` to reuse a loaded
    model. Returns ``{"model", "date", "per_family", "seed", "max_new_tokens", "instruction",
    "families": {name: {"accuracy", "correct", "n", "facts", "examples"}}}``.
    """
    from pipeline.prompts import text_prompt
    from pipeline.eval.metrics import qa_correct
    from pipeline.decoding import text_only_generate
    from pipeline.runtime import resolve_device
    from pipeline.prompts import instruction_for

    if llm is None or tokenizer is None:
        import torch

        from pipeline.config import default_cache_dir
        from pipeline.runtime import ensure_mask_attention
        from pipeline.models.sources import load_llm

        llm, tokenizer = load_llm(llm_spec, cache_dir or default_cache_dir(), dtype=torch.float32)
        ensure_mask_attention(llm)
        llm.to(resolve_device(device))
    instruction = instruction_for("spoken_qa")
    names = list(ALL_QA_FAMILIES) if families is None else list(families)
    table: dict[str, dict] = {}
    started = time.perf_counter()
    for name in names:
        asked = sample_questions([name], per_family, seed)
        replies: list[str] = []
        for start in range(0, len(asked), batch_size):
            prompts = [text_prompt(q, instruction) for _, q in asked[start:start + batch_size]]
            replies += [r.text for r in text_only_generate(llm, tokenizer, prompts,
                                                           max_new_tokens=max_new_tokens)]
        correct = [qa_correct(reply, fact.answers) for (fact, _), reply in zip(asked, replies)]
        table[name] = {
            "accuracy": round(sum(correct) / len(correct), 4) if correct else None,
            "correct": sum(correct), "n": len(correct), "facts": len(qa_facts([name])),
            "examples": [{"question": q, "answer": fact.answer, "reply": reply, "correct": ok}
                         for (fact, q), reply, ok in list(zip(asked, replies, correct))[:3]],
        }
        logger.info("%s: %d/%d (%.0f s)", name, sum(correct), len(correct),
                    time.perf_counter() - started)
    return {"model": llm_spec, "date": datetime.date.today().isoformat(),
            "per_family": per_family, "seed": seed, "max_new_tokens": max_new_tokens,
            "instruction": instruction, "families": table}


def answerable_families(min_accuracy: float = 0.5, path: str | Path = ACCURACY_FILE) -> list[str]:
    """Families whose measured text-LLM accuracy (in ``qa_family_accuracy.json``) is at least
    ``min_accuracy``, in :data:`ALL_QA_FAMILIES` order.

    >>> "weekdays" in ALL_QA_FAMILIES and set(answerable_families(0.0)) <= set(ALL_QA_FAMILIES)
    True
    """
    measured = json.loads(Path(path).read_text())["families"]
    return [name for name in ALL_QA_FAMILIES
            if name in measured and measured[name]["accuracy"] is not None
            and measured[name]["accuracy"] >= min_accuracy]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.data.qa", description=__doc__.split("\n")[0])
    parser.add_argument("--measure", action="store_true",
                        help="measure the text LLM's accuracy per family and write --out")
    parser.add_argument("--out", type=Path, default=ACCURACY_FILE)
    parser.add_argument("--families", nargs="*", default=None)
    parser.add_argument("--per-family", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", default=DEFAULT_LLM_SPEC)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if not args.measure:
        for name in ALL_QA_FAMILIES:
            print(f"{name:18s} {len(qa_facts([name])):6d} facts")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = measure_family_accuracy(args.families, per_family=args.per_family, seed=args.seed,
                                    llm_spec=args.llm, cache_dir=args.cache_dir, device=args.device)
    args.out.write_text(json.dumps(table, indent=2) + "\n")
    for name, row in table["families"].items():
        print(f"{name:18s} {row['facts']:6d} facts  accuracy {row['accuracy']:.2f} (n={row['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
