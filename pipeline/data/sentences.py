"""Real English sentences that ship offline (Debian main), normalised to what a TTS engine says.

Two sources, both plain files installed by Debian packages:

* ``wordnet``: the quoted usage examples in WordNet's glosses (``wordnet-base``:
  ``/usr/share/wordnet/data.{noun,verb,adj,adv}``), e.g. ``"she was able to program her
  computer"``.
* ``fortunes``: the ``fortune`` cookie files (``fortunes``: ``/usr/share/games/fortunes/*``),
  entries separated by ``%`` lines, split into sentences; attributions, lists, code, dialogue
  and shouting are left out.

Every candidate goes through :func:`normalize_spoken` (numbers, currency, years, abbreviations
and symbols written out with ``num2words`` and ``inflect``), is length-filtered after
normalising, and deduplicated on a case- and punctuation-insensitive key. Text a TTS engine
would not read as words is rejected, and rejects are counted by reason.

    >>> normalize_spoken("Dr. Smith paid $5 for 3 apples in 1984.")
    'Doctor Smith paid five dollars for three apples in nineteen eighty-four.'
    >>> sentences = load_sentences()                    # doctest: +SKIP
    >>> sentences[0]                                    # doctest: +SKIP
    Sentence(text='Able to swim.', source='wordnet', source_id='wordnet:adj:00001740:0')
"""

from __future__ import annotations

import functools
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
SOURCES = ("wordnet", "fortunes")
DEBIAN_PACKAGES = {"wordnet": "wordnet-base", "fortunes": "fortunes"}
#: fortune files that are not English prose
FORTUNE_SKIP = frozenset({"ascii-art", "translate-me", "perl"})


@dataclass(frozen=True)
class Sentence:
    """One sentence: ``text`` is exactly what is spoken (and the transcript)."""

    text: str
    source: str
    source_id: str


class SentenceSourceMissing(FileNotFoundError):
    """A sentence source's files are not installed."""


class UnspeakableText(ValueError):
    """Text that a TTS engine would not read as words; ``reason`` names why."""

    def __init__(self, reason: str, text: str):
        super().__init__(f"{reason}: {text!r}")
        self.reason = reason
        self.text = text


# ---------------------------------------------------------------------------------------------
# Normalisation

_QUOTES = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
           "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
           "\u2033": '"', "\u00b4": "'"}
_DASHES = re.compile(r"\s*(?:[\u2013\u2014\u2015]|--+)\s*")
_HYPHENS = re.compile(r"[\u2010\u2011\u2012\u2212]")
_ELLIPSIS = re.compile(r"\s*(?:\u2026|\.\s?\.(?:\s?\.)+)\s*")
_URL = re.compile(r"https?:|www\.|\w@\w|\.(?:com|org|net|edu|gov)\b|[\w/]+/\w", re.I)
_BRACKETS = re.compile(r"[()\[\]{}<>]")

# (pattern, replacement): applied in order, before numbers
_ABBREVIATIONS = tuple((re.compile(p), r) for p, r in (
    (r"\bDr\.(?=\s+[A-Z])", "Doctor"), (r"\bMr\.", "Mister"), (r"\bMrs\.", "Missus"),
    (r"\bMs\.", "Miz"), (r"\bProf\.(?=\s+[A-Z])", "Professor"), (r"\bSt\.(?=\s+[A-Z])", "Saint"),
    (r"(?<=[a-z] )St\.", "Street"), (r"\bMt\.(?=\s+[A-Z])", "Mount"), (r"\bJr\.", "Junior"),
    (r"\bSr\.", "Senior"), (r"\bCapt\.", "Captain"), (r"\bGen\.(?=\s+[A-Z])", "General"),
    (r"\bGov\.(?=\s+[A-Z])", "Governor"), (r"\bSen\.(?=\s+[A-Z])", "Senator"),
    (r"\bRev\.(?=\s+[A-Z])", "Reverend"), (r"\bLt\.(?=\s+[A-Z])", "Lieutenant"),
    (r"\bNo\.(?=\s*\d)", "number"), (r"\be\.\s?g\.(?:,)?", "for example,"),
    (r"\bi\.\s?e\.(?:,)?", "that is,"), (r"\bvs?\.", "versus"), (r"\betc\.", "et cetera."),
    (r"\bapprox\.", "approximately"), (r"\bU\.\s?S\.(?:\s?A\.)?", "U S"),
))
_SYMBOLS = (("&", " and "), ("+", " plus "), ("@", " at "), ("=", " equals "),
            ("#", " number "), ("%", " percent"))
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "\u00a3": ("pound", "pounds", "penny",
             "pence"), "\u20ac": ("euro", "euros", "cent", "cents")}
