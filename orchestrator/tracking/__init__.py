"""MLflow tracking: parent run per sweep, child run per trial."""

from orchestrator.tracking.uri import resolve_tracking_uri, ui_command

__all__ = ["resolve_tracking_uri", "ui_command"]
