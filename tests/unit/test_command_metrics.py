"""Reading epochs of an external command: field expressions, JSON-lines tails, regexes."""

from __future__ import annotations

import json
import math

import pytest

from orchestrator.tasks.command.metrics import (
    JsonLinesTail,
    MetricMap,
    RegexRecords,
    lookup,
    parse_field,
)


def test_field_expressions():
    assert parse_field("train_loss") == ("train_loss",)
    assert parse_field("test_coco_eval_bbox[1]") == ("test_coco_eval_bbox", 1)
    assert parse_field("stats.bbox[-1][0]") == ("stats", "bbox", -1, 0)
    assert parse_field("coco/bbox_mAP") == ("coco/bbox_mAP",)
    for bad in ["", "[0]", "a[x]", "a..b", "a.", "a[0]b"]:
        with pytest.raises(ValueError, match="not a field expression"):
            parse_field(bad)


def test_lookup_indexes_lists_and_parses_text():
    record = {"stats": [0.25, 0.5], "loss": "nan", "n": {"x": [1, [2, 3]]}, "flag": True}
    assert lookup(record, ("stats", 0)) == 0.25
    assert lookup(record, ("stats", -1)) == 0.5
    assert lookup(record, ("n", "x", 1, 0)) == 2.0
    assert math.isnan(lookup(record, ("loss",)) or 0.0)
    assert lookup(record, ("stats", 2)) is None  # out of range
    assert lookup(record, ("missing",)) is None
    assert lookup(record, ("flag",)) is None  # a bool is not a metric
    assert lookup(record, ("stats",)) is None  # a list is not a number


def test_metric_map_maps_every_record_by_default():
    m = MetricMap({"val/map": "test_coco_eval_bbox[0]", "train/loss": "train_loss"})
    stats = [0.3, 0.5] + [0.0] * 10
    assert m.feed({"test_coco_eval_bbox": stats, "train_loss": 2.0}) == {
        "val/map": 0.3,
        "train/loss": 2.0,
    }
    assert m.feed({"train_loss": 1.5}) == {"train/loss": 1.5}  # what is absent is left out


def test_report_on_merges_intermediate_records_into_the_epoch():
    # MMEngine: training lines every few iterations, then one evaluation line per epoch
    m = MetricMap({"train/loss": "loss", "val/map": "coco/bbox_mAP"}, report_on="coco/bbox_mAP")
    assert m.feed({"loss": 3.0, "step": 50}) is None
    assert m.feed({"loss": 2.0, "step": 100}) is None
    assert m.feed({"coco/bbox_mAP": 0.1, "step": 1}) == {"train/loss": 2.0, "val/map": 0.1}
    # the next epoch starts afresh: no stale loss carried over
    assert m.feed({"coco/bbox_mAP": 0.2, "step": 2}) == {"val/map": 0.2}


def test_json_tail_reads_only_complete_new_lines(tmp_path):
    path = tmp_path / "log.txt"
    tail = JsonLinesTail(str(path))
    assert tail.poll() == []  # not written yet
    with path.open("w") as f:
        f.write(json.dumps({"epoch": 0}) + "\n" + '{"epoch": 1, "train_loss": Na')
    assert tail.poll() == [{"epoch": 0}]
    with path.open("a") as f:
        f.write('N}\nnot json\n[1, 2]\n{"epoch": 2}\n')
    records = tail.poll()
    assert records[0]["epoch"] == 1 and math.isnan(records[0]["train_loss"])
    assert records[1] == {"epoch": 2}
    assert tail.skipped == 2  # a text line and a JSON list are not records
    assert tail.poll() == []


def test_json_tail_follows_the_first_glob_match(tmp_path):
    tail = JsonLinesTail(str(tmp_path / "*" / "vis_data" / "scalars.json"))
    assert tail.poll() == []
    for stamp in ("20250102_000000", "20250101_000000"):
        (tmp_path / stamp / "vis_data").mkdir(parents=True)
        (tmp_path / stamp / "vis_data" / "scalars.json").write_text(f'{{"run": "{stamp}"}}\n')
    assert tail.poll() == [{"run": "20250101_000000"}]


def test_regex_records_are_named_groups_of_matching_lines():
    regex = RegexRecords(r"Epoch (?P<epoch>\d+): loss=(?P<loss>\S+)(?: map=(?P<map>\S+))?")
    assert regex.match("loading data") is None
    assert regex.match("[rank0] Epoch 3: loss=0.5 map=0.25") == {
        "epoch": "3",
        "loss": "0.5",
        "map": "0.25",
    }
    assert regex.match("Epoch 4: loss=nan") == {"epoch": "4", "loss": "nan"}  # no map group
    m = MetricMap({"train/loss": "loss", "val/map": "map"})
    record = regex.match("Epoch 4: loss=nan")
    assert record is not None
    metrics = m.feed(record)
    assert metrics is not None and math.isnan(metrics["train/loss"]) and "val/map" not in metrics
