"""Speech synthesis with eSpeak NG, 16 kHz mono float32, no network and no system packages.

The engine is ``libespeak-ng`` from the ``espeakng-loader`` wheel (library plus voice data),
driven through ctypes in synchronous mode; its 22.05 kHz 16-bit output is resampled to 16 kHz
with a polyphase filter.

Usage::

    >>> from pipeline.data.tts import SAMPLE_RATE, list_voices, synthesize
    >>> audio = synthesize("What is two plus three?", voice="en-us+f3", rate=150, pitch=60)
    >>> audio.dtype, audio.ndim, SAMPLE_RATE
    (dtype('float32'), 1, 16000)
    >>> 1.0 < len(audio) / SAMPLE_RATE < 3.0
    True
    >>> voices = list_voices()              # accents x standard variants
    >>> "en-us" in voices and "en-gb-x-rp+m3" in voices
    True
    >>> list_voices(variants=())             # doctest: +NORMALIZE_WHITESPACE
    ['en', 'en-029', 'en-gb-scotland', 'en-gb-x-gbclan', 'en-gb-x-gbcwmd', 'en-gb-x-rp',
     'en-us', 'en-us-nyc']

A voice name is ``accent`` or ``accent+variant`` (``"en-us+m3"``); variants change timbre
(formants, breathiness, pitch range). :func:`voice_variants` lists every variant the data ships.

Determinism: eSpeak NG keeps synthesis state in C statics that no API call resets (pitch
flutter phase, automatic gain control), and its breath noise draws on libc ``rand()``, so the
same call made twice in one process gives different samples. :func:`synthesize` therefore
loads a fresh copy of the library for every call (under 1 ms) and reseeds both noise
generators, so the output depends only on the arguments. Calls are serialised with a lock (the
library is not re-entrant); use processes, not threads, for parallelism.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import difflib
import functools
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
"""Rate of the audio :func:`synthesize` returns (Hz)."""

ESPEAK_SAMPLE_RATE = 22_050
"""Native output rate of eSpeak NG's formant synthesizer (Hz)."""

RATE_RANGE = (80, 450)
"""Speaking rates eSpeak NG accepts, in words per minute."""

PITCH_RANGE = (0, 100)
"""Base pitch values eSpeak NG accepts (50 is the voice's default)."""

STANDARD_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5")
"""eSpeak NG's numbered male/female variants: natural-sounding, unlike "whisper" or "robosoft"."""

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() on bad data
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_EE_OK, _EE_NOT_FOUND = 0, 2
_NOISE_SEED = 0

# int callback(short *wav, int numsamples, espeak_EVENT *events): return 0 to continue
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.c_void_p)


class _EspeakVoice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # priority byte + NUL-separated names, double-NUL ended
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class EspeakUnavailableError(RuntimeError):
    """libespeak-ng or its voice data cannot be found or loaded."""


class UnknownVoiceError(ValueError):
    """The voice (or its ``+variant``) is not in the installed eSpeak NG data."""


class SynthesisError(RuntimeError):
    """eSpeak NG failed on an input it accepted."""


# One engine at a time per process: the library keeps global state and is not re-entrant.
_engine_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    # A fork taken while another thread held the lock would otherwise deadlock the child.
    global _engine_lock
    _engine_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


@functools.lru_cache(maxsize=1)
def _wheel_paths() -> tuple[str, str]:
    """(library path, data path) from the espeakng-loader wheel."""
    try:
        import espeakng_loader
    except ImportError as exc:
        raise EspeakUnavailableError(
            "speech synthesis needs the espeakng-loader wheel (libespeak-ng and its voice data): "
            "pip install espeakng-loader"
        ) from exc
    library = espeakng_loader.get_library_path()
    try:
        data = espeakng_loader.get_data_path()
    except RuntimeError as exc:
        raise EspeakUnavailableError(
            f"espeakng-loader is installed but its data is missing: {exc}") from exc
    if not Path(library).is_file():
        raise EspeakUnavailableError(f"espeakng-loader is installed but {library} does not exist")
    return library, data


