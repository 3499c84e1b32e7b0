"""``orchestrate replay``: run stopping policies over recorded learning curves, offline.

A sweep's curves (from ``bench/curves/*.jsonl`` or an MLflow experiment) are fed, report by
report, to the same divergence rules and the same Ray scheduler classes a live sweep uses,
with trials started ``concurrency`` at a time in their recorded order. The result says what
each policy would have stopped, when and why, and what compute it would have saved.
"""