_MONEY = re.compile(r"([$\u00a3\u20ac])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d\d))?(?!\d)"
                    r"(?:\s+(million|billion|thousand))?")
_TIME = re.compile(r"\b(\d{1,2}):(\d\d)\b(?:\s*([ap])\.?m\b\.?)?", re.I)
_DECADE = re.compile(r"\b(1[1-9]\d0|20[0-9]0)'?s\b")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.I)
_YEAR = re.compile(r"(?<![\d.,])\b(1[1-9]\d\d|20\d\d)\b(?![\d.,]\d|\s*%)")
_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)\b(?!\.\d)")
_INTEGER = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d+)\b(?![.,]\d)")
_ALLOWED = re.compile(r"[A-Za-z .,?!'-]*")
_KEY = re.compile(r"[^a-z ]+")


def _words(n: int | float, **kwargs) -> str:
    from num2words import num2words

    return num2words(n, **kwargs)


def _money(match: re.Match) -> str:
    one, many, cent, cents = _CURRENCY[match.group(1)]
    amount = int(match.group(2).replace(",", ""))
    if match.group(4):  # "$5 million" -> "five million dollars"
        return f"{_words(amount)} {match.group(4)} {many}"
    text = f"{_words(amount)} {one if amount == 1 else many}"
    if match.group(3) and int(match.group(3)):
        fraction = int(match.group(3))
        text += f" and {_words(fraction)} {cent if fraction == 1 else cents}"
    return text


