"""The inference benchmark runs end to end with the random tiny models and renders its tables."""

import json

from benchmarks.inference_bench import main


def test_benchmark_cli_with_tiny_models(tmp_path):
    out = tmp_path / "inference.md"
    token_rate = tmp_path / "token_rate.json"  # a jobs.token_rate table with a trained point at pooling 2 only
    token_rate.write_text(json.dumps([{"pooling": 1, "wer": None, "qa_accuracy": None, "utterances": None},
                                      {"pooling": 2, "wer": 0.5, "qa_accuracy": 0.25, "utterances": 8}]))
    assert main(["--quality-from", str(token_rate), "--teacher", "random:whisper-tiny", "--llm", "random:llama-tiny", "--device", "cpu", "--reps", "1",
                 "--new-tokens", "3", "--seconds", "1.0", "--poolings", "1,2", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    aura = result["aura"]
    # every system decoded exactly the same number of new tokens
    for s in (result["llm_alone"], aura["1"], aura["2"], result["bridge"], result["cascade"]):
        assert s["new_tokens"] == 3 and s["latency_s"] >= s["ttft_s"] > 0
    # the LLM alone gets a text prefix exactly as long as AuRA's request
    assert result["llm_alone"]["prompt_tokens"] == aura["1"]["prompt_tokens"]
    assert aura["1"]["audio_tokens"] == 50 and aura["2"]["audio_tokens"] == 25
    assert result["bridge"]["audio_tokens"] == 13  # 50 frames, 4 per token
    for name in ("llm_alone", "aura", "bridge", "cascade"):
        assert result["memory"][name]["peak_bytes"] > 0
    md = out.read_text()
    assert md.startswith("# Inference benchmark") and "ratio AuRA / LLM" in md
    assert "not measured: no model trained at this pooling" in md and "| 2 | 25 | 25 |" in md
    assert "| WER 50.0%, QA 25.0% (8 held-out utterances, token_rate.json) |" in md
