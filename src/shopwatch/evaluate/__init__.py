"""Backtesting against ground truth: ``shopwatch evaluate``.

Each module scores one kind of ground truth, read from files given by path, so the same
code runs on data it has never seen:

- :mod:`~shopwatch.evaluate.campaigns`: a ``simulate`` output and its ``ground_truth.json``;
- :mod:`~shopwatch.evaluate.truth`: any log against a CSV of labelled entities;
- :mod:`~shopwatch.evaluate.csic`: the CSIC 2010 HTTP request files;
- :mod:`~shopwatch.evaluate.nab`: the Numenta Anomaly Benchmark corpus and its scoring rules;
- :mod:`~shopwatch.evaluate.real`: the shared real logs, with their weak labels.

Every evaluation returns a JSON-ready ``dict`` (the figures ``--json OUT`` writes) and is
deterministic: the same files give the same figures.
"""
