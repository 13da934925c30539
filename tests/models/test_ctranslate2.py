"""CTranslate2 reader and Whisper converter, round-tripped through a tiny random Whisper.

A small writer (the layout of CTranslate2's ``ModelSpec.save``) turns the random HF Whisper into
a CT2 ``model.bin`` with fused q|k|v and k|v projections; converting it back must give the same
weights, whether the file is whole or split into parts.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
import torch

from pipeline.models.ctranslate2 import CT2_DTYPES, convert_ct2_whisper, ct2_model_files, read_ct2_model
from pipeline.models.sources import resolve_model_dir

DTYPE_IDS = {dtype: i for i, dtype in CT2_DTYPES.items()}


def write_ct2(path: Path, variables: dict[str, torch.Tensor], aliases: dict[str, str],
              spec_name: str = "WhisperSpec") -> None:
    def string(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6) + string(spec_name) + struct.pack("<II", 3, len(variables)))
        for name, tensor in variables.items():
            data = tensor.contiguous().view(torch.uint8).numpy().tobytes() if tensor.dim() else \
                tensor.reshape(1).view(torch.uint8).numpy().tobytes()
            f.write(string(name) + struct.pack("<B", tensor.dim()))
            f.write(struct.pack(f"<{tensor.dim()}I", *tensor.shape))
            f.write(struct.pack("<BI", DTYPE_IDS[tensor.dtype], len(data)) + data)
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            f.write(string(alias) + string(target))


def hf_whisper_to_ct2(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """The inverse of the converter, as CTranslate2's Whisper loader writes it (float16)."""
    out: dict[str, torch.Tensor] = {}

    def linear(dst, src, bias=True):
        out[f"{dst}/weight"] = state[f"{src}.weight"]
        if bias:
            out[f"{dst}/bias"] = state[f"{src}.bias"]

    def norm(dst, src):
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = state[f"{src}.weight"], state[f"{src}.bias"]

    def fused(dst, src, names):
        out[f"{dst}/weight"] = torch.cat([state[f"{src}.{n}_proj.weight"] for n in names])
        out[f"{dst}/bias"] = torch.cat([state.get(f"{src}.{n}_proj.bias", torch.zeros(config.d_model))
                                        for n in names])

    def layer(dst, src, cross):
        norm(f"{dst}/self_attention/layer_norm", f"{src}.self_attn_layer_norm")
        fused(f"{dst}/self_attention/linear_0", f"{src}.self_attn", "qkv")
        linear(f"{dst}/self_attention/linear_1", f"{src}.self_attn.out_proj")
        if cross:
            norm(f"{dst}/attention/layer_norm", f"{src}.encoder_attn_layer_norm")
            linear(f"{dst}/attention/linear_0", f"{src}.encoder_attn.q_proj")
            fused(f"{dst}/attention/linear_1", f"{src}.encoder_attn", "kv")
            linear(f"{dst}/attention/linear_2", f"{src}.encoder_attn.out_proj")
        norm(f"{dst}/ffn/layer_norm", f"{src}.final_layer_norm")
        linear(f"{dst}/ffn/linear_0", f"{src}.fc1")
        linear(f"{dst}/ffn/linear_1", f"{src}.fc2")

    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    out["encoder/position_encodings/encodings"] = state["model.encoder.embed_positions.weight"]
    for i in range(config.encoder_layers):
        layer(f"encoder/layer_{i}", f"model.encoder.layers.{i}", cross=False)
    norm("encoder/layer_norm", "model.encoder.layer_norm")
    out["encoder/num_heads"] = torch.tensor(config.encoder_attention_heads, dtype=torch.int16)
    out["decoder/embeddings/weight"] = state["model.decoder.embed_tokens.weight"]
    out["decoder/position_encodings/encodings"] = state["model.decoder.embed_positions.weight"]
    for i in range(config.decoder_layers):
        layer(f"decoder/layer_{i}", f"model.decoder.layers.{i}", cross=True)
    norm("decoder/layer_norm", "model.decoder.layer_norm")
    out["decoder/num_heads"] = torch.tensor(config.decoder_attention_heads, dtype=torch.int16)
    return {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in sorted(out.items())}


