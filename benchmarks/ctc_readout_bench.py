"""The CTC read-out's cost, side by side: the decoder run up to the CTC head's layer vs all of it, and vs generating.

The released student's CTC head reads layer ``ctc_layer`` (8 of SmolLM2's 30), so
:meth:`~pipeline.infer.EncoderFreeModel.ctc_transcribe` stops the decoder there. Measured in one process,
interleaved, on the release's shipped held-out clips (one batch):

* ``decoder to the head's layer`` / ``decoder, all layers``: :func:`pipeline.models.sequence.run_decoder_layers` on
  the same prefix with ``upto=ctc_layer`` and ``upto=None`` (what the read-out cost before it stopped early);
  the floor of their ratio is the ratio of layers run;
* ``ctc read-out``: the whole :meth:`ctc_transcribe` (patch embedding, prefix, decoder, head, greedy CTC path);
* ``ctc read-out, beam + LLM``: the same with the prefix beam search and the LLM as its LM (``--beam``,
  ``--lm-weight``, ``--length-bonus``; :class:`pipeline.models.ctc.CTCSearch`), one clip after another;
* ``generate``: the greedy generated transcript (``--new-tokens`` at most), the other read-out.

Then the greedy read-out's head two ways (:func:`greedy_head_cost`), time and peak memory, on the shipped batch and on
the same clips each looped to ``--long-seconds``: the best label per frame scored clip by clip
(:meth:`~pipeline.models.ctc.TokenCTCHead.best_labels`, what :meth:`ctc_transcribe` does since 2026-12-07) against the
argmax of the whole ``(batch, frames, 1 + 49,152)`` log-probabilities (:meth:`ctc_log_probs`, what it did before).

    python -m benchmarks.ctc_readout_bench --reps 5
"""

from __future__ import annotations

from benchmarks import save_results

import argparse
import statistics
import time

import numpy as np


def greedy_head_cost(model, batches: dict[str, list[np.ndarray]], reps: int) -> dict:
    """The greedy CTC read-out of each batch two ways, interleaved: ``best labels`` (:meth:`ctc_transcribe`: each
    clip's frames scored on their own, the best label kept) and ``whole vocabulary`` (the argmax of
    :meth:`ctc_log_probs`, every frame of the padded batch scored and normalised); the median time and the peak
    resident memory over the RSS before each call (:class:`pipeline.eval.metrics.PeakMemory`, the larger of two
    readings), and whether both read the same ids (they must).

    >>> from pipeline.infer import EncoderFreeModel; from pipeline.released import RELEASE_DIR, released_examples
    >>> import soundfile as sf
    >>> model = EncoderFreeModel.from_export("bundled:smollm2-135m-instruct", RELEASE_DIR / "student.safetensors")
    >>> clips = [sf.read(row["path"], dtype="float32")[0] for row in released_examples()[:2]]
    >>> cost = greedy_head_cost(model, {"two clips": clips}, reps=1)["two clips"]
    >>> cost["same_ids"], sorted(cost["median_ms"])
    (True, ['best labels', 'whole vocabulary'])
    """
    import torch

    from pipeline.eval.metrics import PeakMemory
    from pipeline.models.ctc import ctc_greedy_ids

    def whole_vocabulary(audios):
        log_probs, lengths = model.ctc_log_probs(audios)
        return ctc_greedy_ids(log_probs, lengths)

    ways = {"best labels": lambda audios: [r.token_ids for r in model.ctc_transcribe(audios)],
            "whole vocabulary": whole_vocabulary}
    out = {}
    with torch.inference_mode():
        for batch_name, audios in batches.items():
            ids = {way: fn(audios) for way, fn in ways.items()}  # also the warm-up
            times: dict[str, list[float]] = {way: [] for way in ways}
            peaks: dict[str, list[int]] = {way: [] for way in ways}
            for rep in range(max(reps, 2)):
                for way, fn in ways.items():
                    meter = PeakMemory("cpu")
                    meter.baseline()
                    meter.start()
                    started = time.perf_counter()
                    fn(audios)
                    times[way].append(time.perf_counter() - started)
                    peaks[way].append(meter.stop().peak_over_baseline_bytes)
            out[batch_name] = {
                "clips": len(audios), "seconds_per_clip": round(float(np.mean([len(a) for a in audios])) / 16000, 2),
                "median_ms": {way: 1000 * statistics.median(t) for way, t in times.items()},
                "peak_mb": {way: max(p) / 2**20 for way, p in peaks.items()},
                "same_ids": ids["best labels"] == ids["whole vocabulary"]}
    return out


