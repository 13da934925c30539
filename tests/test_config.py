from pathlib import Path

import pytest

from pipeline.config import AuraConfig, ConfigError, load_config

CONFIGS = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert isinstance(cfg, AuraConfig)


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
