from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from pipeline.config import AuraConfig, ConfigError, fields_help, load_config

CONFIGS = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml"))


def leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "layer_map":
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_set_what_they_say_and_round_trip(path):
    cfg = load_config(path)
    dumped = cfg.model_dump(mode="json")
    for key, value in leaves(yaml.safe_load(path.read_text())).items():
        if key == "base":  # resolved into the rest (test_a_config_file_starts_from_its_base)
            continue
        node = dumped
        for part in key.split("."):
            node = node[part]
        if key in ("workdir", "train.init_from", "train.tasks_init_from", "train.target_stats_from", "train.replay_from") \
                or key.startswith("paths."):  # paths the config makes absolute
            assert Path(node) == Path(value).absolute()
        else:
            assert node == value, key
    assert AuraConfig.model_validate(yaml.safe_load(cfg.to_yaml())) == cfg


def test_a_config_file_starts_from_its_base(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "workdir: runs/base\ncorpus:\n  num_utterances: 100\n  seed: 3\n"
        "  voices: {'pico:en-US': 0.5, 'piper:joe': 0.5}\ntrain:\n  lr: 0.002\n")
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "grown.yaml"
    child.write_text("base: ../base.yaml\ncorpus:\n  num_utterances: 200\n  voices: {'pico:en-US': 1.0}\n")
    cfg = load_config(child, ["train.max_steps=9"])
    assert cfg.workdir == Path("runs/base").absolute()  # taken from the base
    assert (cfg.corpus.num_utterances, cfg.corpus.seed) == (200, 3)  # a section merges key by key
    assert cfg.corpus.voices == {"pico:en-US": 1.0}  # a mapping value the child names replaces the base's keys too
    assert (cfg.train.lr, cfg.train.max_steps) == (0.002, 9)


def test_the_grown_corpus_configs_differ_from_the_release_only_where_they_say():
    root = Path(__file__).resolve().parents[1] / "configs"
    release = load_config(root / "student.yaml").model_dump()
    grown = load_config(root / "student_hibari_28k.yaml").model_dump()
    changed = {k for k in release if release[k] != grown[k]}
    assert changed == {"workdir", "corpus", "paths"}
    assert {k for k in release["corpus"] if release["corpus"][k] != grown["corpus"][k]} == \
        {"num_utterances", "voice_growth"}


@pytest.mark.faults("config", "config whose base is missing or leads back to itself")
def test_a_bad_base_names_the_files(tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="leads back to itself"):
        load_config(loop)
    orphan = tmp_path / "orphan.yaml"
    orphan.write_text("base: gone.yaml\n")
    with pytest.raises(ConfigError, match=r"gone\.yaml \(the base of .*orphan\.yaml\)"):
        load_config(orphan)


def test_every_config_field_is_documented_and_shown_by_help():
    for section, field in AuraConfig.model_fields.items():
        model = field.annotation
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {section: field}
        for name, sub in fields.items():
            assert sub.description, f"{section}.{name} has no description"
    assert "  train.lr = 0.001  peak learning rate of the LoRA weights" in fields_help(["train"])


def test_overrides_are_typed_and_paths_derive_from_workdir(tmp_path):
    cfg = load_config(None, ["train.max_steps=7", f"workdir={tmp_path}", "store.layers=[1, 2]"])
    assert cfg.train.max_steps == 7
    assert cfg.store.layers == [1, 2]
    assert cfg.paths.store == tmp_path / "store.zarr"
    assert cfg.paths.shards == tmp_path / "shards"


@pytest.mark.faults("config", "config with a wrong type")
def test_wrong_type_names_the_field():
    with pytest.raises(ConfigError, match=r"train\.max_steps"):
        load_config(None, ["train.max_steps=many"])


@pytest.mark.faults("config", "config with an unknown key")
def test_unknown_key_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_stepz: 3\n")
    with pytest.raises(ConfigError, match=r"train\.max_stepz"):
        load_config(bad)


@pytest.mark.faults("config", "config value out of range")
def test_out_of_range_value_is_refused():
    with pytest.raises(ConfigError, match=r"ingest\.max_duration_s"):
        load_config(None, ["ingest.max_duration_s=45"])
    with pytest.raises(ConfigError, match=r"train\.replay_share"):
        load_config(None, ["train.replay_share=1"])  # a run that would train on the replayed corpus alone


def test_a_stage_2_that_keeps_its_lower_layers_has_no_loss_that_reaches_them():
    load_config("configs/tiny.yaml", ["train.tasks_frozen_layers=2"])
    for weight in ("train.distill_weight=0.3", "train.tasks_ctc_weight=0.3"):
        with pytest.raises(ConfigError, match=r"train\.tasks_frozen_layers=2 keeps the layers"):
            load_config("configs/tiny.yaml", ["train.tasks_frozen_layers=2", weight])


@pytest.mark.faults("config", "malformed YAML / missing config file")
def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(None, ["student.lora_rank=4", f"workdir={tmp_path}"])
    saved = tmp_path / "saved.yaml"
    saved.write_text(cfg.to_yaml())
    assert load_config(saved) == cfg
