"""Multi-label tagging metrics: macro mAP over tags, and overall F1 at a threshold. numpy only."""

from __future__ import annotations

import numpy as np


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Non-interpolated AP of one tag: ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score
    thresholds, highest first (tied scores enter together, as in scikit-learn's
    ``average_precision_score``); NaN when ``labels`` has no positive."""
    positives = float(labels.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    hits = labels[order].astype(np.float64)
    tp = np.cumsum(hits)
    seen = np.arange(1, len(hits) + 1, dtype=np.float64)
    # the last index of each run of equal scores is where that threshold's counts stand
    last = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(sorted_scores) - 1]
    precision = tp[last] / seen[last]
    recall = tp[last] / positives
    gains = np.diff(np.r_[0.0, recall])
    return float(np.sum(gains * precision))


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro mean of :func:`average_precision` over the tags (columns of ``(N, T)`` arrays)
    that have at least one positive; 0.0 when none has (nothing could be ranked)."""
    values = [average_precision(scores[:, t], labels[:, t]) for t in range(labels.shape[1])]
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else 0.0


def f1_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Overall (micro) precision, recall and F1 of the decisions ``score >= threshold``,
    counted over every (image, tag) pair; a ratio with a zero denominator is 0."""
    predicted = scores >= threshold
    actual = labels > 0
    tp = float(np.sum(predicted & actual))
    fp = float(np.sum(predicted & ~actual))
    fn = float(np.sum(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
