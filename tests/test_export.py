"""`aura export`: the merged folder loads with plain transformers and gives the in-memory model's
answers (through `load_merged` and through the README's package-free snippet); the peft adapter
folder round-trips too; folders are never half-written or silently overwritten."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.config import load_config
from pipeline.cli.infer import add_export_arguments, cmd_export
from pipeline.export import PLAIN_USAGE, ExportError, load_adapter, load_merged
from pipeline.infer import EncoderFreeModel
from test_infer import aura_cache, llm_dir, make_run, noise_audio, parse, speech  # noqa: F401  (fixtures)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_config(llm_dir, aura_cache, tmp_path_factory):  # noqa: F811
    return make_run(llm_dir, aura_cache, tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def exported(run_config, tmp_path_factory):
    """One ``aura export --merged A --adapter B`` call, shared by the tests below."""
    root = tmp_path_factory.mktemp("exports")
    args = parse(add_export_arguments, ["--config", str(run_config), "--merged", str(root / "merged"),
                                        "--adapter", str(root / "adapter")])
    assert cmd_export(args) == 0
    return root


@torch.no_grad()
def test_merged_export_round_trip(exported, run_config, speech):  # noqa: F811
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    folder = exported / "merged"
    assert {p.name for p in folder.iterdir()} == {"llm", "patch_embedding.safetensors", "patch_embedding.json",
                                                  "aura.json", "README.md"}
    reference = EncoderFreeModel.from_config(load_config(run_config))

    plain = AutoModelForCausalLM.from_pretrained(folder / "llm")
    assert isinstance(plain, LlamaForCausalLM)
    assert not any("lora" in k for k in plain.state_dict())
    for name, tensor in reference.llm.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[name], tensor, atol=0, rtol=0)

    shipped = load_merged(folder)
    audios = [speech["hello"], noise_audio(0.6, 7)]
    instructions = ["Transcribe the audio.", "What is said?"]
    expected = reference.generate(audios, instructions, max_new_tokens=8)
    got = shipped.generate(audios, instructions, max_new_tokens=8)
    assert [r.token_ids for r in got] == [r.token_ids for r in expected]
    assert [r.text for r in got] == [r.text for r in expected]

    info = json.loads((folder / "aura.json").read_text())
    assert info["format"] == "aura-merged"
    assert info["student"]["layer_map"] == {"2": 1, "4": 2} and info["student"]["lora_layers"] == 2
    assert info["stop_token_ids"] == reference.stop_token_ids and info["attention"]["bidirectional_audio"]
    assert {"torch", "transformers", "peft"} <= set(info["versions"])
    patch = json.loads((folder / "patch_embedding.json").read_text())
    assert (patch["n_mels"], patch["stride"], patch["pooling"], patch["llm_width"]) == (80, 2, 1, 64)


@torch.no_grad()
def test_readme_snippet_runs_without_the_package_and_agrees(exported, speech):  # noqa: F811
    folder = exported / "merged"
    readme = (folder / "README.md").read_text()
    assert PLAIN_USAGE in readme
    scope = {"export_dir": str(folder), "audio": speech["hello"]}
    exec(compile(PLAIN_USAGE, "README.md", "exec"), scope)  # noqa: S102 - our own documented snippet
    expected = load_merged(folder).generate([speech["hello"]], "Transcribe the audio.", max_new_tokens=32)[0]
    assert scope["answer"] == expected.token_ids


@torch.no_grad()
def test_adapter_export_round_trip(exported, run_config):
    folder = exported / "adapter"
    assert (folder / "adapter" / "adapter_config.json").is_file()
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()
    assert (folder / "patch_embedding.safetensors").is_file()
    reference = EncoderFreeModel.from_config(load_config(run_config))
    rebuilt = load_adapter(folder)
    audios = [noise_audio(0.5, 8)]
    assert ([r.token_ids for r in rebuilt.generate(audios, "Transcribe the audio.", max_new_tokens=6)]
            == [r.token_ids for r in reference.generate(audios, "Transcribe the audio.", max_new_tokens=6)])


def test_export_refuses_to_overwrite_and_to_load_the_wrong_folder(exported, run_config, tmp_path, capsys):
    args = parse(add_export_arguments, ["--config", str(run_config), "--merged", str(exported / "merged")])
    assert cmd_export(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert not [p for p in exported.iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(ExportError, match="aura-adapter"):
        load_merged(exported / "adapter")
    with pytest.raises(ExportError, match="not an AuRA export"):
        load_merged(tmp_path)


def test_export_without_trained_student_says_what_to_do(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(f"workdir: {tmp_path}\nmodels:\n  llm: random:llama-tiny\n")
    assert cmd_export(parse(add_export_arguments, ["--config", str(config), "--merged", str(tmp_path / "m")])) == 1
    assert "aura train" in capsys.readouterr().err


@torch.no_grad()
@pytest.mark.parametrize("clip_mean, stem, blocks", [(False, 0, 0), (True, 0, 0), (False, 24, 0), (False, 128, 1)])
def test_patch_embedding_with_a_front_end_travels_and_the_plain_snippet_agrees(tmp_path, clip_mean, stem, blocks):
    from pipeline.export import PLAIN_USAGE, load_patch_embedding, save_patch_embedding
    from pipeline.models.patch_embedding import AudioPatchEmbedding

    torch.manual_seed(0)
    patch = AudioPatchEmbedding(n_mels=80, llm_width=32, stride=8, front_end_channels=16,
                                front_end_clip_mean=clip_mean, teacher_stem_width=stem, teacher_blocks=blocks).eval()
    for p in patch.parameters():  # the front end's and the stem's output layers start at zero: make them count
        p.normal_(0, 0.1)
    if blocks:
        patch.teacher_positions.normal_(0, 0.1)
        patch.set_blocks_statistics(torch.rand(stem) - 0.5, torch.rand(stem) + 0.5)
    save_patch_embedding(patch, tmp_path)
    loaded, config = load_patch_embedding(tmp_path)
    mel = torch.randn(2, 80, 64)
    mel[1, :, 40:] = (mel[1].max() - 2).clamp(min=-1.5)  # a clip that ends in silence
    assert config["front_end_channels"] == 16 and config["front_end_clip_mean"] == clip_mean
    assert config["teacher_stem_width"] == stem and config["teacher_blocks"] == blocks
    assert torch.equal(loaded(mel), patch(mel))
    # the README's plain-torch class (no package) reads the same files to the same tokens
    plain_class = PLAIN_USAGE[PLAIN_USAGE.index("class WhisperLayer"):PLAIN_USAGE.index("\n\n\npatch = ")]
    scope: dict = {"torch": torch}
    exec(compile(plain_class, "README.md", "exec"), scope)  # noqa: S102 - our own documented snippet
    plain = scope["PatchEmbedding"](80, config["hidden"], config["llm_width"], 8, config["front_end_channels"],
                                    config["front_end_clip_mean"], config["teacher_stem_width"],
                                    config["teacher_blocks"])
    from safetensors.torch import load_file

    plain.load_state_dict(load_file(str(tmp_path / "patch_embedding.safetensors")))
    assert torch.allclose(plain.eval()(mel), patch(mel), atol=1e-6)
