"""Tiny random models (offline, deterministic) for fast tests: a Whisper and a Llama with byte-level
tokenizers, built from fixed configs and seed. :data:`RANDOM_MODELS` names them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch




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

RANDOM_WHISPER_CONFIG = dict(  # the encoder's MLP 4 x d_model wide as in every Whisper size (student.teacher_blocks)
    d_model=64, encoder_layers=4, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
    encoder_ffn_dim=256, decoder_ffn_dim=128, num_mel_bins=80, max_source_positions=1500,
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
class RandomModel:
    kind: str
    build: Callable[[Path], None]
    recipe: dict  # everything that determines the weights; part of the cache key


RANDOM_MODELS: dict[str, RandomModel] = {
    "whisper-tiny": RandomModel("whisper", _build_random_whisper,
                            dict(config=RANDOM_WHISPER_CONFIG, seed=RANDOM_SEED,
                                 special=_WHISPER_SPECIAL_TOKENS)),
    "llama-tiny": RandomModel("llm", _build_random_llama,
                          dict(config=RANDOM_LLAMA_CONFIG, seed=RANDOM_SEED, vocab=RANDOM_LLAMA_VOCAB_SIZE,
                               corpus=_BPE_CORPUS, template=_CHATML_TEMPLATE)),
}
