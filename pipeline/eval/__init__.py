"""Evaluation of AuRA against its baselines (``aura eval``).

* :mod:`pipeline.eval.metrics` — text normalisation, WER, spoken-QA accuracy rule, latency percentiles,
  per-system peak memory;
* :mod:`pipeline.eval.systems` — the systems in one harness: ``aura`` (encoder-free), ``aura_ctc`` (the same
  student read through its CTC head, for students trained with one), ``bridge``
  (Whisper encoder + trained projector + frozen LLM; model in :mod:`pipeline.models.bridge`, recipe in
  :mod:`pipeline.train.bridge`), ``cascade`` (Whisper transcript -> LLM) and ``text`` (LLM given the
  reference transcript);
* :mod:`pipeline.eval.probe` — Whisper's decoder reads a stage-1 student; per-layer cosine beside baselines;
* :mod:`pipeline.eval.curves` — learning curves over a stage's checkpoints;
* :mod:`pipeline.eval.datasets` — local loaders for SD-QA / DAQA and HeySQuAD spoken-QA files;
* :mod:`pipeline.eval.run` — the held-out evaluation (``run_eval``; the command is in :mod:`pipeline.cli.evaluate`);
* :mod:`pipeline.eval.report` — ``report.md``, ``report.json`` and PNG plots.
"""

#: The systems ``aura eval`` compares (see :mod:`pipeline.eval.systems`).
SYSTEMS = ("aura", "aura_ctc", "bridge", "cascade", "text")
#: What ``aura eval`` runs unless told (``aura_ctc`` needs a student with a CTC head).
DEFAULT_SYSTEMS = ("aura", "bridge", "cascade", "text")
