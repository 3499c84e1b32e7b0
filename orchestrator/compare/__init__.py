"""``orchestrate compare``: a sweep's trials read back from MLflow into an HTML report
(sortable table, curves, parallel coordinates, importance, Pareto front, seed repeats) and
a Markdown summary; ``--promote`` moves the registered model's ``best`` alias.

Nothing heavy is imported here: the CLI imports :mod:`orchestrator.compare.args` at start-up.
"""