def _dlclose(handle: int) -> None:
    import _ctypes  # ctypes has no public dlclose

    _ctypes.dlclose(handle)


def _unloads_cleanly(library: str) -> bool:
    """Load and dlclose ``library``; True if the loader then no longer has it mapped."""
    _dlclose(_open_library(library)._handle)
    try:
        # RTLD_NOLOAD only succeeds (and loads nothing) if the library is still resident
        handle = ctypes.CDLL(library, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return True
    _dlclose(handle._handle)
    return False


@functools.lru_cache(maxsize=1)
def _library_path() -> str:
    """The path to load: a private copy of the wheel's library that nothing else in the process opens.

    Unloading is what resets the library's statics, and dlclose only unloads a library nobody else holds
    open. The wheel's own file is shared: a component loaded later (phonemizer, for Kokoro's G2P, keeps it
    open) would silently stop our unloads, after this choice was made. A private copy cannot be shared.
    """
    library, _ = _wheel_paths()
    private_dir = Path(tempfile.mkdtemp(prefix="aura-espeak-"))
    atexit.register(shutil.rmtree, private_dir, True)
    private = str(private_dir / Path(library).name)
    shutil.copy2(library, private)
    try:
        if _unloads_cleanly(private):
            return private
    except EspeakUnavailableError:  # e.g. a temp dir mounted noexec
        if _unloads_cleanly(library):
            logger.warning("cannot load a private copy of libespeak-ng from %s: using the wheel's; "
                           "synthesize() output may vary if something else opens it", private_dir)
            return library
    logger.warning("libespeak-ng stays loaded after dlclose: synthesize() output may vary "
                   "between calls with the same arguments")
    return library


def _open_library(path: str) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(path, mode=os.RTLD_LOCAL)
    except OSError as exc:
        raise EspeakUnavailableError(f"cannot load libespeak-ng from {path}: {exc}") from exc
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_EspeakVoice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
    return lib


@contextlib.contextmanager
def _fresh_engine() -> Iterator[ctypes.CDLL]:
    """Load, initialise, yield, terminate and unload libespeak-ng (under the process lock)."""
    with _engine_lock:
        path = _library_path()
        _, data = _wheel_paths()
        lib = _open_library(path)
        try:
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(),
                                         _INITIALIZE_DONT_EXIT)
            if rate != ESPEAK_SAMPLE_RATE:
                raise EspeakUnavailableError(
                    f"espeak_Initialize failed (returned {rate}) with data at {data}")
            try:
                yield lib
            finally:
                lib.espeak_Terminate()
        finally:
            _dlclose(lib._handle)


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None)
    except OSError:
        return None


def _seed_noise(lib: ctypes.CDLL) -> None:
    """Fix the noise generators (breathy variants such as f2, f3, f5 mix in random noise).

    eSpeak NG draws from its own generator and, depending on the build, from libc rand(), whose
    state is process-wide and advanced by every earlier utterance.
    """
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed(_NOISE_SEED)
    libc = _libc()
    if libc is not None:
        libc.srand(ctypes.c_uint(_NOISE_SEED))


def _languages(voice: _EspeakVoice) -> list[str]:
    """Decode espeak_VOICE.languages: (priority byte, name, NUL) repeated, then a zero byte."""
    names: list[str] = []
    address = voice.languages
    while address and ctypes.c_ubyte.from_address(address).value != 0:
        name = ctypes.string_at(address + 1)  # reads up to the name's NUL
        names.append(name.decode())
        address += len(name) + 2
    return names


def _list_engine_voices(lib: ctypes.CDLL,
                        spec: _EspeakVoice | None) -> list[tuple[str, list[str], str]]:
    """(name, languages, identifier) for each voice espeak_ListVoices returns."""
    array = lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
    voices = []
    index = 0
    while array[index]:
        entry = array[index].contents
        voices.append((entry.name.decode(), _languages(entry), entry.identifier.decode()))
        index += 1
    return voices


