"""Batch inference as a cluster job: a trained student (or a baseline) answers every request of a dataset.

Input: a manifest (``.jsonl``/``.parquet`` rows with ``audio``, optional ``key``, ``task``,
``instruction``; as ``aura ingest`` reads it), a folder of audio files, or a folder of ingested shards.
The driver (:mod:`pipeline.batch.run`) writes a plan of parts; a Ray Data actor pool of
:class:`~pipeline.batch.worker.PartAnswerer` (one per GPU where there are GPUs) answers the parts not yet
written, batching neighbours in length; each part's parquet file appears whole or not at all
(:mod:`pipeline.batch.plan`), so a killed job re-run answers only what is missing and never writes a row
twice. A request that cannot be answered gets an ``error`` and the job goes on.

    aura infer-batch clips/manifest.jsonl --out runs/answers            # the trained student
    aura infer-batch runs/demo/shards --split heldout --system cascade --out runs/cascade
"""

from pipeline.batch.plan import BatchJobMismatch, BatchOutput
from pipeline.batch.run import BATCH_SYSTEMS, BatchSummary, run_batch

__all__ = ["BATCH_SYSTEMS", "BatchJobMismatch", "BatchOutput", "BatchSummary", "run_batch"]
