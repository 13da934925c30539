"""Model specs -> local HF directories: random tiny models, the atomic cache, fingerprints, errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.models import cache
from pipeline.models.cache import COMPLETE_MARKER, FINGERPRINT_FILE, weights_fingerprint
from pipeline.models.random_tiny import RANDOM_MODELS
from pipeline.models.sources import (
    ModelNotFoundError,
    ModelSpecError,
    default_cache_dir,
    load_llm,
    load_whisper,
    resolve_model_dir,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def file_stats(directory: Path) -> dict[str, int]:
    return {f.name: f.stat().st_mtime_ns for f in directory.iterdir()}


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------- random models


def test_random_whisper_is_a_complete_hf_dir(model_cache_dir):
    model_dir = resolve_model_dir("random:whisper-tiny", model_cache_dir)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "preprocessor_config.json", "generation_config.json"):
        assert (model_dir / name).is_file(), name
    assert sum(f.stat().st_size for f in model_dir.iterdir()) < 5e6

    model, feature_extractor, tokenizer = load_whisper("random:whisper-tiny", model_cache_dir)
    config = model.config
    assert (config.d_model, config.encoder_layers, config.num_mel_bins) == (64, 4, 80)
    special = [config.decoder_start_token_id, config.eos_token_id, config.pad_token_id,
               model.generation_config.no_timestamps_token_id]
    assert max(special) < config.vocab_size
    assert max(tokenizer.all_special_ids) < config.vocab_size

    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    features = feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    assert features.shape == (1, 80, 3000)
    with torch.no_grad():
        hidden = model.model.encoder(features, output_hidden_states=True).hidden_states
    assert len(hidden) == 5 and hidden[-1].shape == (1, 1500, 64)
    tokens = model.generate(features, max_new_tokens=4)
    assert isinstance(tokenizer.batch_decode(tokens, skip_special_tokens=True)[0], str)


def test_random_llama_has_tokenizer_and_chat_template(model_cache_dir):
    model, tokenizer = load_llm("random:llama-tiny", model_cache_dir)
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.num_key_value_heads) == (64, 4, 4, 2)
    assert len(tokenizer) == config.vocab_size
    text = "Transcribe the audio: the quick brown fox."
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    batch = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)
    prompt = tokenizer.decode(batch["input_ids"][0])
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == config.eos_token_id
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], config.vocab_size)


def test_random_models_are_deterministic(tmp_path):
    first = resolve_model_dir("random:llama-tiny", tmp_path / "a")
    second = resolve_model_dir("random:llama-tiny", tmp_path / "b")
    assert first.name == second.name
    assert weights_fingerprint(first) == weights_fingerprint(second)


# ---------------------------------------------------------------------------------- cache


def test_second_resolve_reuses_the_cache_without_rewriting(tmp_path, monkeypatch):
    model_dir = resolve_model_dir("random:llama-tiny", tmp_path)
    before = file_stats(model_dir)

    def must_not_build(out_dir):
        raise AssertionError("a cached model was rebuilt")

    monkeypatch.setitem(RANDOM_MODELS, "llama-tiny",
                        dataclasses.replace(RANDOM_MODELS["llama-tiny"], build=must_not_build))
    again = resolve_model_dir("random:llama-tiny", tmp_path)
    assert again == model_dir
    assert file_stats(again) == before
    assert json.loads((model_dir / COMPLETE_MARKER).read_text())["spec"] == "random:llama-tiny"


def test_failed_build_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def crashing_build(out_dir):
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("conversion crashed")

    monkeypatch.setitem(RANDOM_MODELS, "llama-tiny",
                        dataclasses.replace(RANDOM_MODELS["llama-tiny"], build=crashing_build))
    with pytest.raises(RuntimeError, match="conversion crashed"):
        resolve_model_dir("random:llama-tiny", tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_leftover_temp_dirs_are_ignored(tmp_path):
    entry_name = resolve_model_dir("random:llama-tiny", tmp_path / "probe").name
    cache = tmp_path / "cache"
    cache.mkdir()
    # Temp dirs of killed conversions, filled so that they would look complete if they were used.
    dead_here = cache / f".tmp-{entry_name}-{socket.gethostname()}-{dead_pid()}-0bad"
    other_host = cache / f".tmp-{entry_name}-some-other-host-123-0bad"
    for leftover in (dead_here, other_host):
        leftover.mkdir()
        (leftover / "config.json").write_text("{}")
        (leftover / COMPLETE_MARKER).write_text("{}")

    model_dir = resolve_model_dir("random:llama-tiny", cache)
    assert model_dir == cache / entry_name
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "llama"
    assert not dead_here.exists()  # this host, dead pid: garbage, removed
    assert other_host.exists()  # maybe alive elsewhere (shared cache): left alone


def test_incomplete_entry_is_rebuilt(tmp_path):
    entry_name = resolve_model_dir("random:llama-tiny", tmp_path / "probe").name
    partial = tmp_path / "cache" / entry_name
    partial.mkdir(parents=True)
    (partial / "config.json").write_text("{}")  # no completion marker
    model_dir = resolve_model_dir("random:llama-tiny", tmp_path / "cache")
    assert model_dir == partial and (model_dir / COMPLETE_MARKER).is_file()
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "llama"


SLOW_BUILD_SCRIPT = """
import dataclasses, sys, time
from pathlib import Path
from pipeline.models import random_tiny, sources

