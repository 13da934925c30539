"""The ``aura`` command as a user meets it: version, job usage lines, store inspection and repair, one-line
errors and exit codes, ``--set train.stage`` honoured."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_aura
from pipeline import cli
from pipeline.cli import data as data_commands


def test_version():
    done = run_aura("--version")
    assert done.returncode == 0 and done.stdout.startswith("aura ")


@pytest.mark.parametrize("job", ["precompute", "train", "ingest", "eval", "infer"])
def test_job_usage_names_the_job(job):
    done = subprocess.run([sys.executable, "-m", f"jobs.{job}", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m jobs.{job} ")
    assert "config fields (--set KEY=VALUE):" in done.stdout


def test_help_lists_the_config_fields_a_command_reads():
    done = run_aura("train", "--help")
    assert done.returncode == 0
    assert "train.max_steps = 200  optimizer steps of stage 1" in done.stdout
    assert "student.lora_rank = 16  rank r of every LoRA update" in done.stdout
    assert "batch.part_size" not in done.stdout  # only what train reads


def test_store_verify_repair_and_status_from_the_cli(tiny_workdir, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_workdir[0], workdir)
    store = workdir / "store.zarr"
    args = ["--config", "configs/tiny.yaml", "--set", f"workdir={workdir}", "--store", str(store)]
    assert run_aura("store", "verify", *args).returncode == 0
    shard = sorted(p.name for p in (store / "shards").iterdir())[0]
    chunk = next(p for p in (store / "shards" / shard / "data" / "c").rglob("*") if p.is_file())
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chunk.write_bytes(bytes(raw))

    damaged = run_aura("store", "verify", *args)
    assert damaged.returncode == 1 and f"1 damaged" in damaged.stdout and shard in damaged.stdout
    repaired = run_aura("store", "verify", "--repair", *args)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert "uncommitted 1 damaged shard group(s)" in repaired.stdout
    status = run_aura("store", "status", *args)
    assert status.returncode == 0 and "1 pending (not computed yet)" in status.stdout and shard in status.stdout
    assert "Traceback" not in repaired.stderr + status.stderr


def test_a_missing_store_and_an_unknown_model_are_one_line_errors(tmp_path):
    done = run_aura("store", "status", "--store", str(tmp_path / "nothing.zarr"))
    assert done.returncode == 2 and "no feature store at" in done.stderr and "Traceback" not in done.stderr
    done = run_aura("precompute", "--config", "configs/tiny.yaml", "--set", f"workdir={tmp_path}",
                    "--set", "models.teacher=bundled:no-such-model")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "no-such-model" in done.stderr.strip().splitlines()[-1]


def test_set_train_stage_is_honoured(monkeypatch, tmp_path):
    stages = []

    class Result:
        run_dir = tmp_path

    def fake_launch(cfg, stage, **kwargs):
        stages.append((stage, cfg.train.stage))
        return Result()

    monkeypatch.setattr("pipeline.train.launch.launch", fake_launch)
    base = ["train", "--config", "configs/tiny.yaml", "--set", f"workdir={tmp_path}"]
    assert cli.main([*base, "--set", "train.stage=tasks"]) == 0
    assert cli.main([*base, "--set", "train.stage=tasks", "--stage", "distill"]) == 0
    assert cli.main(base) == 0
    assert stages == [("tasks", "tasks"), ("distill", "distill"), ("distill", "distill")]


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(data_commands, "cmd_corpus", boom)
    assert cli.main(["corpus"]) == 1
    assert "aura: RuntimeError: disk on fire (run with --debug for the traceback)" in capsys.readouterr().err
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "corpus"])


FLOODING_COMMAND = """
import sys
from pipeline import cli
from pipeline.cli import data


def flood(args):
    for i in range(200_000):
        print("line", i)
    return 0


data.cmd_corpus = flood
sys.exit(cli.main(["corpus"]))
"""


def test_a_closed_output_pipe_stops_quietly(tmp_path):
    """`aura ... | head -1`: the reader leaves mid-output; the command stops with 1 and no error message."""
    script = tmp_path / "flood.py"
    script.write_text(FLOODING_COMMAND)
    done = subprocess.run(["bash", "-o", "pipefail", "-c", f"{sys.executable} {script} | head -1"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.stdout == "line 0\n"
    assert done.returncode == 1
    assert done.stderr == ""
