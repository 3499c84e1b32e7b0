"""The ram task: ASL and distillation by hand, mAP/F1 by hand, the folder loader on files
written here, the synthetic set, and the task's loss output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from orchestrator.losses import asymmetric_loss, embedding_l1_loss
from orchestrator.tasks.ram.config import (
    RamFolderData,
    RamLossConfig,
    RamSyntheticData,
    RamTaskConfig,
    TeacherConfig,
    prepare_data,
)
from orchestrator.tasks.ram.dataset import TagFolder
from orchestrator.tasks.ram.metrics import average_precision, f1_at, mean_average_precision
from orchestrator.tasks.ram.model import Teacher
from orchestrator.tasks.ram.synthetic import ensure_synthetic
from orchestrator.tasks.ram.tags_file import check_folder, read_tags
from orchestrator.tasks.ram.task import RamTask


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ---- asymmetric loss ---------------------------------------------------------------------


def test_asl_by_hand() -> None:
    logits = torch.tensor([[2.0, -1.0, -3.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    gamma_neg, gamma_pos, clip = 2.0, 1.0, 0.1
    p = [_sig(v) for v in (2.0, -1.0, -3.0)]
    positive = (1 - p[0]) ** gamma_pos * -math.log(p[0])
    # negatives: shifted probability p_m = max(p - clip, 0); sigmoid(-3) = 0.047 < clip -> 0
    p_m = max(p[1] - clip, 0.0)
    negative = p_m**gamma_neg * -math.log(1 - p_m)
    got = asymmetric_loss(
        logits, targets, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, reduction="sum"
    )
    assert got.item() == pytest.approx(positive + negative, rel=1e-6)
    mean = asymmetric_loss(
        logits, targets, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, reduction="mean"
    )
    assert mean.item() == pytest.approx((positive + negative) / 3, rel=1e-6)


def test_asl_without_focusing_or_clipping_is_summed_bce() -> None:
    logits = torch.tensor([[0.5, -0.2], [1.5, 0.3]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    got = asymmetric_loss(logits, targets, gamma_neg=0, gamma_pos=0, clip=0, reduction="sum")
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    assert got.item() == pytest.approx(bce.item(), rel=1e-6)


def test_asl_gradient_is_finite_at_saturated_logits() -> None:
    logits = torch.tensor([[40.0, -40.0, 40.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    asymmetric_loss(logits, targets).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_asl_sum_grows_with_the_batch_and_mean_does_not() -> None:
    logits = torch.tensor([[0.3, -0.7, 1.1]])
    targets = torch.tensor([[1.0, 0.0, 1.0]])
    twice = (logits.repeat(2, 1), targets.repeat(2, 1))
    assert asymmetric_loss(*twice).item() == pytest.approx(
        2 * asymmetric_loss(logits, targets).item()
    )
    assert asymmetric_loss(*twice, reduction="mean").item() == pytest.approx(
        asymmetric_loss(logits, targets, reduction="mean").item()
    )


# ---- distillation ------------------------------------------------------------------------


def test_embedding_l1_by_hand_and_the_teacher_gets_no_gradient() -> None:
    student = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    # per-sample means over dims: (1 + 2) / 2 = 1.5 and (1 + 1) / 2 = 1
    assert embedding_l1_loss(student, teacher, "sum").item() == pytest.approx(2.5)
    loss = embedding_l1_loss(student, teacher, "mean")
    assert loss.item() == pytest.approx(1.25)
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None
    torch.testing.assert_close(student.grad, torch.tensor([[0.25, 0.25], [-0.25, -0.25]]))


# ---- metrics -----------------------------------------------------------------------------


def test_average_precision_by_hand() -> None:
    # ranked: pos, neg, pos, neg -> precision at the positives 1/1 and 2/3
    ap = average_precision(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))
    assert ap == pytest.approx((1.0 + 2 / 3) / 2)
    # the only positive ranked last of four
    assert average_precision(np.array([0.4, 0.3, 0.2, 0.1]), np.array([0, 0, 0, 1])) == 0.25
    assert math.isnan(average_precision(np.array([0.5, 0.2]), np.array([0, 0])))


def test_average_precision_takes_tied_scores_together() -> None:
    # threshold 0.5 admits a pos and a neg at once: P = 1/2 at R = 1/2; then P = 2/3 at R = 1
    ap = average_precision(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 1]))
    assert ap == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # the order of the tied pair in the input does not matter
    assert average_precision(np.array([0.5, 0.5, 0.2]), np.array([0, 1, 1])) == pytest.approx(ap)


def test_map_is_the_macro_mean_over_tags_with_positives() -> None:
    scores = np.array([[0.9, 0.1, 0.4], [0.8, 0.2, 0.3], [0.3, 0.3, 0.2], [0.1, 0.4, 0.1]])
    labels = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]])
    # tag 0: (1 + 2/3) / 2; tag 1 has no positive and is left out; tag 2: 1/4
    expected = ((1.0 + 2 / 3) / 2 + 0.25) / 2
    assert mean_average_precision(scores, labels) == pytest.approx(expected)
    assert mean_average_precision(scores, np.zeros_like(labels)) == 0.0


def test_f1_at_threshold_counts_every_image_tag_pair() -> None:
    scores = np.array([[0.9, 0.6, 0.2], [0.4, 0.7, 0.5]])
    labels = np.array([[1, 0, 1], [1, 1, 0]])
    # >= 0.5: predicted (0,0) (0,1) (1,1) (1,2); tp = (0,0) (1,1) = 2, fp = 2, fn = 2
    got = f1_at(scores, labels, 0.5)
    assert got == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    # >= 0.8: only (0,0): precision 1, recall 1/4, f1 = 2 * 0.25 / 1.25
    high = f1_at(scores, labels, 0.8)
    assert high["precision"] == 1.0 and high["recall"] == 0.25
    assert high["f1"] == pytest.approx(0.4)
    assert f1_at(scores, labels, 0.99) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


# ---- folder loader -----------------------------------------------------------------------


def _write_folder(root: Path, tags_format: str = "json") -> RamFolderData:
    images = root / "images"
    images.mkdir(parents=True)
    colours = {"a.png": (255, 0, 0), "b.png": (0, 255, 0), "c.png": (0, 0, 255)}
    for name, rgb in colours.items():
        Image.new("RGB", (20, 10), rgb).save(images / name)
    listing = {"a.png": ["cat", "dog"], "b.png": ["dog", "dog"], "c.png": []}
    if tags_format == "json":
        tags = root / "tags.json"
        tags.write_text(json.dumps(listing))
    else:
        tags = root / "tags.csv"
        tags.write_text("image,tags\na.png,cat|dog\nb.png, dog | dog \nc.png,\n")
    groups = root / "groups.json"
    groups.write_text(json.dumps({"cat": "animal", "dog": "animal"}))
    return RamFolderData(
        kind="folder",
        train_images=str(images),
        train_tags=str(tags),
        val_images=str(images),
        val_tags=str(tags),
        groups=str(groups),
        image_size=16,
    )


@pytest.mark.parametrize("tags_format", ["json", "csv"])
def test_folder_loader_reads_images_tags_and_groups(tmp_path: Path, tags_format: str) -> None:
    data = _write_folder(tmp_path, tags_format)
    assert read_tags(data.train_tags) == {"a.png": ["cat", "dog"], "b.png": ["dog"], "c.png": []}
    check_folder(data)
    dataset = TagFolder(
        data.train_images, data.train_tags, 16, ["cat", "dog"], {"cat": "animal", "dog": "animal"}
    )
    assert len(dataset) == 3
    pixels, tags, coarse = dataset[0]
    assert pixels.shape == (3, 16, 16)
    # a.png is pure red, resized: channel means 1, 0, 0
    torch.testing.assert_close(pixels.mean(dim=(1, 2)), torch.tensor([1.0, 0.0, 0.0]))
    assert tags.tolist() == [1.0, 1.0] and coarse.tolist() == [1.0]
    _, tags_b, _ = dataset[1]
    _, tags_c, coarse_c = dataset[2]
    assert tags_b.tolist() == [0.0, 1.0]
    assert tags_c.tolist() == [0.0, 0.0] and coarse_c.tolist() == [0.0]


def test_folder_loader_ignores_tags_outside_the_vocabulary(tmp_path: Path) -> None:
    data = _write_folder(tmp_path)
    dataset = TagFolder(data.val_images, data.val_tags, 16, ["dog"])
    assert dataset[0][1].tolist() == [1.0] and dataset[0][2].numel() == 0


def test_folder_checks_name_the_key(tmp_path: Path) -> None:
    data = _write_folder(tmp_path)
    (Path(data.train_images) / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"task.data.train_tags: 1 listed images.*b.png"):
        check_folder(data)
    data = _write_folder(tmp_path / "other")
    Path(data.groups or "").write_text(json.dumps({"cat": "animal"}))
    with pytest.raises(ValueError, match=r"task\.data\.groups: .* no coarse tag .*'dog'"):
        check_folder(data)
    with pytest.raises(FileNotFoundError, match=r"task\.data\.val_tags does not exist"):
        check_folder(data.model_copy(update={"val_tags": str(tmp_path / "nope.json")}))


def test_malformed_tag_files_name_the_file_and_row(tmp_path: Path) -> None:
    bad_csv = tmp_path / "t.csv"
    bad_csv.write_text("image,labels\na.png,x\n")
    with pytest.raises(ValueError, match="needs columns 'image' and 'tags'"):
        read_tags(bad_csv)
    bad_csv.write_text("image,tags\na.png,x\na.png,y\n")
    with pytest.raises(ValueError, match=r"t.csv:3: image 'a.png' listed twice"):
        read_tags(bad_csv)
    bad_json = tmp_path / "t.json"
    bad_json.write_text(json.dumps({"a.png": "cat"}))
    with pytest.raises(ValueError, match="tags must be a list of strings"):
        read_tags(bad_json)


# ---- synthetic data ----------------------------------------------------------------------


def test_synthetic_set_is_seeded_multi_label_and_long_tailed(tmp_path: Path) -> None:
    spec = RamSyntheticData(num_train=200, num_val=8, image_size=32, num_tags=30, seed=3)
    folder = ensure_synthetic(tmp_path / "a", spec)
    again = ensure_synthetic(tmp_path / "b", spec)
    listing = read_tags(folder.train_tags)
    assert listing == read_tags(again.train_tags)
    assert Path(folder.train_images, "000001.png").read_bytes() == (
        Path(again.train_images, "000001.png").read_bytes()
    )
    assert len(listing) == 200
    assert np.mean([len(t) for t in listing.values()]) > 1.5  # several tags per image
    counts = sorted(
        (sum(tag in tags for tags in listing.values()) for tag in _all_tags(listing)),
        reverse=True,
    )
    # Zipf(1) over 30 tags: the most common tag is ~10x as frequent as the median one
    assert counts[0] >= 5 * counts[len(counts) // 2]
    groups = json.loads(Path(folder.groups or "").read_text())
    assert groups["red_circle"] == "circle" and len(set(groups.values())) == 6
    check_folder(folder)


def _all_tags(listing: dict[str, list[str]]) -> set[str]:
    return {t for tags in listing.values() for t in tags}


# ---- the task ----------------------------------------------------------------------------


def _task(tmp_path: Path, **loss: object) -> RamTask:
    config = RamTaskConfig.model_validate(
        {"data": {"num_train": 8, "num_val": 4, "image_size": 16, "num_tags": 12}}
    )
    prepare_data(config, tmp_path)
    return RamTask(config, RamLossConfig.model_validate(loss), seed=0, data_root=tmp_path)


def test_task_loss_exposes_the_three_terms_and_sums_over_samples(tmp_path: Path) -> None:
    task = _task(tmp_path, weight={"tag": 1.0, "distill": 10.0, "coarse": 0.5})
    model = task.build_model()
    train, _ = task.datasets()
    one = task.collate([train[0]])
    two = task.collate([train[0], train[0]])
    # a batch of one sample twice has that sample's BatchNorm statistics (biased variance
    # over N x H x W), so each term must exactly double under sum reduction
    out_one, out_two = task.loss(model, one), task.loss(model, two)
    assert set(out_one.terms) == {"tag", "distill", "coarse"}
    assert out_one.weights == {"tag": 1.0, "distill": 10.0, "coarse": 0.5}
    assert out_one.reduction == "sum"
    for name in out_one.terms:
        assert out_two.raw[name].item() == pytest.approx(2 * out_one.raw[name].item(), rel=1e-5)
    expected = out_one.raw["tag"] + 10 * out_one.raw["distill"] + 0.5 * out_one.raw["coarse"]
    assert out_one.total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_task_evaluates_map_and_f1(tmp_path: Path) -> None:
    task = _task(tmp_path)
    _, val = task.datasets()
    loader = torch.utils.data.DataLoader(val, batch_size=2, collate_fn=task.collate)
    metrics = task.evaluate(task.build_model(), loader)
    assert set(metrics) == set(task.val_metrics)
    assert 0.0 < metrics["val/map"] <= 1.0 and 0.0 <= metrics["val/f1"] <= 1.0


def test_the_model_and_the_random_teacher_are_seeded(tmp_path: Path) -> None:
    a, b = _task(tmp_path), _task(tmp_path)
    for pa, pb in zip(a.build_model().parameters(), b.build_model().parameters(), strict=True):
        assert torch.equal(pa, pb)
    pixels = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(a.teacher(pixels), b.teacher(pixels))
    other = Teacher(TeacherConfig(seed=2), 16)
    assert not torch.allclose(a.teacher(pixels), other(pixels))


def test_teacher_from_a_local_torch_export_checkpoint(tmp_path: Path) -> None:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(4, 5),
    )  # fmt: skip
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (torch.zeros(2, 3, 16, 16),), dynamic_shapes=({0: batch},))
    path = tmp_path / "teacher.pt2"
    torch.export.save(program, path)
    teacher = Teacher(TeacherConfig(checkpoint=str(path), normalize=False), 16)
    assert teacher.dim == 5
    pixels = torch.rand(3, 3, 16, 16)
    torch.testing.assert_close(teacher(pixels), net(pixels))
    config = RamTaskConfig.model_validate({"teacher": {"checkpoint": str(tmp_path / "no.pt2")}})
    with pytest.raises(FileNotFoundError, match=r"task\.teacher\.checkpoint does not exist"):
        prepare_data(config, tmp_path)
