"""Encoder-free inference on a random tiny Llama: cached greedy decoding against a slow reference,
merged vs unmerged LoRA, text-only decoding, no Whisper anywhere, and `aura transcribe` / `aura ask`
over good and bad files."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from pipeline.config import StudentConfig
from pipeline.decoding import GenerationResult, greedy_decode, text_only_generate
from pipeline.infer import EncoderFreeModel
from pipeline.models.sources import load_llm
from pipeline.models.sequence import layout_speech_batch
from pipeline.models.student import AuraStudent
from pipeline.prompts import TASK_INSTRUCTIONS, prompt_ids
from pipeline.cli.infer import add_ask_arguments, add_transcribe_arguments, cmd_ask, cmd_transcribe

REPO_ROOT = Path(__file__).resolve().parents[1]
TEACHER_LAYERS = [2, 4]
TEACHER_WIDTH = 64
ATOL = 1e-5  # float32 on CPU: merged weights give the same maths in a different order

torch.set_num_threads(1)


# -------------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="session")
def aura_cache(tmp_path_factory) -> Path:
    if os.environ.get("AURA_CACHE_DIR"):
        return Path(os.environ["AURA_CACHE_DIR"]).expanduser()
    return tmp_path_factory.mktemp("aura-cache")


@pytest.fixture(scope="session")
def llm_dir(aura_cache, tmp_path_factory) -> str:
    """``random:llama-tiny`` with larger decoder weights, saved as a local HF folder (a valid LLM spec).

    At init scale its tied embeddings make greedy decoding repeat one token, which would hide
    decoding bugs; with these weights every step picks a different token."""
    llm, tokenizer = load_llm("random:llama-tiny", aura_cache)
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for param in llm.model.layers.parameters():
            if param.ndim == 2:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    out = tmp_path_factory.mktemp("llm") / "llama-tiny-diverse"
    llm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def make_student(llm_spec: str, seed: int = 1) -> tuple[AuraStudent, object]:
    """A student with default StudentConfig and random LoRA B (at zero LoRA would change nothing)."""
    llm, tokenizer = load_llm(llm_spec)
    student = AuraStudent.from_llm(llm, StudentConfig(), TEACHER_LAYERS, TEACHER_WIDTH, n_mels=80, pooling=1)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in student.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return student.eval(), tokenizer


def make_run(llm_spec: str, aura_cache: Path, workdir: Path) -> Path:
    """A workdir as training leaves it (distill export) plus its config file; returns the config path."""
    student, _ = make_student(llm_spec)
    student.save_trainable(workdir / "checkpoints" / "distill" / "export" / "student.safetensors")
    config = {"workdir": str(workdir), "models": {"llm": llm_spec, "cache_dir": str(aura_cache)}}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def parse(add_arguments, argv: list[str]) -> argparse.Namespace:
    """Parse like the ``aura`` CLI does (``--config``/``--set`` come from the CLI's subcommand factory)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[])
    add_arguments(parser)
    return parser.parse_args(argv)


def noise_audio(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def run_config(llm_dir, aura_cache, tmp_path_factory) -> Path:
    return make_run(llm_dir, aura_cache, tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> dict[str, np.ndarray]:
    from pipeline.data.tts import synthesize

    return {"hello": synthesize("hello world"), "paris": synthesize("the capital of France is Paris", voice="en-gb")}


def slow_reference(student: AuraStudent, tokenizer, audios, instructions, max_new_tokens: int) -> list[list[int]]:
    """Greedy decoding with no cache and no batching: the whole sequence through the student's own
    layer loop (LoRA unmerged) at every step."""
    mel, lengths = student.patch_embedding.mel_batch(audios)
    stops = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    answers = []
    for b, instruction in enumerate(instructions):
        before, after = prompt_ids(tokenizer, instruction)
        answer: list[int] = []
        for _ in range(max_new_tokens):
            batch = layout_speech_batch([before], [int(lengths[b])], after_audio=[after + answer], pad_id=0)
            logits = student(**batch, mel=mel[b:b + 1, :, : int(lengths[b]) * 2], token_lengths=lengths[b:b + 1],
                             return_layer_states=False)["logits"]
            token = int(logits[0, -1].argmax())
            if token in stops:
                break
            answer.append(token)
        answers.append(answer)
    return answers


# -------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@torch.no_grad()
def test_cached_batched_decoding_equals_slow_reference(llm_dir, attention):
    """sdpa takes the prefix mask as booleans, eager as an additive float mask: both must decode alike."""
    student, tokenizer = make_student(llm_dir)
    student.base_llm.set_attn_implementation(attention)
    audios = [noise_audio(0.5, 0), noise_audio(0.23, 1), noise_audio(0.9, 2)]  # left padding of 0..33 positions
    instructions = [TASK_INSTRUCTIONS["transcribe"], "What is said?", TASK_INSTRUCTIONS["spoken_qa"]]
    reference = slow_reference(student, tokenizer, audios, instructions, max_new_tokens=8)
    model = EncoderFreeModel.from_student(student, tokenizer, merge=False)
    assert model.llm.config._attn_implementation == attention
    results = model.generate(audios, instructions, max_new_tokens=8)
    assert [r.token_ids for r in results] == reference
    assert len({t for r in reference for t in r}) > 4, "degenerate test model: decoding bugs would go unseen"
    for r, audio in zip(results, audios):
        assert isinstance(r, GenerationResult)
        assert r.num_audio_tokens == model.patch_embedding.num_tokens(len(audio))
        assert r.prompt_tokens > r.num_audio_tokens and r.new_tokens == len(r.token_ids)
        assert 0 < r.time_to_first_token_s <= r.latency_s


@torch.no_grad()
def test_each_answer_stops_at_its_stop_token(llm_dir):
    student, tokenizer = make_student(llm_dir)
    model = EncoderFreeModel.from_student(student, tokenizer, merge=True)
    audios = [noise_audio(0.5, 0), noise_audio(0.3, 1)]
    full = model.generate(audios, "Transcribe the audio.", max_new_tokens=10)
    ids = full[0].token_ids
    # The first token (after the first position) not seen before: stopping on it cuts the answer there.
    first_new = [i for i in range(1, len(ids)) if ids[i] not in ids[:i]]
    assert first_new, f"degenerate greedy output {ids}"
    k = first_new[0]
    stop = ids[k]
    model.stop_token_ids = [stop]
    short = model.generate(audios, "Transcribe the audio.", max_new_tokens=10)
    for long_answer, answer in zip(full, short):
        cut = long_answer.token_ids.index(stop) if stop in long_answer.token_ids else None
        assert answer.token_ids == long_answer.token_ids[:cut]
        assert answer.finish_reason == ("stop" if cut is not None else "length")
    assert short[0].new_tokens == k and full[0].finish_reason == "length"


@torch.no_grad()
def test_merged_and_unmerged_give_same_logits_and_text(llm_dir):
    from transformers import LlamaForCausalLM

    audios = [noise_audio(0.4, 3), noise_audio(0.7, 4)]
    student, tokenizer = make_student(llm_dir)
    unmerged = EncoderFreeModel.from_student(student, tokenizer, merge=False)
    logits_lora, mask = unmerged.prompt_logits(audios, "Transcribe the audio.")
    text_lora = unmerged.generate(audios, "Transcribe the audio.", max_new_tokens=8)
    merged = EncoderFreeModel.from_student(student, tokenizer, merge=True)
    assert isinstance(merged.llm, LlamaForCausalLM)
    assert not any("lora" in name for name, _ in merged.llm.named_parameters())
    logits_merged, _ = merged.prompt_logits(audios, "Transcribe the audio.")
    real = mask.bool()
    torch.testing.assert_close(logits_merged[real], logits_lora[real], atol=ATOL, rtol=0)
    text_merged = merged.generate(audios, "Transcribe the audio.", max_new_tokens=8)
    assert [r.token_ids for r in text_merged] == [r.token_ids for r in text_lora]
    assert [r.text for r in text_merged] == [r.text for r in text_lora]

    # LoRA really matters, and the audio really reaches the LLM.
    plain, _ = make_student(llm_dir)
    with torch.no_grad():
        for name, param in plain.named_parameters():
            if "lora_B" in name:
                param.zero_()
    no_lora, _ = EncoderFreeModel.from_student(plain, tokenizer, merge=True).prompt_logits(audios, "Transcribe the audio.")
    assert (no_lora[real] - logits_merged[real]).abs().max() > 1e-2
    other, _ = merged.prompt_logits([noise_audio(0.4, 5), audios[1]], "Transcribe the audio.")
    assert (other[0, -1] - logits_merged[0, -1]).abs().max() > 1e-3


@torch.no_grad()
def test_text_only_generate_equals_no_cache_reference(llm_dir):
    llm, tokenizer = load_llm(llm_dir)
    prompts = ["What is the capital of France?", "Hi"]
    results = text_only_generate(llm, tokenizer, prompts, max_new_tokens=6)
    for prompt, result in zip(prompts, results):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        answer = []
        for _ in range(6):
            token = int(llm(input_ids=torch.tensor([ids + answer])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            answer.append(token)
        assert result.token_ids == answer
        assert result.num_audio_tokens == 0 and result.prompt_tokens == len(ids)


def test_greedy_decode_needs_left_padding(llm_dir):
    llm, _ = load_llm(llm_dir)
    embeds = llm.get_input_embeddings()(torch.tensor([[5, 6, 7]]))
    with pytest.raises(ValueError, match="left-padded"):
        greedy_decode(llm, embeds, torch.tensor([[1, 1, 0]]), max_new_tokens=2, stop_token_ids=[2], pad_token_id=2)


# -------------------------------------------------------------------------------- no teacher


def _forbid_whisper(monkeypatch) -> None:
    import transformers

    from pipeline.models import sources

    def refuse(*args, **kwargs):
        raise AssertionError("the Whisper teacher must not be built at inference")

    monkeypatch.setattr(transformers.WhisperModel, "__init__", refuse)
    monkeypatch.setattr(transformers.WhisperForConditionalGeneration, "__init__", refuse)
    monkeypatch.setattr(sources, "load_whisper", refuse)


def test_transcribe_never_builds_the_teacher(monkeypatch, run_config, speech, tmp_path):
    _forbid_whisper(monkeypatch)
    wav = tmp_path / "hello.wav"
    sf.write(wav, speech["hello"], 16000)
    out = tmp_path / "out.jsonl"
    assert cmd_transcribe(parse(add_transcribe_arguments, ["--config", str(run_config), str(wav), "--out", str(out)])) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert "text" in record and record["num_audio_tokens"] > 0


def test_inference_imports_nothing_of_whisper(run_config, tmp_path):
    """In a fresh process: load, generate; neither the teacher module nor Whisper's modeling code is imported."""
    script = f"""
import sys, numpy as np
from pipeline.config import load_config
from pipeline.infer import EncoderFreeModel
model = EncoderFreeModel.from_config(load_config({str(run_config)!r}))
model.generate([np.full(8000, 0.1, dtype=np.float32)], "Transcribe the audio.", max_new_tokens=2)
bad = [m for m in sys.modules if m == "pipeline.models.teacher" or m.startswith("transformers.models.whisper.modeling")]
assert not bad, bad
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


# -------------------------------------------------------------------------------- CLI over many files


@pytest.fixture
def audio_dir(tmp_path, speech) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    sf.write(folder / "a_hello.wav", speech["hello"], 16000)
    (folder / "b_empty.wav").write_bytes(b"")
    (folder / "c_not_audio.wav").write_text("this is not a wav file")
    sf.write(folder / "d_silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(folder / "e_paris.flac", speech["paris"], 16000)
    sf.write(folder / "f_too_long.wav", np.tile(speech["hello"], int(31 * 16000 / len(speech["hello"])) + 1), 16000)
    return folder


def test_transcribe_reports_bad_files_and_processes_the_rest(run_config, audio_dir, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    missing = audio_dir / "g_missing.wav"
    argv = ["--config", str(run_config), str(audio_dir), str(missing), "--out", str(out), "--batch-size", "2",
            "--max-new-tokens", "4"]
    assert cmd_transcribe(parse(add_transcribe_arguments, argv)) == 1  # some inputs failed: a script must see it
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["file"]).name for r in records] == [
        "a_hello.wav", "b_empty.wav", "c_not_audio.wav", "d_silent.wav", "e_paris.flac", "f_too_long.wav", "g_missing.wav"]
    by_name = {Path(r["file"]).name: r for r in records}
    for good in ("a_hello.wav", "e_paris.flac"):
        record = by_name[good]
        assert "error" not in record and isinstance(record["text"], str)
        assert record["instruction"] == TASK_INSTRUCTIONS["transcribe"]
        assert record["latency_s"] > 0 and record["new_tokens"] <= 4 and record["duration_s"] > 0.5
    expected_errors = {"b_empty.wav": "empty", "c_not_audio.wav": "not readable", "d_silent.wav": "silent",
                       "f_too_long.wav": "too long", "g_missing.wav": "not found"}
    for name, reason in expected_errors.items():
        assert set(by_name[name]) == {"file", "error"} and reason in by_name[name]["error"], by_name[name]
    err = capsys.readouterr().err
    assert "2 answered, 5 failed" in err and "g_missing.wav: file not found" in err


def test_ask_exit_code_is_1_when_every_file_fails(run_config, audio_dir, capsys):
    argv = ["--config", str(run_config), str(audio_dir / "b_empty.wav"), str(audio_dir / "nope.wav"),
            "--prompt", "Who speaks?"]
    assert cmd_ask(parse(add_ask_arguments, argv)) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [set(r) for r in lines] == [{"file", "error"}] * 2


def test_ask_uses_the_prompt(run_config, audio_dir, capsys):
    argv = ["--config", str(run_config), str(audio_dir / "a_hello.wav"), "--prompt", "Who speaks?",
            "--max-new-tokens", "3"]
    assert cmd_ask(parse(add_ask_arguments, argv)) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["instruction"] == "Who speaks?" and record["new_tokens"] <= 3


@torch.no_grad()
def make_ctc_student(llm_spec: str, **cfg) -> tuple[AuraStudent, object]:
    """A student with a CTC head, random LoRA B and blank row (so that the read-out is not all blanks)."""
    llm, tokenizer = load_llm(llm_spec)
    student = AuraStudent.from_llm(llm, StudentConfig(ctc_weight=0.5, **cfg), TEACHER_LAYERS, TEACHER_WIDTH,
                                   n_mels=80, pooling=1).eval()
    gen = torch.Generator().manual_seed(7)
    for name, param in student.named_parameters():
        if "lora_B" in name or name.startswith(("ctc_head.blank", "ctc_head.classify")):
            param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return student, tokenizer


@torch.no_grad()
def test_ctc_transcribe_reads_the_states_stage_1_trained(llm_dir):
    """The merged model's CTC read-out gives the greedy path of the student's own stage-1 forward (the audio
    after the same prompt prefix), per sample of a padded batch; a student without a CTC head is refused."""
    from pipeline.eval.systems import AuraCTCSystem
    from pipeline.models.ctc import ctc_greedy_ids
    from pipeline.prompts import audio_prefix_ids

    student, tokenizer = make_ctc_student(llm_dir)
    audios = [noise_audio(0.5, 11), noise_audio(0.9, 12)]
    mel, lengths = student.patch_embedding.mel_batch(audios)
    out = student.forward_distill(mel, lengths, prefix_ids=audio_prefix_ids(tokenizer))
    expected = ctc_greedy_ids(out["ctc_log_probs"], lengths)
    assert any(expected), "a read-out of blanks only would test nothing"

    model = EncoderFreeModel.from_student(student, tokenizer, merge=True)
    heard = model.ctc_transcribe(audios)
    assert [r.token_ids for r in heard] == expected
    assert [r.num_audio_tokens for r in heard] == lengths.tolist()
    assert heard[0].text == tokenizer.decode(expected[0], skip_special_tokens=True).strip()
    log_probs, read_lengths = model.ctc_log_probs(audios)
    assert torch.equal(read_lengths, lengths)
    torch.testing.assert_close(log_probs[1, : lengths[1]], out["ctc_log_probs"][1, : lengths[1]], atol=1e-4, rtol=1e-4)

    plain, _ = make_student(llm_dir)
    with pytest.raises(ValueError, match="no CTC head"):
        AuraCTCSystem(EncoderFreeModel.from_student(plain, tokenizer, merge=True))


@torch.no_grad()
def test_ctc_transcribe_spells_characters_with_a_character_head(llm_dir):
    """A character head's read-out: the greedy path over ``ctc_upsample`` frames per audio token, spelt in letters;
    the clip's audio tokens are still reported as such; its beam search takes no LLM as LM (the LLM scores tokens)."""
    from pipeline.models.ctc import CTCSearch, ctc_greedy_ids
    from pipeline.prompts import audio_prefix_ids

    student, tokenizer = make_ctc_student(llm_dir, ctc_vocabulary="characters", ctc_upsample=2)
    audios = [noise_audio(0.5, 11), noise_audio(0.9, 12)]
    mel, lengths = student.patch_embedding.mel_batch(audios)
    out = student.forward_distill(mel, lengths, prefix_ids=audio_prefix_ids(tokenizer))
    expected = ctc_greedy_ids(out["ctc_log_probs"], out["ctc_lengths"])
    assert any(expected), "a read-out of blanks only would test nothing"

    model = EncoderFreeModel.from_student(student, tokenizer, merge=False)
    heard = model.ctc_transcribe(audios)
    assert [r.token_ids for r in heard] == expected
    assert [r.text for r in heard] == [student.ctc_head.text(ids) for ids in expected]
    assert set("".join(r.text for r in heard)) <= set(" abcdefghijklmnopqrstuvwxyz")
    assert [r.num_audio_tokens for r in heard] == lengths.tolist()
    assert torch.equal(model.ctc_log_probs(audios)[1], 2 * lengths)
    model.ctc_search = CTCSearch(beam=4)   # a beam without an LM reads any vocabulary
    assert len(model.ctc_transcribe(audios)) == 2
    model.ctc_search = CTCSearch(beam=4, lm_weight=0.5)
    with pytest.raises(ValueError, match="spells characters"):
        model.ctc_transcribe(audios)


@torch.no_grad()
def test_audio_states_are_stage_1s_at_every_depth_and_the_patch_embeddings_at_0(llm_dir):
    """What a probe of each depth reads (``benchmarks.layer_probe``): layer 0 is the patch embedding's audio tokens,
    layer m the audio positions of decoder layer m as stage 1 computes them after the same prompt; padded per clip."""
    from pipeline.prompts import audio_prefix_ids

    student, tokenizer = make_ctc_student(llm_dir)
    audios = [noise_audio(0.5, 11), noise_audio(0.9, 12)]
    mel, lengths = student.patch_embedding.mel_batch(audios)
    out = student.forward_distill(mel, lengths, prefix_ids=audio_prefix_ids(tokenizer), audio_states_at=(1, 2))
    tokens = student.patch_embedding(mel, int(lengths.max()))
    model = EncoderFreeModel.from_student(student, tokenizer, merge=False)
    states, read_lengths, _ = model.audio_states(audios, [0, 1, 2])
    assert torch.equal(read_lengths, lengths) and sorted(states) == [0, 1, 2]
    short = int(lengths[0])
    for m, expected in ((0, tokens), (1, out["audio_states"][1]), (2, out["audio_states"][2])):
        assert states[m].shape == expected.shape
        torch.testing.assert_close(states[m][1], expected[1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(states[m][0, :short], expected[0, :short], atol=1e-5, rtol=1e-5)
        assert not states[m][0, short:].any()   # padding
    torch.testing.assert_close(model.ctc_states(audios)[0], model.audio_states(audios, [student.ctc_layer])[0][
        student.ctc_layer])


@torch.no_grad()
def test_ctc_beam_search_read_out_uses_the_llm_with_its_adapters_off(llm_dir):
    """The read-out's beam search (``model.ctc_search``) per sample of a padded batch equals
    :func:`ctc_beam_search` on the student's own stage-1 log-probs, with the LLM as LM scored with the adapters off
    (the adapters are on again afterwards); a merged model has no adapters to switch off and says so."""
    from pipeline.decoding import LLMPrefixScorer
    from pipeline.models.ctc import CTCSearch, ctc_beam_search
    from pipeline.prompts import audio_prefix_ids

    student, tokenizer = make_ctc_student(llm_dir)
    audios = [noise_audio(0.5, 11), noise_audio(0.9, 12)]
    mel, lengths = student.patch_embedding.mel_batch(audios)
    log_probs = student.forward_distill(mel, lengths, prefix_ids=audio_prefix_ids(tokenizer))["ctc_log_probs"]
    search = CTCSearch(beam=4, lm_weight=0.7, length_bonus=0.5)
    with student.llm.disable_adapter():
        scorer = LLMPrefixScorer(student.base_llm, tokenizer.eos_token_id, tokenizer.eos_token_id)
        expected = []
        for b, n in enumerate(lengths.tolist()):
            scorer.reset()
            expected.append(ctc_beam_search(log_probs[b, :n], beam=4, lm=scorer, lm_weight=0.7, length_bonus=0.5))
    with_lora = student.base_llm(input_ids=torch.tensor([[1, 2, 3]])).logits

    model = EncoderFreeModel.from_student(student, tokenizer, merge=False)
    model.ctc_search = search
    assert [r.token_ids for r in model.ctc_transcribe(audios)] == expected
    assert torch.equal(student.base_llm(input_ids=torch.tensor([[1, 2, 3]])).logits, with_lora)  # adapters on again
    merged = EncoderFreeModel.from_student(make_ctc_student(llm_dir)[0], tokenizer, merge=True)
    merged.ctc_search = search
    with pytest.raises(ValueError, match="adapters off"):
        merged.ctc_transcribe(audios)


def test_read_out_auto_is_the_ctc_head_when_there_is_one(run_config, audio_dir, llm_dir, tmp_path, capsys):
    from pipeline.infer import EncoderFreeModel

    clip = str(audio_dir / "a_hello.wav")
    argv = ["--config", str(run_config), clip, "--read-out", "ctc"]
    assert cmd_transcribe(parse(add_transcribe_arguments, argv)) == 2  # this run's student has no CTC head
    assert "no CTC head" in capsys.readouterr().err

    export = make_ctc_student(llm_dir)[0].save_trainable(tmp_path / "ctc" / "student.safetensors")
    assert cmd_transcribe(parse(add_transcribe_arguments, ["--config", str(run_config), clip, "--export", str(export)])) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    model = EncoderFreeModel.from_export(llm_dir, export)
    audio = sf.read(clip, dtype="float32")[0]
    assert record["text"] == model.ctc_transcribe([audio])[0].text
    assert record["new_tokens"] == len(model.ctc_transcribe([audio])[0].token_ids)
    argv = ["--config", str(run_config), clip, "--export", str(export), "--prompt", "Who speaks?", "--max-new-tokens", "3"]
    assert cmd_ask(parse(add_ask_arguments, argv)) == 0
    (asked,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # the question is answered by the frozen LLM (adapters off) from the CTC transcript
    from pipeline.prompts import text_prompt

    base, tokenizer = load_llm(llm_dir)
    heard = model.ctc_transcribe([audio])[0].text
    expected = text_only_generate(base, tokenizer, [text_prompt(heard, "Who speaks?")], 3)[0]
    assert asked["text"] == expected.text and asked["new_tokens"] == expected.new_tokens <= 3
    merged = EncoderFreeModel.from_student(make_ctc_student(llm_dir)[0], tokenizer, merge=True)
    with pytest.raises(ValueError, match="unmerged"):
        merged.answer_via_ctc([audio], ["Who speaks?"], 3)