def _time(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 24 or minutes > 59:
        return match.group(0)
    text = _words(hours) + ("" if minutes == 0 else
                            " oh " + _words(minutes) if minutes < 10 else " " + _words(minutes))
    if minutes == 0 and not match.group(3):
        text += " o'clock"
    if match.group(3):
        text += " A M" if match.group(3).lower() == "a" else " P M"
    return text


def _decade(match: re.Match) -> str:
    import inflect

    words = _words(int(match.group(1)), to="year").split()
    words[-1] = inflect.engine().plural_noun(words[-1])  # "sixty" -> "sixties"
    return " ".join(words)


def normalize_spoken(text: str) -> str:
    """``text`` as a TTS engine reads it: every number, symbol and abbreviation in words.

    Quotes, dashes and whitespace are normalised; double quotes, colons and semicolons become
    pauses or go; ``. , ? ! ' -`` are kept for prosody. Raises :class:`UnspeakableText` (with a
    ``reason``: ``url``, ``brackets``, ``underscore``, ``non_ascii``, ``digits``,
    ``abbreviation``, ``symbols``, ``all_caps`` (also a shouted word of four or more capitals),
    ``empty``) for text that would not be read as
    words.

    >>> normalize_spoken("It costs $5.50, i.e. 10% more than in the 1990s.")
    'It costs five dollars and fifty cents, that is, ten percent more than in the nineteen nineties.'
    >>> normalize_spoken("Mr. Jones came 2nd \u2014 after 3.5 hours & 1,200 km.")
    'Mister Jones came second, after three point five hours and one thousand, two hundred km.'
    >>> normalize_spoken("See http://example.com")
    Traceback (most recent call last):
      ...
    pipeline.data.sentences.UnspeakableText: url: 'See http://example.com'
    """
    original = text
    text = unicodedata.normalize("NFKC", text)
    for curly, straight in _QUOTES.items():
        text = text.replace(curly, straight)
    text = _HYPHENS.sub("-", text)
    text = " ".join(text.split())
    if _URL.search(text):
        raise UnspeakableText("url", original)
    if _BRACKETS.search(text):
        raise UnspeakableText("brackets", original)
    if "_" in text:
        raise UnspeakableText("underscore", original)
    text = _ELLIPSIS.sub(", ", text)
    text = _DASHES.sub(", ", text)
    text = text.replace('"', "").replace(";", ",").replace(":", ",") if not _TIME.search(text) \
        else _TIME.sub(_time, text).replace('"', "").replace(";", ",").replace(":", ",")
    for pattern, replacement in _ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    text = _MONEY.sub(_money, text)
    text = re.sub(r"(\d)\s?%", r"\1 percent", text)
    text = _DECADE.sub(_decade, text)
    text = _ORDINAL.sub(lambda m: _words(int(m.group(1)), to="ordinal"), text)
    text = _YEAR.sub(lambda m: _words(int(m.group(1)), to="year"), text)
    text = _DECIMAL.sub(lambda m: _words(int(m.group(1))) + " point "
                        + " ".join(_words(int(d)) for d in m.group(2)), text)
    text = _INTEGER.sub(lambda m: _words(int(m.group(1).replace(",", ""))), text)
    for symbol, word in _SYMBOLS:
        text = text.replace(symbol, word)
    text = re.sub(r"\s+([.,?!])", r"\1", " ".join(text.split()))
    text = re.sub(r",(?=[^\s])", ", ", text)
    text = re.sub(r"([.,?!])(?:\s*,)+", r"\1", text)      # ", ," or ". ," left by dashes
    text = re.sub(r"([.?!])[.?!]+", r"\1", text)          # "!!" -> "!"
    text = re.sub(r"^[,.\s'-]+", "", text).strip()
    if not text:
        raise UnspeakableText("empty", original)
    if re.search(r"\d", text):
        raise UnspeakableText("digits", original)
    if not text.isascii():
        raise UnspeakableText("non_ascii", original)
    if re.search(r"\b[A-Za-z]\.[A-Za-z]\.", text):
        raise UnspeakableText("abbreviation", original)
    if not _ALLOWED.fullmatch(text):
        raise UnspeakableText("symbols", original)
    letters = [c for c in text if c.isalpha()]
    if (len(letters) > 3 and all(c.isupper() for c in letters)) or re.search(r"\b[A-Z]{4,}\b", text):
        raise UnspeakableText("all_caps", original)
    return text


def dedup_key(text: str) -> str:
    """Case- and punctuation-insensitive key: ``dedup_key("It's late!") == "its late"``."""
    return " ".join(_KEY.sub("", text.lower().replace("-", " ")).split())


def _finish(text: str) -> str:
    """Sentence case and a closing full stop (WordNet examples have neither)."""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text.rstrip(",'- ") + "."


# ---------------------------------------------------------------------------------------------
# Sources: (source_id, raw text) candidates


def _missing(source: str, path: Path) -> SentenceSourceMissing:
    package = DEBIAN_PACKAGES[source]
    return SentenceSourceMissing(f"{source} sentences need the Debian package {package} "
                                 f"(apt-get install {package}): {path} not found")


def wordnet_candidates(wordnet_dir: Path = WORDNET_DIR) -> Iterator[tuple[str, str]]:
    """The quoted examples of every WordNet gloss, in file order."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = Path(wordnet_dir) / f"data.{pos}"
        if not path.is_file():
            raise _missing("wordnet", path)
        with path.open(encoding="latin-1") as handle:
            for line in handle:
                if line.startswith(" ") or " | " not in line:
                    continue
                offset, gloss = line.split(" ", 1)[0], line.split(" | ", 1)[1]
                for i, example in enumerate(re.findall(r'"([^"]+)"', gloss)):
                    yield f"wordnet:{pos}:{offset}:{i}", example


_ATTRIBUTION = re.compile(r"^\s*(?:--|\u2014|-\s)|^\s{4,}\S.*$")
_FORTUNE_JUNK = re.compile(r"^\s*(?:[*+>|#]|\d+[.)]|[A-Z][A-Za-z]*:\s|Q:|A:)|[{};=\\/<>$^~|]"
                           r"|\t|\s{3,}\S")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def fortune_files(fortunes_dir: Path = FORTUNES_DIR) -> list[Path]:
    """Plain fortune files (no ``.dat`` indexes, ``.u8`` links, ``off/`` or non-prose files)."""
    fortunes_dir = Path(fortunes_dir)
    if not fortunes_dir.is_dir():
        raise _missing("fortunes", fortunes_dir)
    files = [p for p in sorted(fortunes_dir.iterdir())
             if p.is_file() and not p.is_symlink() and not p.suffix and p.name not in FORTUNE_SKIP]
    if not files:
        raise _missing("fortunes", fortunes_dir / "fortunes")
    return files


def fortune_candidates(fortunes_dir: Path = FORTUNES_DIR) -> Iterator[tuple[str, str | None]]:
    """Sentences of fortune entries, in file order; an entry that looks like a list, code,
    dialogue or a poem yields ``(id, None)`` once so it is counted as rejected (``layout``)."""
    for path in fortune_files(fortunes_dir):
        entries = path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
        for e, entry in enumerate(entries):
            lines = [ln for ln in entry.strip("%\n").split("\n")]
            while lines and (not lines[-1].strip() or _ATTRIBUTION.match(lines[-1])):
                lines.pop()  # "-- Mark Twain", indented sources
            if not lines:
                continue
            body = [ln for ln in lines if ln.strip()]
            if (any(_FORTUNE_JUNK.search(ln) for ln in body) or len(body) != len(lines)
                    or (len(body) > 2 and sum(len(ln) < 40 for ln in body) > len(body) // 2)):
                yield f"fortunes:{path.name}:{e}", None  # lists, code, dialogue, verse
                continue
            text = " ".join(" ".join(body).split())
            text = re.sub(r"\s+(?:--|\u2014)\s*[A-Z][^.!?]*$", "", text)  # inline "-- Popeye"
            for s, sentence in enumerate(_SENTENCE_SPLIT.split(text)):
                yield f"fortunes:{path.name}:{e}:{s}", sentence


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass
class SourceCounts:
    """What one source gave: candidates seen, sentences kept, and why the others were dropped."""

    candidates: int = 0
    kept: int = 0
    duplicates: int = 0
    too_short: int = 0
    too_long: int = 0
    rejects: Counter | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"candidates": self.candidates, "kept": self.kept, "duplicates": self.duplicates,
                "too_short": self.too_short, "too_long": self.too_long,
                "rejects": dict(sorted((self.rejects or Counter()).items())),
                "seconds": round(self.seconds, 2)}


def _candidates(source: str, wordnet_dir: Path, fortunes_dir: Path):
    if source == "wordnet":
        return wordnet_candidates(wordnet_dir)
    if source == "fortunes":
        return fortune_candidates(fortunes_dir)
    raise ValueError(f"unknown sentence source {source!r}; known: {SOURCES}")


@functools.lru_cache(maxsize=8)
def _load(sources: tuple[str, ...], min_words: int, max_words: int, wordnet_dir: Path,
          fortunes_dir: Path) -> tuple[tuple[Sentence, ...], dict[str, SourceCounts]]:
    seen: set[str] = set()
    kept: list[Sentence] = []
    counts: dict[str, SourceCounts] = {}
    for source in sources:
        c = counts[source] = SourceCounts(rejects=Counter())
        started = time.perf_counter()
        for source_id, raw in _candidates(source, wordnet_dir, fortunes_dir):
            c.candidates += 1
            if raw is None:
                c.rejects["layout"] += 1
                continue
            try:
                text = _finish(normalize_spoken(raw))
            except UnspeakableText as exc:
                c.rejects[exc.reason] += 1
                continue
            n = len(text.split())
            if n < min_words:
                c.too_short += 1
                continue
            if n > max_words:
                c.too_long += 1
                continue
            key = dedup_key(text)
            if key in seen:
                c.duplicates += 1
                continue
            seen.add(key)
            kept.append(Sentence(text, source, source_id))
            c.kept += 1
        c.seconds = time.perf_counter() - started
    return tuple(kept), counts


def load_sentences(sources: Sequence[str] = SOURCES, min_words: int = 4, max_words: int = 25, *,
                   wordnet_dir: Path = WORDNET_DIR, fortunes_dir: Path = FORTUNES_DIR
                   ) -> list[Sentence]:
    """Distinct normalised sentences of ``min_words``-``max_words`` words (counted after
    :func:`normalize_spoken`), sources in the order given, each in file order. A sentence whose
    :func:`dedup_key` was seen before (in any source) is dropped. Raises
    :class:`SentenceSourceMissing` naming the Debian package when a source is not installed.
    Results are cached per argument set (a full load takes a few seconds)."""
    sentences, _ = _load(tuple(sources), min_words, max_words, Path(wordnet_dir),
                         Path(fortunes_dir))
    return list(sentences)


def sentence_counts(sources: Sequence[str] = SOURCES, min_words: int = 4, max_words: int = 25, *,
                    wordnet_dir: Path = WORDNET_DIR, fortunes_dir: Path = FORTUNES_DIR,
                    sentences: Iterable[Sentence] | None = None) -> dict:
    """Counts for a corpus summary: per source and in total, sentences, word types (lower-cased
    words) and, per source, candidates, duplicates, length drops, rejects per reason and load
    seconds. With ``sentences`` (e.g. a training split), sentences and word types are counted
    over those instead of over everything loaded."""
    loaded, counts = _load(tuple(sources), min_words, max_words, Path(wordnet_dir),
                           Path(fortunes_dir))
    chosen = list(loaded if sentences is None else sentences)
    out: dict = {"sources": {}, "total": {}}
    all_types: set[str] = set()
    for source in sources:
        types = {w for s in chosen if s.source == source for w in word_types(s.text)}
        all_types |= types
        out["sources"][source] = {**counts[source].to_dict(),
                                  "sentences": sum(s.source == source for s in chosen),
                                  "word_types": len(types)}
    out["total"] = {"sentences": len(chosen), "word_types": len(all_types),
                    "seconds": round(sum(c.seconds for c in counts.values()), 2)}
    return out


def word_types(text: str) -> set[str]:
    """Lower-cased words of a sentence: ``word_types("It's a dog, a dog!") == {"it's", "a", "dog"}``."""
    return {w.strip("'-") for w in re.findall(r"[a-z'-]+", text.lower()) if w.strip("'-")}


if __name__ == "__main__":  # python -m pipeline.data.sentences: print the counts
    import json

    print(json.dumps(sentence_counts(), indent=2))
