"""bench/curves/label_recorded.py: the outcome labels of recorded curves, on hand-made runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "label_recorded", ROOT / "bench" / "curves" / "label_recorded.py"
)
assert spec and spec.loader
labels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(labels)


def runs(losses, maps=None):
    maps = maps or [0.1] * len(losses)
    return [{"train/loss": v, "val/map": m} for v, m in zip(losses, maps, strict=True)]


def test_a_run_that_learns_even_slowly_or_noisily_is_healthy():
    assert labels.label(runs([10, 9.5, 8.0, 8.6, 5.0])) == ("healthy", "healthy", None)
    # a spike that comes back: the end is below twice the lowest loss
    assert labels.label(runs([10, 4, 12, 5, 4.5])) == ("healthy", "healthy", None)


def test_non_finite_loss_or_objective_is_diverged_at_its_first_report():
    assert labels.label(runs([10, 5, float("nan"), 4])) == ("diverged", "nan", 2)
    assert labels.label(runs([10, 5, 4], [0.1, float("inf"), 0.2])) == ("diverged", "nan", 1)


def test_a_run_that_ends_above_twice_its_lowest_loss_blew_up_where_it_first_did():
    # lowest 2 at report 2; report 3 (5 > 2 x 2) is the first above twice the running min
    assert labels.label(runs([10, 6, 2, 5, 7, 9])) == ("diverged", "blew_up", 3)


def test_a_loss_that_never_fell_below_90_percent_of_its_start_made_no_progress():
    assert labels.label(runs([10, 9.5, 9.2, 9.8])) == ("diverged", "no_progress", 1)
    assert labels.label(runs([10, 8.9, 9.5])) == ("healthy", "healthy", None)


def test_a_run_ending_under_a_fifth_of_the_sets_best_never_learned():
    ended_low = runs([10, 6, 4, 3], [0.0, 0.01, 0.02, 0.039])
    assert labels.label(ended_low, best_last=0.2) == ("diverged", "dead", 0)
    assert labels.label(ended_low, best_last=0.19) == ("healthy", "healthy", None)
    assert labels.label(ended_low) == ("healthy", "healthy", None)
