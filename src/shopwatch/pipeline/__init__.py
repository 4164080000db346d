"""The only package that wires stages together: sources → parse → enrich → detect → store.

- :mod:`.engine` — :class:`Engine`, enrichment and detection over event-time batches;
- :mod:`.replay` — files in, alerts out, in event time (``shopwatch replay``);
- :mod:`.live` — sources, micro-batching, storing and checkpoints (``run``, ``demo``);
- :mod:`.build` — an Engine from Settings.
"""

from shopwatch.pipeline.engine import Engine, EngineStats, merge_by_time

__all__ = ["Engine", "EngineStats", "merge_by_time"]
