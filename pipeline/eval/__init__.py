"""Evaluation of AuRA against its baselines (``aura eval``).

* :mod:`pipeline.eval.metrics` — text normalisation, WER, spoken-QA accuracy rule, latency percentiles,
  per-system peak memory;
* :mod:`pipeline.eval.baselines` — the systems in one harness: ``aura`` (encoder-free), ``bridge``
  (Whisper encoder + trained projector + frozen LLM), ``cascade`` (Whisper transcript -> LLM) and
  ``text`` (LLM given the reference transcript), plus bridge training;
* :mod:`pipeline.eval.datasets` — local loaders for SD-QA / DAQA and HeySQuAD spoken-QA files;
* :mod:`pipeline.eval.run` — the held-out evaluation (``run_eval``, ``cmd_eval``, ``add_eval_arguments``);
* :mod:`pipeline.eval.report` — ``report.md``, ``report.json`` and PNG plots.
"""

#: The systems ``aura eval`` compares (see :mod:`pipeline.eval.baselines`).
SYSTEMS = ("aura", "bridge", "cascade", "text")
