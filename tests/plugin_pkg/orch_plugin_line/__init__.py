"""An example orchestrator task plugin: ``task.kind: line`` (fit a line)."""