def main(argv: list[str] | None = None) -> int:
    import soundfile as sf
    import torch

    from pipeline.infer import EncoderFreeModel
    from pipeline.models.ctc import CTCSearch
    from pipeline.models.sequence import run_decoder_layers
    from pipeline.prompts import instruction_for
    from pipeline.released import RELEASE_DIR, released_examples

    p = argparse.ArgumentParser(prog="python -m benchmarks.ctc_readout_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--llm", default="bundled:smollm2-135m-instruct")
    p.add_argument("--reps", type=int, default=5, help="interleaved repetitions after one warm-up")
    p.add_argument("--new-tokens", type=int, default=32, help="most tokens the generated read-out decodes")
    p.add_argument("--beam", type=int, default=6, help="the fused read-out's beam")
    p.add_argument("--lm-weight", type=float, default=0.3, help="the fused read-out's LM weight")
    p.add_argument("--length-bonus", type=float, default=2.0, help="the fused read-out's score per token")
    p.add_argument("--long-seconds", type=float, default=10.0, help="the greedy head's second batch: each clip looped "
                   "to this length")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)

    model = EncoderFreeModel.from_export(args.llm, RELEASE_DIR / "student.safetensors", dtype="float32")
    examples = released_examples()
    audios = [sf.read(e["path"], dtype="float32")[0] for e in examples]
    instruction = instruction_for("transcribe")
    prefix = model.build_prefix(audios, instruction)
    layers = len(model.llm.model.layers)

    def decoder(upto):
        def run():
            with torch.inference_mode():
                return run_decoder_layers(model.llm.model, prefix["inputs_embeds"], prefix["attention_mask"],
                                          prefix["audio_mask"], model.bidirectional_audio,
                                          model.llm.config._attn_implementation, upto=upto)
        return run

    def fused():
        greedy, model.ctc_search = model.ctc_search, CTCSearch(args.beam, args.lm_weight, args.length_bonus)
        try:
            return model.ctc_transcribe(audios)
        finally:
            model.ctc_search = greedy

    workloads = {"decoder to the head's layer": decoder(model.ctc_layer), "decoder, all layers": decoder(None),
                 "ctc read-out": lambda: model.ctc_transcribe(audios), "ctc read-out, beam + LLM": fused,
                 "generate": lambda: model.generate(audios, instruction, max_new_tokens=args.new_tokens)}
    for fn in workloads.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(args.reps):
        for name, fn in workloads.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["ctc read-out"]
    print(f"{len(audios)} clips in one batch, {args.reps} interleaved reps; CTC head on layer {model.ctc_layer} of {layers}")
    for name, seconds in median.items():
        print(f"  {name:28s} {seconds * 1000:8.0f} ms   {seconds / base:5.2f}x the ctc read-out")
    ratio = median["decoder, all layers"] / median["decoder to the head's layer"]
    print(f"  all layers / to the head's layer: {ratio:.2f}x (floor, the layers run: {layers / model.ctc_layer:.2f}x)")
    result = {"clips": len(audios), "reps": args.reps, "ctc_layer": model.ctc_layer, "layers": layers,
              "fused_search": {"beam": args.beam, "lm_weight": args.lm_weight, "length_bonus": args.length_bonus},
              "median_s": median, "ratio_to_ctc_read_out": {n: s / base for n, s in median.items()},
              "all_layers_over_head_layer": ratio, "layer_ratio": layers / model.ctc_layer}
    looped = [np.resize(a, int(args.long_seconds * 16000)) for a in audios]
    head = greedy_head_cost(model, {"shipped clips": audios, f"looped to {args.long_seconds:g} s": looped}, args.reps)
    print("greedy read-out: best label per frame, clip by clip, vs the argmax of the whole vocabulary's log-probs")
    for batch_name, cost in head.items():
        ms, mb = cost["median_ms"], cost["peak_mb"]
        print(f"  {batch_name} ({cost['clips']} x {cost['seconds_per_clip']} s): "
              f"{ms['best labels']:.0f} vs {ms['whole vocabulary']:.0f} ms "
              f"({ms['best labels'] / ms['whole vocabulary']:.2f}x), peak {mb['best labels']:.0f} vs "
              f"{mb['whole vocabulary']:.0f} MB; same ids: {cost['same_ids']}")
    result["greedy_head"] = head
    save_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