@functools.lru_cache(maxsize=1)
def _catalogue() -> tuple[tuple[tuple[str, tuple[str, ...], str], ...], tuple[str, ...]]:
    """(base voices, variant names) in the installed data, read once per process."""
    with _fresh_engine() as lib:
        bases = _list_engine_voices(lib, None)
        variant_spec = _EspeakVoice()
        variant_spec.languages = ctypes.cast(ctypes.c_char_p(b"variant"), ctypes.c_void_p)
        variants = _list_engine_voices(lib, variant_spec)
    base_voices = tuple((name, tuple(langs), ident) for name, langs, ident in bases)
    # identifiers look like "!v/f3"; SetVoiceByName("en+f3") loads voices/!v/f3
    variant_names = tuple(sorted(ident.split("/", 1)[1] for _, _, ident in variants
                                 if " " not in ident))
    return base_voices, variant_names


def _voice_file_name(identifier: str) -> str:
    # espeak_SetVoiceByName matches voice file names (case-insensitively) and display names,
    # not every language code: "en" loads gmw/en, but its language code "en-gb" is not found.
    return identifier.rsplit("/", 1)[-1].lower()


def english_accents() -> list[str]:
    """Base English voices in the installed data, by voice file name (``"en"``, ``"en-us"``, ...).

    ``"en"`` is British English (language code en-gb). The Shavian-alphabet voice is left out:
    it expects Shavian script, not Latin text.
    """
    base_voices, _ = _catalogue()
    accents = {_voice_file_name(ident) for _, langs, ident in base_voices
               if langs and langs[0].startswith("en")}
    accents.discard("en-shaw")
    return sorted(accents)


def voice_variants() -> list[str]:
    """Every variant name the installed data ships (``"m3"``, ``"f2"``, ``"klatt"``, ...)."""
    return list(_catalogue()[1])


def list_voices(variants: Iterable[str] | None = STANDARD_VARIANTS) -> list[str]:
    """English voice names: each accent alone and combined with each variant.

    Args:
        variants: variant names to combine with each accent (default: the numbered m1-m8,
            f1-f5 variants); ``None`` means every variant in the data, ``()`` accents only.

    >>> list_voices(variants=["f3"])[:4]
    ['en', 'en+f3', 'en-029', 'en-029+f3']
    """
    chosen = voice_variants() if variants is None else list(variants)
    known = set(voice_variants())
    missing = [v for v in chosen if v not in known]
    if missing:
        raise UnknownVoiceError(f"unknown eSpeak NG variant(s) {missing}; known: {sorted(known)}")
    voices = []
    for accent in english_accents():
        voices.append(accent)
        voices.extend(f"{accent}+{variant}" for variant in chosen)
    return voices


def _resolve_base_voice(voice: str) -> str:
    """Map a language code that is not a voice file name ("en-gb") to the voice that speaks it."""
    base, plus, variant = voice.partition("+")
    base_voices, _ = _catalogue()
    if base.lower() in {_voice_file_name(ident) for _, _, ident in base_voices}:
        return voice
    for _, langs, ident in base_voices:  # listed in espeak's priority order
        if base.lower() in (lang.lower() for lang in langs):
            return _voice_file_name(ident) + plus + variant
    return voice  # display names ("English (America)") or unknown: espeak decides


def _check_variant(voice: str) -> None:
    # eSpeak NG silently ignores an unknown "+variant", so check it here.
    if "+" not in voice:
        return
    variant = voice.split("+", 1)[1]
    known = voice_variants()
    if variant not in known:
        close = difflib.get_close_matches(variant, known, n=3)
        hint = f"; did you mean {close}?" if close else f"; known variants: {known}"
        raise UnknownVoiceError(f"unknown eSpeak NG variant {variant!r} in voice {voice!r}{hint}")


