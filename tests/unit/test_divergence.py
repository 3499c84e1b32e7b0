"""Divergence detectors: hand-computed histories, and the defaults on the generated curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.divergence import (
    AnyOf,
    CollapseDetector,
    ComponentsDetector,
    DivergenceConfig,
    ExplosionDetector,
    GradNormDetector,
    NonfiniteDetector,
    OscillationDetector,
    PlateauDetector,
    SkippedStepsDetector,
    SpikeDetector,
    StopReason,
    build_rules,
)

CURVES = Path(__file__).resolve().parents[2] / "bench" / "curves" / "generated.jsonl"


def h(metric: str, values: list[float | None]) -> list[dict[str, float]]:
    """A history where ``metric`` takes ``values`` (``None``: the report lacks it)."""
    return [{} if v is None else {metric: v} for v in values]


def loss(values: list[float | None]) -> list[dict[str, float]]:
    return h("train/loss", values)


# --- nonfinite -------------------------------------------------------------------------


def test_nonfinite_fires_on_first_nan_or_inf_of_any_train_or_val_metric() -> None:
    history = [
        {"train/loss": 1.0, "orch.step": math.nan},  # orch.* is bookkeeping, not watched
        {"train/loss": 0.9, "val/map": math.inf},
        {"train/loss": math.nan},
    ]
    reason = NonfiniteDetector().check(history)
    assert reason == StopReason("nonfinite", "val/map is inf at report 1", 1)


def test_nonfinite_watches_only_named_metrics() -> None:
    history = [{"train/loss": 1.0, "val/map": math.nan}, {"train/loss": -math.inf}]
    reason = NonfiniteDetector(["train/loss"]).check(history)
    assert reason is not None and reason.index == 1 and "-inf" in reason.detail


def test_nonfinite_ignores_finite_and_non_numeric() -> None:
    history = [{"train/loss": 1.0, "train/note": "nan", "train/flag": True}]
    assert NonfiniteDetector().check(history) is None


# --- spike -----------------------------------------------------------------------------


def test_spike_tolerates_one_recovered_spike_and_fires_on_a_sustained_one() -> None:
    # EMA (alpha 0.5): 10 -> 10 -> 10 -> 10; value 25 > 2 x 10 twice in a row fires
    det = SpikeDetector(factor=2.0, alpha=0.5, warmup=3, patience=2)
    assert det.check(loss([10, 10, 10, 10, 25, 10, 10])) is None
    reason = det.check(loss([10, 10, 10, 10, 25, 30, 10]))
    assert reason is not None and reason.code == "spike" and reason.index == 5
    assert "EMA 10" in reason.detail


def test_spike_waits_for_warmup() -> None:
    det = SpikeDetector(factor=2.0, warmup=3, patience=1)
    # a fall then a rise during warm-up is not judged: value at n=2 (< warmup) is ignored
    assert det.check(loss([10, 10, 30, 10])) is None
    assert det.check(loss([10, 10, 10, 30])) == StopReason(
        "spike", "train/loss = 30 > 2 × EMA 10 for 1 reports in a row", 3
    )


def test_spike_skips_missing_reports_and_is_causal() -> None:
    det = SpikeDetector(factor=2.0, alpha=0.5, warmup=1, patience=1)
    history = loss([4, None, 4, 9])
    reason = det.check(history)
    assert reason is not None and reason.index == 3
    assert det.check(history[: reason.index + 1]) == reason


# --- explosion ---------------------------------------------------------------------------


def test_explosion_relative_to_best_and_initial() -> None:
    values = [8.0, 2.0, 1.0, 9.0, 11.0]
    best = ExplosionDetector(factor=5, reference="best").check(loss(values))
    assert best is not None and best.index == 3  # 9 > 5 x best 1
    initial = ExplosionDetector(factor=5, reference="initial").check(loss(values))
    assert initial is None  # 11 < 5 x 8


def test_explosion_ignores_non_positive_reference() -> None:
    assert ExplosionDetector(factor=2).check(loss([0.0, 5.0])) is None


# --- components --------------------------------------------------------------------------


def test_component_explosion_names_the_component_while_total_looks_fine() -> None:
    history = [
        {"train/loss": 3.0, "train/raw_cls": 1.0, "train/raw_giou": 1.0},
        {"train/loss": 2.8, "train/raw_cls": 0.8, "train/raw_giou": 1.0},
        {"train/loss": 2.9, "train/raw_cls": 0.9, "train/raw_giou": 11.0},
    ]
    reason = ComponentsDetector(factor=10).check(history)
    assert reason is not None
    assert reason.code == "component_explosion:loss_giou" and reason.index == 2
    # the weighted total alone would not have stopped it
    assert ExplosionDetector(factor=10).check(history) is None


def test_component_nonfinite_code() -> None:
    history = [{"train/raw_bbox": 1.0}, {"train/raw_bbox": math.nan}]
    reason = ComponentsDetector().check(history)
    assert reason is not None and reason.code == "component_nonfinite:loss_bbox"


def test_component_collapse_fires_below_a_thousandth_of_the_start() -> None:
    history = [{"train/raw_cls": 1.2}, {"train/raw_cls": 0.05}, {"train/raw_cls": 0.0009}]
    reason = ComponentsDetector().check(history)
    assert reason is not None and reason.index == 2
    assert reason.code == "component_collapse:loss_cls"
    assert reason.detail == "train/raw_cls = 0.0009 < 0.001 × its first value 1.2"
    assert ComponentsDetector(collapse_ratio=None).check(history) is None


# --- grad norm ---------------------------------------------------------------------------


def test_grad_norm_relative_to_early_median() -> None:
    # median of the first 3 = 2; 25 > 10 x 2
    history = h("train/grad_norm", [1, 2, 50, 15, 25])
    reason = GradNormDetector(factor=10, warmup=3).check(history)
    assert reason is not None and reason.code == "grad_explosion" and reason.index == 4


# --- oscillation -------------------------------------------------------------------------


def test_oscillation_fires_on_large_zigzag_not_on_small_noise() -> None:
    det = OscillationDetector(window=6, min_flips=0.75, min_amplitude=0.15)
    zigzag = [10, 13, 10, 13, 10, 13]  # 4 direction changes of 3 (30% of the median 11.5)
    reason = det.check(loss(zigzag))
    assert reason is not None and reason.code == "oscillation" and reason.index == 5
    noise = [10, 10.3, 10, 10.3, 10, 10.3]  # same pattern, 3% swings
    assert det.check(loss(noise)) is None


def test_oscillation_a_descent_with_one_spike_is_not_oscillation() -> None:
    det = OscillationDetector()
    assert det.check(loss([10, 9, 8, 16, 7, 6.5, 6, 5.8])) is None


# --- plateau -----------------------------------------------------------------------------


def test_plateau_fires_on_a_flat_run_but_not_on_a_converged_one() -> None:
    det = PlateauDetector(window=3, min_improvement=0.02, warmup=4, min_progress=0.25)
    flat = [10, 9.9, 9.9, 9.9, 9.9, 9.9]
    reason = det.check(loss(flat))
    # at report 4: best 9.9 vs best 3 reports earlier (9.9): 0% < 2%
    assert reason is not None and reason.code == "plateau" and reason.index == 4
    converged = [10, 5, 4, 4, 4, 4, 4]  # flat too, but 60% better than its start
    assert det.check(loss(converged)) is None
    no_exemption = PlateauDetector(window=3, warmup=4, min_progress=None)
    assert no_exemption.check(loss(converged)) is not None


def test_plateau_max_mode() -> None:
    det = PlateauDetector("val/map", mode="max", window=2, warmup=2, min_progress=None)
    reason = det.check(h("val/map", [0.10, 0.20, 0.201, 0.2015]))
    assert reason is not None and reason.index == 3


# --- collapse ----------------------------------------------------------------------------


def test_collapse_floor_counts_evaluations_not_reports() -> None:
    det = CollapseDetector(floor=0.02, min_evals=3, drop=None)
    history = h("val/map", [0.01, None, 0.01, None, 0.01])
    reason = det.check(history)
    assert reason is not None and reason.index == 4 and "after 3 evaluations" in reason.detail


def test_collapse_floor_needs_persistence() -> None:
    # below the floor at evaluation 3, but the two before it were not: a slow starter's
    # first rise wobbling, not a dead run
    det = CollapseDetector(floor=0.02, min_evals=3, patience=3, drop=None)
    assert det.check(h("val/map", [0.0, 0.03, 0.01])) is None
    reason = det.check(h("val/map", [0.0, 0.03, 0.01, 0.01, 0.015]))
    assert reason is not None and reason.index == 4 and "3 evaluations in a row" in reason.detail


def test_collapse_floor_spares_a_run_whose_loss_still_falls() -> None:
    """mAP below the floor from evaluation 3 on (patience 3); the floor counts only when
    the loss after the streak's first report is not 2% below its lowest up to it. Falling
    12, 10, 10, 9, 8: at report 3 min(10, 9) = 9 < 0.98 x 10, spared every time; flat
    12, 10, 10, 9.9, 9.85: at report 3 (index) min(10, 9.9) = 9.9 > 9.8: dead there."""
    det = CollapseDetector(floor=0.02, min_evals=3, patience=3, drop=None)
    maps = [0.01, 0.01, 0.01, 0.01, 0.01]

    def runs(losses: list[float]) -> list[dict[str, float]]:
        return [{"val/map": m, "train/loss": v} for m, v in zip(maps, losses, strict=True)]

    assert det.check(runs([12.0, 10.0, 10.0, 9.0, 8.0])) is None
    reason = det.check(runs([12.0, 10.0, 10.0, 9.9, 9.85]))
    assert reason is not None and reason.index == 3, reason
    assert reason.detail.endswith("after 4 evaluations, train/loss no longer falling")
    # without a loss to look at (or with loss: null), the metric alone decides
    bare = CollapseDetector(floor=0.02, min_evals=3, patience=3, drop=None, loss=None)
    assert bare.check(runs([12.0, 10.0, 10.0, 9.0, 8.0])) is not None


def test_collapse_drop_from_best_raw_values() -> None:
    # window 1, noise 0: the raw-value rule
    det = CollapseDetector(floor=None, drop=0.5, min_best=0.05, window=1, noise=0)
    reason = det.check(h("val/map", [0.1, 0.3, 0.2, 0.14]))
    assert reason is not None and reason.index == 3  # 0.14 < 0.5 x 0.3
    # a fall from a best below min_best is noise
    assert det.check(h("val/map", [0.04, 0.01])) is None


def test_collapse_ignores_one_noisy_read_of_a_small_validation_set() -> None:
    # the raw rule stopped this healthy run at report 3: 0.035 < 0.5 x 0.085
    noisy = [0.02, 0.085, 0.035, 0.09, 0.11, 0.07, 0.12, 0.1]
    assert CollapseDetector(floor=None, window=1, noise=0).check(h("val/map", noisy)) is not None
    # medians of 3: 0.035, 0.085, 0.09, 0.09, 0.11, 0.1 never fall by half
    assert CollapseDetector(floor=None).check(h("val/map", noisy)) is None


def test_collapse_drop_of_medians_beyond_the_noise() -> None:
    values = [0.1, 0.2, 0.3, 0.31, 0.3, 0.1, 0.02, 0.01]
    det = CollapseDetector(floor=None, drop=0.5, window=3, noise=4.0)
    reason = det.check(h("val/map", values))
    # medians of 3 from evaluation 3: 0.2, 0.3, 0.3, 0.3, 0.1 (index 6: 0.3, 0.1, 0.02):
    # best 0.3, first reached at evaluation 4, so the noise is that of 0.1, 0.2, 0.3, 0.31:
    # second differences 0 and -0.09, sqrt((0 + 0.0081) / 2 / 6) = 0.026, over their median
    # 0.25: 10.4%; the fall (0.3 - 0.1) / 0.3 = 67% > 4 x 10.4% and 0.1 < 0.5 x 0.3
    assert reason is not None and reason.index == 6
    rel = ((0.0 + 0.09**2) / 2 / 6) ** 0.5 / 0.25
    assert f"{(0.2 / 0.3) / rel:.1f}x its relative noise {rel:.0%}" in reason.detail


# --- AMP skipped steps ---------------------------------------------------------------------


def test_skipped_steps_tolerated_unless_persistent() -> None:
    det = SkippedStepsDetector(max_fraction=0.5, patience=2)
    # fp16 loss scaling skips a few steps while it finds its scale: normal
    assert det.check(h("train/skipped_frac", [0.2, 0.6, 0.1, 0.0])) is None
    reason = det.check(h("train/skipped_frac", [0.1, 0.6, 0.9]))
    assert reason is not None and reason.code == "amp_overflow" and reason.index == 2


# --- combinator, config, validation ------------------------------------------------------


def test_any_of_picks_the_earliest_and_breaks_ties_in_order() -> None:
    history = [{"train/loss": 1.0}, {"train/loss": math.nan}]
    a = NonfiniteDetector(code="first")
    b = NonfiniteDetector(code="second")
    reason = AnyOf([b, a]).check(history)
    assert reason is not None and reason.code == "second"
    assert AnyOf([]).check(history) is None


def test_config_bool_shorthand_and_disable() -> None:
    cfg = DivergenceConfig.model_validate({"spike": False, "nonfinite": True})
    assert "spike" not in cfg.enabled() and "nonfinite" in cfg.enabled()
    det = build_rules(cfg)
    assert isinstance(det, AnyOf)
    assert not any(isinstance(d, SpikeDetector) for d in det.detectors)


def test_config_rejects_unknown_rule_and_bad_threshold() -> None:
    with pytest.raises(ValidationError, match="spikes"):
        DivergenceConfig.model_validate({"spikes": {"factor": 3}})
    with pytest.raises(ValidationError, match="greater than 1"):
        DivergenceConfig.model_validate({"spike": {"factor": 0.5}})


def test_collapse_metric_follows_a_maximised_objective() -> None:
    det = build_rules(DivergenceConfig(), ("val/map_50", "max"))
    assert isinstance(det, AnyOf)
    (collapse,) = [d for d in det.detectors if isinstance(d, CollapseDetector)]
    assert collapse.metric == "val/map_50"
    det = build_rules(DivergenceConfig(), ("val/loss_raw", "min"))
    assert isinstance(det, AnyOf)
    (collapse,) = [d for d in det.detectors if isinstance(d, CollapseDetector)]
    assert collapse.metric == "val/map"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SpikeDetector(factor=1.0), "spike: factor must be a finite number > 1"),
        (lambda: OscillationDetector(window=2), "oscillation: window must be a whole number"),
        (lambda: CollapseDetector(drop=1.5), "collapse: drop must be in"),
        (lambda: NonfiniteDetector([]), "nonfinite: metrics must be"),
    ],
)
def test_bad_arguments_name_rule_argument_and_value(make, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        make()


# --- the defaults on the generated curve set ---------------------------------------------


def _curves() -> list[dict]:  # type: ignore[type-arg]
    with CURVES.open() as f:
        return [json.loads(line) for line in f]


def test_defaults_on_generated_curves_recall_and_no_top_false_stops() -> None:
    trials = _curves()
    det = build_rules(DivergenceConfig(), ("val/map", "max"))
    diverged = [t for t in trials if t["label"] == "diverged"]
    healthy = [t for t in trials if t["label"] == "healthy"]
    assert len(diverged) >= 50 and len(healthy) >= 50

    caught = [t for t in diverged if det.check(t["history"]) is not None]
    assert len(caught) / len(diverged) >= 0.95

    def final_map(t: dict) -> float:  # type: ignore[type-arg]
        values = [r["val/map"] for r in t["history"] if "val/map" in r]
        return values[-1]

    ranked = sorted(healthy, key=final_map, reverse=True)
    top = ranked[: max(3, len(ranked) // 10)]
    assert [t["trial"] for t in top if det.check(t["history"]) is not None] == []
    false_stops = [t for t in healthy if det.check(t["history"]) is not None]
    assert len(false_stops) / len(healthy) <= 0.05


def test_nan_is_caught_at_the_first_nan_report() -> None:
    det = build_rules(DivergenceConfig())
    for t in _curves():
        if t["family"] == "nan":
            reason = det.check(t["history"])
            assert reason is not None and reason.index == t["onset"], t["trial"]