def slow_build(out_dir):
    (out_dir / "config.json").write_text("{}")
    (out_dir / "model.safetensors").write_bytes(b"partial")
    Path(sys.argv[2]).write_text("started")
    time.sleep(120)

random_tiny.RANDOM_MODELS["llama-tiny"] = dataclasses.replace(random_tiny.RANDOM_MODELS["llama-tiny"], build=slow_build)
sources.resolve_model_dir("random:llama-tiny", sys.argv[1])
"""


@pytest.mark.faults("models", "model conversion SIGKILLed: redone on next use")
def test_sigkilled_conversion_is_redone(tmp_path):
    cache, started = tmp_path / "cache", tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_BUILD_SCRIPT, str(cache), str(started)], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None, "build subprocess exited early"
            assert time.monotonic() < deadline, "build subprocess did not start"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert entries == []  # only the hidden temp dir (and lock file) remain
    model_dir = resolve_model_dir("random:llama-tiny", cache)
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "llama"
    assert not list(cache.glob(".tmp-*"))  # the killed process's temp dir was cleaned up


def test_cache_dir_defaults_to_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AURA_CACHE_DIR", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    assert resolve_model_dir("random:llama-tiny").parent == tmp_path / "env-cache"
    monkeypatch.delenv("AURA_CACHE_DIR")
    assert default_cache_dir() == Path("~/.cache/aura").expanduser()


# ---------------------------------------------------------------------------------- fingerprint


def test_weights_fingerprint_is_cached_and_tracks_changes(model_cache_dir, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(resolve_model_dir("random:llama-tiny", model_cache_dir), copy)
    (copy / FINGERPRINT_FILE).unlink()
    digest = weights_fingerprint(copy)
    assert len(digest) == 64 and (copy / FINGERPRINT_FILE).is_file()

    with monkeypatch.context() as patch:
        patch.setattr(cache, "file_sha256", lambda *a, **k: pytest.fail("fingerprint was recomputed"))
        assert weights_fingerprint(copy) == digest

    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    assert weights_fingerprint(copy) != digest


# ---------------------------------------------------------------------------------- specs and errors


def test_local_directory_is_returned_as_is(model_cache_dir, tmp_path):
    model_dir = resolve_model_dir("random:llama-tiny", model_cache_dir)
    assert resolve_model_dir(str(model_dir), tmp_path) == model_dir
    model, tokenizer = load_llm(str(model_dir))
    assert model.config.hidden_size == 64


@pytest.mark.parametrize(
    "spec, message",
    [
        ("bundled:whisper-huge", "bundled:whisper-tiny.en"),
        ("random:gpt-tiny", "random:llama-tiny"),
        ("", "Empty model spec"),
        ("not a spec!", "Cannot understand model spec 'not a spec!'"),
        ("/definitely/not/here", "does not exist"),
    ],
)
def test_bad_specs_fail_clearly(spec, message, tmp_path):
    with pytest.raises((ModelSpecError, ModelNotFoundError), match=message):
        resolve_model_dir(spec, tmp_path)


def test_directory_without_config_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSpecError, match="config.json"):
        resolve_model_dir(str(tmp_path / "empty"), tmp_path)


def test_hub_id_offline_fails_clearly(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(ModelNotFoundError) as error:
        resolve_model_dir("openai/whisper-large-v3", tmp_path, allow_download=False)
    message = str(error.value)
    assert "'openai/whisper-large-v3'" in message
    assert "hf download openai/whisper-large-v3" in message and "local directory" in message


def test_hub_id_resolves_from_the_local_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    hub_cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_cache / "models--someone--tiny-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert resolve_model_dir("someone/tiny-model", tmp_path, allow_download=False) == snapshot