@pytest.fixture(scope="module")
def random_whisper(model_cache_dir):
    from transformers import WhisperForConditionalGeneration

    model_dir = resolve_model_dir("random:whisper-tiny", model_cache_dir)
    return model_dir, WhisperForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)


@pytest.fixture(scope="module")
def ct2_dir(random_whisper, tmp_path_factory) -> Path:
    model_dir, model = random_whisper
    out = tmp_path_factory.mktemp("ct2-whisper")
    write_ct2(out / "model.bin", hf_whisper_to_ct2(model.state_dict(), model.config),
              {"decoder/projection/weight": "decoder/embeddings/weight"})
    shutil.copy(model_dir / "tokenizer.json", out / "tokenizer.json")
    return out


def test_reader_parses_variables_scalars_and_aliases(ct2_dir):
    ct2 = read_ct2_model(ct2_dir / "model.bin")
    assert (ct2.spec_name, ct2.binary_version, ct2.revision) == ("WhisperSpec", 6, 3)
    assert ct2.scalar("encoder/num_heads") == 4
    assert ct2["encoder/conv1/weight"].shape == (64, 80, 3) and ct2["encoder/conv1/weight"].dtype == torch.float16
    assert ct2["decoder/projection/weight"] is ct2["decoder/embeddings/weight"]


def test_split_parts_read_as_one_file(ct2_dir, tmp_path):
    data = (ct2_dir / "model.bin").read_bytes()
    cut = len(data) // 3  # anywhere, even inside a tensor
    (tmp_path / "model.bin.part1").write_bytes(data[:cut])
    (tmp_path / "model.bin.part2").write_bytes(data[cut:2 * cut])
    (tmp_path / "model.bin.part10").write_bytes(data[2 * cut:])  # numeric, not lexical, order
    files = ct2_model_files(tmp_path)
    assert [f.name for f in files] == ["model.bin.part1", "model.bin.part2", "model.bin.part10"]
    whole, parts = read_ct2_model(ct2_dir / "model.bin"), read_ct2_model(files)
    assert whole.variables.keys() == parts.variables.keys()
    assert all(torch.equal(whole.variables[k], parts.variables[k]) for k in whole.variables)


def test_truncated_file_fails_clearly(ct2_dir, tmp_path):
    (tmp_path / "model.bin").write_bytes((ct2_dir / "model.bin").read_bytes()[:5000])
    with pytest.raises(EOFError, match="ended early"):
        read_ct2_model(tmp_path / "model.bin")


def test_whisper_round_trip_restores_every_weight(random_whisper, ct2_dir):
    _, model = random_whisper
    converted = convert_ct2_whisper(ct2_dir)
    rebuilt = converted.build_model(torch.float32)
    original = model.state_dict()
    restored = rebuilt.state_dict()
    assert restored.keys() == original.keys()
    for name, tensor in original.items():  # the CT2 copy is float16
        torch.testing.assert_close(restored[name], tensor.half().float(), msg=name)
    assert "model.encoder.layers.0.self_attn.k_proj.bias" not in restored
    assert rebuilt.proj_out.weight.data_ptr() == rebuilt.model.decoder.embed_tokens.weight.data_ptr()
    config, generation = converted.config, converted.generation_config
    assert (config.encoder_layers, config.decoder_layers, config.encoder_attention_heads) == (4, 2, 4)
    assert generation.decoder_start_token_id == model.config.decoder_start_token_id
    assert generation.is_multilingual is False and generation.return_timestamps is False


def test_int8_weights_are_dequantized(ct2_dir, tmp_path):
    ct2 = read_ct2_model(ct2_dir / "model.bin")
    variables = dict(ct2.variables)
    weight = variables["encoder/layer_0/ffn/linear_0/weight"].float()
    scale = 127.0 / weight.abs().amax(dim=1)
    variables["encoder/layer_0/ffn/linear_0/weight"] = torch.round(weight * scale[:, None]).to(torch.int8)
    variables["encoder/layer_0/ffn/linear_0/weight_scale"] = scale
    write_ct2(tmp_path / "model.bin", variables, ct2.aliases)
    shutil.copy(ct2_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    restored = convert_ct2_whisper(tmp_path).state_dict["model.encoder.layers.0.fc1.weight"]
    torch.testing.assert_close(restored.float(), weight, atol=weight.abs().max().item() / 100, rtol=0)
