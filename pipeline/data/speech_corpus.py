"""Training speech at scale: real sentences and spoken questions, several engines and voices, augmented.

The corpus the student learns to listen from (the eSpeak template corpus in :mod:`pipeline.data.corpus`
stays for tiny, fast runs). What goes in:

* **text**: real sentences (WordNet examples, fortunes; :mod:`pipeline.data.sentences`, normalised to
  what is spoken) for ``transcribe``, and short-answer questions (:mod:`pipeline.data.qa`, only the
  families the text LLM answers) for ``spoken_qa``;
* **voices**: the engines of :mod:`pipeline.data.engines`. Before anything is rendered, Whisper
  (the teacher's model, by default tiny.en) transcribes a few clean clips of every voice (the *voice
  check*); a voice above ``corpus.poor_voice_wer`` gets its share cut so that such voices make at most
  ``corpus.max_poor_voice_share`` of the training rows, and one above ``corpus.drop_voice_wer`` is
  dropped;
* **variation**: per-utterance speed and pitch (engine-native) and augmentation
  (:mod:`pipeline.data.augment`: gain, noise, room, telephone band).

Three splits, by text and by voice: ``train``; ``dev`` (texts and QA facts never trained on, spoken by
the training voices: for tuning); ``heldout`` (other unseen texts and facts, spoken only by voices never
trained on, ``corpus.heldout_voices``: for the final numbers). A text's split is a hash of the text,
a fact's a hash of its id, so both stay put as the corpus grows.

Growth: the plan for N rows is a prefix of the plan for more rows (the voice check is cached in
``voice_check.json``), rows are rendered in parts of ``corpus.part_size``, an existing FLAC is never
rendered again, and the manifest is rewritten last. So ``aura corpus`` with a larger
``corpus.num_utterances`` renders only the new rows, and ``aura ingest`` + ``aura precompute`` then
touch only the new shards. New voices join the same way: a ``corpus.voice_growth`` entry gives the rows
from its ``from_utterance`` on their own voice shares, the rows before it keep theirs, and the voice
check measures only the voices it has not measured yet.

Outputs in ``out_dir``: ``audio/<part>/<key>.flac``, ``parts/part-NNNNN.jsonl`` (one per finished
part), ``manifest.jsonl`` (all rows, written last), ``rejects.jsonl`` (texts an engine could not
speak: file, key, reason), ``voice_check.json``, ``summary.json``, ``summary.md``, ``summary.png``.

Planning without audio::

    >>> from pipeline.config import CorpusConfig
    >>> from pipeline.data.qa import qa_facts
    >>> cfg = CorpusConfig(builder="multi-engine", num_utterances=100)
    >>> shares = {"pico:en-US": 0.7, "piper:joe": 0.3}
    >>> texts, facts = [f"Sentence number {i} is here." for i in range(400)], qa_facts(["months"])
    >>> plan = plan_speech_corpus(cfg, shares, sentences=texts, qa_facts=facts)
    >>> len(plan), sorted({u.split for u in plan}), sorted({u.task for u in plan})
    (100, ['dev', 'heldout', 'train'], ['spoken_qa', 'transcribe'])
    >>> {u.voice for u in plan if u.split == "heldout"}
    {'pico:en-GB'}
    >>> small = plan_speech_corpus(cfg.model_copy(update={"num_utterances": 30}), shares, sentences=texts, qa_facts=facts)
    >>> plan[:30] == small        # growing the corpus appends rows
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from pipeline.config import CorpusConfig, ModelsConfig
from pipeline.data.augment import Augmentation, AugmentationOdds, apply_augmentation, draw_augmentation
from pipeline.data.corpus import write_flac
from pipeline.data.corpus_plan import evenly_spread
from pipeline.data.engines import SAMPLE_RATE, SynthesisFailed, SynthesisRequest, get_engine, has_pitch
from pipeline.data.manifest import MANIFEST_NAME, PlannedRow
from pipeline.fs import atomic_write_text
from pipeline.workers import worker_pool

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "heldout")
VOICE_CHECK_NAME = "voice_check.json"
MAX_SECONDS = 29.5  # below Whisper's 30 s window, with room for the ingest's resampling


@dataclass(frozen=True)
class PlannedSpeech(PlannedRow):
    """One manifest row of the speech corpus before its audio exists: a :class:`PlannedRow` with the engine,
    its prosody, the augmentation and the render part (``part`` is not written to the manifest)."""

    engine: str
    speed: float  # engine-native rate factor
    pitch: float
    augment: str  # label of the augmentation drawn, e.g. "gain+noise"
    augment_params: str  # JSON: the augmentation's parameters and seed
    part: int


def _bucket(text: str, salt: str) -> float:
    """A stable number in [0, 1) from a text: the same text always lands in the same split."""
    digest = hashlib.sha256(f"{salt}:{text}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _split_of(item: str, cfg: CorpusConfig, kind: str) -> str:
    """``train``, ``dev`` or ``heldout`` for a text (``kind="text"``) or a QA fact id (``kind="fact"``)."""
    heldout, dev = ((cfg.heldout_text_fraction, cfg.dev_text_fraction) if kind == "text"
                    else (cfg.heldout_fact_fraction, cfg.dev_fact_fraction))
    u = _bucket(item.lower(), f"{kind}:{cfg.seed}")
    return "heldout" if u < heldout else "dev" if u < heldout + dev else "train"


def plan_speech_corpus(cfg: CorpusConfig, voice_shares: dict[str, float], *,
                       growth_shares: Sequence[dict[str, float]] = (),
                       sentences: Sequence[str] | None = None, qa_facts: Sequence | None = None) -> list[PlannedSpeech]:
    """Every row's text, task, voice, prosody, augmentation and split, as a function of ``cfg`` alone.

    Args:
        cfg: the corpus section (``num_utterances``, fractions, ranges, voices, seed).
        voice_shares: training voice -> share of train/dev rows (the voice check's result).
        growth_shares: the same for each ``cfg.voice_growth`` entry, in order: rows from its
            ``from_utterance`` on draw from these (earlier rows keep their voices).
        sentences: the transcription texts (default: :func:`pipeline.data.sentences.load_sentences`).
        qa_facts: the QA facts (default: the answerable families of :mod:`pipeline.data.qa`).
    """
    if sentences is None:
        from pipeline.data.sentences import load_sentences

        sentences = [s.text for s in load_sentences(min_words=cfg.min_words, max_words=cfg.max_words)]
    if qa_facts is None:
        from pipeline.data.qa import answerable_families, qa_facts as build_facts

        qa_facts = build_facts(answerable_families(cfg.qa_min_accuracy))
    if len(growth_shares) != len(cfg.voice_growth):
        raise ValueError(f"{len(cfg.voice_growth)} corpus.voice_growth entries but {len(growth_shares)} growth_shares")
    stages = [(0, voice_shares)] + [(g.from_utterance, shares) for g, shares in zip(cfg.voice_growth, growth_shares)]
    for start, shares in stages:
        if not shares and start < cfg.num_utterances:
            raise ValueError(f"no training voice left for the rows from {start} on "
                             "(every voice failed the voice check or is missing)")
    rng = random.Random(f"aura-speech-corpus:{cfg.seed}")
    texts: dict[str, list[str]] = {s: [] for s in SPLITS}
    for text in dict.fromkeys(sentences):
        texts[_split_of(text, cfg, "text")].append(text)
    facts: dict[str, dict[str, list]] = {s: defaultdict(list) for s in SPLITS}
    seen_questions: set[str] = set()
    for fact in qa_facts:
        # Families overlap ("What is the capital of France?" is in two): a question's split and its one
        # use follow from its wording, so no held-out question is ever trained on under another family.
        question = fact.phrasings[0].lower()
        if question not in seen_questions:
            seen_questions.add(question)
            facts[_split_of(question, cfg, "fact")][fact.family].append(fact)
    for split in SPLITS:
        rng.shuffle(texts[split])
        for family in sorted(facts[split]):
            rng.shuffle(facts[split][family])
        if not texts[split]:
            raise ValueError(f"no sentence falls in the {split} split; give more sentences")
    families = {s: sorted(f for f in facts[s] if facts[s][f]) for s in SPLITS}

    voice_draws = [(start, sorted(shares), [shares[v] for v in sorted(shares)]) for start, shares in stages]
    odds = AugmentationOdds(clean=cfg.augment_clean, noise=cfg.augment_noise, reverb=cfg.augment_reverb,
                            telephone=cfg.augment_telephone)
    rows_seen = Counter()
    used = Counter()
    plan = []
    not_heldout = 0
    for index in range(cfg.num_utterances):
        row_rng = random.Random(f"aura-speech-row:{cfg.seed}:{index}")
        if evenly_spread(cfg.heldout_fraction, index):
            split = "heldout"
        else:
            # dev takes its share of all rows from the rows that are not held out
            split = "dev" if evenly_spread(cfg.dev_fraction / (1 - cfg.heldout_fraction), not_heldout) else "train"
            not_heldout += 1
        qa_fraction = cfg.spoken_qa_fraction if split == "train" else cfg.eval_spoken_qa_fraction
        task = "spoken_qa" if families[split] and evenly_spread(qa_fraction, rows_seen[split]) else "transcribe"
        rows_seen[split] += 1
        turn = used[split, task]
        used[split, task] += 1
        if task == "transcribe":
            text = target = texts[split][turn % len(texts[split])]
            question = answer = family = fact_id = None
        else:
            family = families[split][turn % len(families[split])]
            pool = facts[split][family]
            fact = pool[(turn // len(families[split])) % len(pool)]
            text = question = row_rng.choice(fact.phrasings)
            answer = target = fact.answer
            fact_id = fact.fact_id
        if split == "heldout":
            voice = row_rng.choice(sorted(cfg.heldout_voices))
        else:
            _, train_voices, weights = next(d for d in reversed(voice_draws) if d[0] <= index)
            voice = row_rng.choices(train_voices, weights)[0]
        engine, engine_voice = voice.split(":", 1)
        speed = round(row_rng.uniform(*cfg.speed_range), 3)
        pitch = round(row_rng.uniform(*cfg.pitch_range), 3) if has_pitch(engine) else 1.0
        aug = draw_augmentation(row_rng, odds)
        part = index // cfg.part_size
        key = f"sc{cfg.seed}-{index:07d}"
        plan.append(PlannedSpeech(
            key=key, audio=f"audio/{part:05d}/{key}.flac", text=text, task=task, question=question, answer=answer,
            target=target, qa_family=family, qa_fact=fact_id, voice=voice, engine=engine, speed=speed, pitch=pitch,
            augment=aug.label(), augment_params=json.dumps({**aug.to_dict(), "seed": aug.seed}), speaker=voice,
            split=split, part=part))
    return plan


# ---------------------------------------------------------------------------------------------
# Rendering (in worker processes)


def render_part(rows: list[PlannedSpeech], out_dir: str) -> list[tuple[str, int | str]]:
    """Render one part: each row's ``(key, num_samples)``, or ``(key, reason)`` when it failed."""
    out = Path(out_dir)
    results: dict[str, int | str] = {}
    todo: dict[str, list[PlannedSpeech]] = defaultdict(list)
    for row in rows:
        path = out / row.audio
        if path.is_file():  # rendered by an earlier run: never rendered again
            results[row.key] = sf.info(str(path)).frames
        else:
            todo[row.engine].append(row)
    for engine_name, engine_rows in todo.items():
        try:
            engine = get_engine(engine_name)
        except Exception as err:  # noqa: BLE001 - a missing engine fails its rows, not the job
            results.update({row.key: f"engine {engine_name} unavailable: {err}" for row in engine_rows})
            continue
        requests = [SynthesisRequest(r.text, r.voice.split(":", 1)[1], r.speed, r.pitch) for r in engine_rows]
        for row, audio in zip(engine_rows, engine.synthesize_many(requests)):
            if isinstance(audio, SynthesisFailed):
                results[row.key] = str(audio)
                continue
            if len(audio) / SAMPLE_RATE > MAX_SECONDS:
                results[row.key] = f"{len(audio) / SAMPLE_RATE:.1f} s is longer than {MAX_SECONDS} s"
                continue
            if (out / row.audio).is_file():  # another run rendered it meanwhile: an existing FLAC is never replaced
                results[row.key] = sf.info(str(out / row.audio)).frames
                continue
            params = json.loads(row.augment_params)
            audio = apply_augmentation(audio, Augmentation(**params))
            results[row.key] = write_flac(out / row.audio, audio)
    return [(row.key, results[row.key]) for row in rows]


def manifest_line(row: PlannedSpeech, num_samples: int) -> str:
    """The corpus manifest's JSON line for ``row`` rendered with ``num_samples`` samples."""
    data = asdict(row)
    data.pop("part")
    data.update(sample_rate=SAMPLE_RATE, num_samples=num_samples, duration=round(num_samples / SAMPLE_RATE, 4))
    return json.dumps(data, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# The voice check: how well the teacher's Whisper hears each voice


@dataclass(frozen=True)
class VoiceCheck:
    """Whisper's WER per voice on clean clips, and the training shares that follow from it."""

    whisper: str
    utterances_per_voice: int
    wer: dict[str, float | None]
    shares: dict[str, float]
    dropped: dict[str, str]
    growth_shares: list[dict[str, float]] = field(default_factory=list)  # one per corpus.voice_growth entry

    def to_dict(self) -> dict:
        return asdict(self)


def shares_after_check(base_shares: dict[str, float], wer: dict[str, float], cfg: CorpusConfig
                       ) -> tuple[dict[str, float], dict[str, str]]:
    """Training shares once poor voices are capped and hopeless ones dropped (shares sum to 1).

    >>> cfg = CorpusConfig(poor_voice_wer=0.2, max_poor_voice_share=0.2, drop_voice_wer=0.6)
    >>> shares, dropped = shares_after_check({"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 0.1, "b": 0.4, "c": 0.9}, cfg)
    >>> shares, dropped
    ({'a': 0.8, 'b': 0.2}, {'c': 'Whisper WER 90.0 % > 60 %'})
    """
    dropped = {v: f"Whisper WER {100 * wer[v]:.1f} % > {100 * cfg.drop_voice_wer:.0f} %"
               for v in base_shares if wer.get(v, 0.0) > cfg.drop_voice_wer}
    kept = {v: s for v, s in base_shares.items() if v not in dropped}
    good = {v: s for v, s in kept.items() if wer.get(v, 0.0) <= cfg.poor_voice_wer}
    poor = {v: s for v, s in kept.items() if v not in good}
    total = sum(kept.values())
    poor_total = sum(poor.values()) / total if total else 0.0
    if good and poor_total > cfg.max_poor_voice_share:
        scale_poor = cfg.max_poor_voice_share / poor_total
        scale_good = (1 - cfg.max_poor_voice_share) / (1 - poor_total)
        shares = {v: s / total * (scale_poor if v in poor else scale_good) for v, s in kept.items()}
    else:
        shares = {v: s / total for v, s in kept.items()}
    return {v: round(s, 6) for v, s in shares.items()}, dropped


def run_voice_check(cfg: CorpusConfig, models: ModelsConfig, sentences: Sequence[str], out_dir: Path,
                    progress: bool = True) -> VoiceCheck:
    """Measure (or read the cached) Whisper WER per voice and derive the training shares.

    Only the voices that speak a row are measured (those of growth stages ``num_utterances`` reaches, and the
    held-out ones); the cache keeps every measurement made, so growing the corpus measures only new voices.
    """
    from pipeline.eval.metrics import word_error_rate

    path = out_dir / VOICE_CHECK_NAME
    voices = sorted(cfg.voices_in_use() | set(cfg.heldout_voices))
    measured_before: dict[str, float | None] = {}
    if path.is_file():
        cached = VoiceCheck(**json.loads(path.read_text()))
        if cached.whisper == models.teacher:
            measured_before = {v: w for v, w in cached.wer.items() if w is not None}
        if cached.whisper == models.teacher and set(voices) <= set(cached.wer):
            # the measurement is cached; the shares follow the config as it is now
            unavailable = {v: r for v, r in cached.dropped.items() if v not in measured_before}
            return _check_from(cached.whisper, cached.utterances_per_voice, cached.wer, unavailable, cfg)
    rng = random.Random(f"aura-voice-check:{cfg.seed}")
    train_texts = [t for t in sentences if _split_of(t, cfg, "text") == "train"]
    texts = rng.sample(train_texts, min(cfg.voice_check_utterances, len(train_texts)))
    clips, refs, owners, dropped = [], [], [], {}
    # A voice measured before (same Whisper) keeps its number: growing the voice list re-measures
    # only the new voices, so the rows already planned keep their voices.
    to_measure = [v for v in voices if v not in measured_before]
    for voice in tqdm(to_measure, desc="voice check: synthesizing", disable=not progress):
        engine_name, engine_voice = voice.split(":", 1)
        try:
            engine = get_engine(engine_name)
            audio = engine.synthesize_many([SynthesisRequest(t, engine_voice) for t in texts])
        except Exception as err:  # noqa: BLE001 - a missing engine or voice is dropped, with its reason
            dropped[voice] = str(err)
            continue
        for text, clip in zip(texts, audio):
            if not isinstance(clip, SynthesisFailed):
                clips.append(clip)
                refs.append(text)
                owners.append(voice)
    from pipeline.models.teacher import whisper_transcripts  # torch: only when the check runs

    label = f"voice check: Whisper ({models.teacher}) transcribes" if progress else None
    hyps = whisper_transcripts(clips, models.teacher, models.cache_dir, progress=label) if clips else []
    wer: dict[str, float | None] = dict(measured_before)
    for voice in to_measure:
        pairs = [(r, h) for r, h, o in zip(refs, hyps, owners) if o == voice]
        # None: not measured, its engine or voice is missing (the reason is in dropped)
        wer[voice] = round(word_error_rate([r for r, _ in pairs], [h for _, h in pairs]).wer, 4) if pairs else None
    check = _check_from(models.teacher, len(texts), {v: wer.get(v) for v in sorted(set(voices) | set(wer))},
                        dropped, cfg)
    atomic_write_text(path, json.dumps(check.to_dict(), indent=2) + "\n")
    return check


def _check_from(whisper: str, utterances_per_voice: int, wer: dict[str, float | None], unavailable: dict[str, str],
                cfg: CorpusConfig) -> VoiceCheck:
    """The voice check's shares for every stage of ``cfg.voice_plans()``, from the measured WERs."""
    measured = {v: w for v, w in wer.items() if w is not None}
    dropped = dict(unavailable)
    stage_shares = []
    for _, base in cfg.voice_plans():
        shares, capped = shares_after_check({v: s for v, s in base.items() if v in measured}, measured, cfg)
        stage_shares.append(shares)
        dropped.update(capped)
    return VoiceCheck(whisper, utterances_per_voice, wer, stage_shares[0], dropped, stage_shares[1:])


# ---------------------------------------------------------------------------------------------
# Building


def build_speech_corpus(out_dir: Path, cfg: CorpusConfig, models: ModelsConfig, *, progress: bool = True) -> Path:
    """Build (or grow) the corpus in ``out_dir`` and return its ``manifest.jsonl``; see the module docstring."""
    from pipeline.data.corpus_summary import write_summary
    from pipeline.data.sentences import load_sentences

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sentences = [s.text for s in load_sentences(min_words=cfg.min_words, max_words=cfg.max_words)]
    check = run_voice_check(cfg, models, sentences, out_dir, progress)
    for voice, reason in check.dropped.items():
        print(f"voice {voice} left out: {reason}", flush=True)
    plan = plan_speech_corpus(cfg, check.shares, growth_shares=check.growth_shares, sentences=sentences)

    parts_dir = out_dir / "parts"
    parts_dir.mkdir(exist_ok=True)
    by_part: dict[int, list[PlannedSpeech]] = defaultdict(list)
    for row in plan:
        by_part[row.part].append(row)
    done: dict[int, list[str]] = {}
    todo = []
    for part, rows in sorted(by_part.items()):
        path = parts_dir / f"part-{part:05d}.jsonl"
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            finished = {json.loads(line)["key"] for line in lines} | _part_rejects(out_dir, part)
            if finished == {r.key for r in rows}:
                done[part] = lines
                continue
        todo.append(part)
    rendered_rows = sum(len(by_part[p]) for p in todo)
    bar = tqdm(total=rendered_rows, desc="synthesizing corpus", unit="utt", disable=not progress)
    render_started = time.perf_counter()
    rejects: list[dict] = []
    new_audio_samples = 0
    with worker_pool(cfg.workers) as pool:
        futures = {pool.submit(render_part, by_part[p], str(out_dir)): p for p in todo}
        for future in as_completed(futures):
            part = futures[future]
            rows = {r.key: r for r in by_part[part]}
            lines, part_rejects = [], []
            for key, result in future.result():
                if isinstance(result, str):
                    part_rejects.append({"file": rows[key].audio, "key": key, "reason": result,
                                         "text": rows[key].text, "voice": rows[key].voice})
                else:
                    lines.append(manifest_line(rows[key], result))
                    new_audio_samples += result
            atomic_write_text(out_dir / "parts" / f"part-{part:05d}.rejects.jsonl",
                               "".join(json.dumps(r) + "\n" for r in part_rejects))
            atomic_write_text(out_dir / "parts" / f"part-{part:05d}.jsonl", "".join(line + "\n" for line in lines))
            done[part] = lines
            rejects += part_rejects
            bar.update(len(rows))
    bar.close()
    render_wall = time.perf_counter() - render_started

    manifest = out_dir / MANIFEST_NAME
    all_lines = [line for part in sorted(done) for line in done[part]]
    all_rejects = [line for part in sorted(done) for line in _part_reject_lines(out_dir, part)]
    atomic_write_text(out_dir / "rejects.jsonl", "".join(line + "\n" for line in all_rejects))
    atomic_write_text(manifest, "".join(line + "\n" for line in all_lines))  # last: the corpus is complete
    for reject in rejects[:10]:
        print(f"rejected {reject['file']} [key {reject['key']}]: {reject['reason']}", flush=True)
    build = {"rendered_rows": rendered_rows, "rendered_parts": len(todo), "reused_parts": len(by_part) - len(todo),
             "render_wall_seconds": round(render_wall, 2), "wall_seconds": round(time.perf_counter() - started, 2),
             "workers": cfg.workers, "rendered_audio_seconds": round(new_audio_samples / SAMPLE_RATE, 2),
             "rejected_rows": len(rejects)}
    write_summary(out_dir, cfg, check, build, teacher=models.teacher, cache_dir=models.cache_dir, progress=progress)
    return manifest


def _part_reject_lines(out_dir: Path, part: int) -> list[str]:
    path = out_dir / "parts" / f"part-{part:05d}.rejects.jsonl"
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


def _part_rejects(out_dir: Path, part: int) -> set[str]:
    return {json.loads(line)["key"] for line in _part_reject_lines(out_dir, part)}
