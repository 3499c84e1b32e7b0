"""A Tune searcher that hands out a fixed list of trial configs (the seed-repeat phase)."""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher


class FixedConfigs(Searcher):
    """Suggest ``configs`` in order, then report that the search is finished.

    Its state (what is left to hand out) is saved with Tune's experiment snapshots, so a
    resumed repeat phase does not start its configurations again.
    """

    def __init__(self, configs: list[dict[str, Any]], metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self.queue = [dict(c) for c in configs]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self.queue:
            return Searcher.FINISHED  # type: ignore[return-value]  # Ray types it dict | None
        return self.queue.pop(0)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        return None

    def get_state(self) -> dict[str, Any]:
        return {"queue": self.queue}

    def set_state(self, state: dict[str, Any]) -> None:
        self.queue = list(state["queue"])