def _unknown_base_voice(voice: str) -> UnknownVoiceError:
    base = voice.split("+", 1)[0]
    base_voices, _ = _catalogue()
    names = sorted({_voice_file_name(ident) for _, _, ident in base_voices})
    close = difflib.get_close_matches(base, names, n=3)
    hint = f"; did you mean {close}?" if close else "; see english_accents()"
    return UnknownVoiceError(f"unknown eSpeak NG voice {base!r}{hint}")


def synthesize(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50) -> np.ndarray:
    """Speak ``text`` and return float32 mono samples at :data:`SAMPLE_RATE` (16 kHz).

    Args:
        text: plain UTF-8 text (no SSML). Write numbers as words if the transcript must match.
        voice: ``accent`` or ``accent+variant``, e.g. ``"en-us"``, ``"en-gb-x-rp+m3"``; a
            language code such as ``"en-gb"`` selects the voice that speaks it (``"en"``).
        rate: speaking rate in words per minute, within :data:`RATE_RANGE`.
        pitch: base pitch 0-100 (50 is the voice's default).

    Returns:
        1-D float32 array in [-1, 1], including eSpeak NG's short leading/trailing silence.

    Raises:
        UnknownVoiceError: the voice or variant is not installed.
        EspeakUnavailableError: the library or its data cannot be loaded.
        ValueError: empty text or rate/pitch out of range.

    The same arguments always give the same samples, in any process (see module notes).

    >>> a = synthesize("hello", voice="en+m3", rate=140, pitch=40)
    >>> b = synthesize("hello", voice="en+m3", rate=140, pitch=40)
    >>> bool((a == b).all())
    True
    """
    text = text.replace("\0", " ").strip()
    if not text:
        raise ValueError("synthesize() needs non-empty text")
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise ValueError(f"rate {rate} wpm is outside eSpeak NG's range {RATE_RANGE}")
    if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        raise ValueError(f"pitch {pitch} is outside eSpeak NG's range {PITCH_RANGE}")
    _check_variant(voice)
    voice = _resolve_base_voice(voice)

    chunks: list[np.ndarray] = []

    def collect(wav, num_samples, _events):
        if wav and num_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    callback = _SynthCallback(collect)  # kept referenced until synthesis ends
    encoded = text.encode("utf-8") + b"\0"
    with _fresh_engine() as lib:
        lib.espeak_SetSynthCallback(callback)
        voice_status = lib.espeak_SetVoiceByName(voice.encode("utf-8"))
        synth_status = None
        if voice_status == _EE_OK:
            lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            _seed_noise(lib)
            synth_status = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0,
                                            _CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
    # raise outside the engine: building the voice hint takes the engine lock again
    if voice_status == _EE_NOT_FOUND:
        raise _unknown_base_voice(voice)
    if voice_status != _EE_OK:
        raise SynthesisError(f"espeak_SetVoiceByName({voice!r}) failed with status {voice_status}")
    if synth_status != _EE_OK:
        raise SynthesisError(f"espeak_Synth failed with status {synth_status} for {text[:60]!r}")
    if not chunks:
        raise SynthesisError(f"eSpeak NG produced no audio for {text[:60]!r} with voice {voice!r}")
    pcm = np.concatenate(chunks)
    return resample_to_16k(pcm.astype(np.float32) / 32768.0)


def resample_to_16k(samples: np.ndarray) -> np.ndarray:
    """22.05 kHz -> 16 kHz, float32 in [-1, 1] (scipy's polyphase filter, via :func:`pipeline.data.audio.resample`)."""
    from pipeline.data.audio import resample

    # the anti-aliasing filter can overshoot full scale by a hair on clipped peaks
    return np.clip(resample(samples, ESPEAK_SAMPLE_RATE, SAMPLE_RATE), -1.0, 1.0).astype(np.float32)
