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

    python -m benchmarks.ctc_readout_bench --reps 5
"""

from __future__ import annotations

from benchmarks import save_results

import argparse
import statistics
import time


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
    save_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
