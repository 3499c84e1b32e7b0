"""The ``ram`` task: multi-label image tagging with RAM's losses (ASL + feature distillation)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from orchestrator.losses import asymmetric_loss, embedding_l1_loss
from orchestrator.tasks.base import LossOutput
from orchestrator.tasks.ram.config import (
    COMPONENTS,
    VAL_METRICS,
    RamFolderData,
    RamLossConfig,
    RamSyntheticData,
    RamTaskConfig,
)
from orchestrator.tasks.ram.dataset import TagFolder, collate_tags
from orchestrator.tasks.ram.metrics import f1_at, mean_average_precision
from orchestrator.tasks.ram.model import TagNet, Teacher
from orchestrator.tasks.ram.synthetic import ensure_synthetic
from orchestrator.tasks.ram.tags_file import read_groups, read_tags, vocabulary


class RamTask:
    """A small conv tagger trained with ASL on the tags, L1 distillation of a frozen
    teacher's embedding, and an optional ASL term on coarse tags (implements ``Task``)."""

    val_metrics: ClassVar[tuple[str, ...]] = VAL_METRICS
    components: ClassVar[tuple[str, ...]] = COMPONENTS

    def __init__(
        self, config: RamTaskConfig, loss: RamLossConfig, *, seed: int, data_root: Path
    ) -> None:
        self.config = config
        self.loss_config = loss
        self.seed = seed
        self.data_root = Path(data_root)

    @cached_property
    def folder(self) -> RamFolderData:
        """Where the data lives (synthetic data is generated here if missing)."""
        data = self.config.data
        if isinstance(data, RamSyntheticData):
            # normally written by prepare_data already; generation is atomic, so a trial
            # that finds it missing can safely write it too
            return ensure_synthetic(self.data_root, data)
        return data

    @cached_property
    def vocabulary(self) -> list[str]:
        """The tags the model predicts: every tag of the training file, sorted."""
        return vocabulary(read_tags(self.folder.train_tags))

    @cached_property
    def groups(self) -> dict[str, str] | None:
        """``{tag: coarse tag}``, or None without a groups file."""
        return read_groups(self.folder.groups) if self.folder.groups else None

    @cached_property
    def teacher(self) -> Teacher:
        """The frozen teacher (random and seeded, or the configured checkpoint)."""
        return Teacher(self.config.teacher, self.folder.image_size)

    def build_model(self) -> torch.nn.Module:
        """A freshly initialised :class:`TagNet`, seeded."""
        num_coarse = len(set(self.groups.values())) if self.groups else 0
        dim = self.teacher.dim  # built first: its own seeding must not shift the student's
        torch.manual_seed(self.seed)
        return TagNet(self.config.model, len(self.vocabulary), num_coarse, dim)

    def datasets(self) -> tuple[Dataset[Any], Dataset[Any]]:
        """``(train, val)`` :class:`TagFolder` datasets over the training vocabulary."""
        f = self.folder
        train = TagFolder(f.train_images, f.train_tags, f.image_size, self.vocabulary, self.groups)
        val = TagFolder(f.val_images, f.val_tags, f.image_size, self.vocabulary, self.groups)
        return train, val

    def collate(self, samples: list[Any]) -> Any:
        """``{"pixel_values", "tags", "coarse"}`` tensors."""
        return collate_tags(samples)

    def loss(self, model: torch.nn.Module, batch: Any) -> LossOutput:
        """Forward in training mode; the three unweighted terms and their fixed weights."""
        model.train()
        pixels = batch["pixel_values"]
        out = model(pixels)
        cfg = self.loss_config
        asl = cfg.asl.model_dump()
        terms = {
            "tag": asymmetric_loss(out.logits, batch["tags"], reduction=cfg.reduction, **asl),
            "distill": embedding_l1_loss(out.embedding, self.teacher(pixels), cfg.reduction),
            "coarse": (
                asymmetric_loss(out.coarse_logits, batch["coarse"], reduction=cfg.reduction, **asl)
                if out.coarse_logits.shape[1]
                else out.logits.new_zeros(())
            ),
        }
        weights = cfg.weight.model_dump()
        if weights["coarse"] > 0 and not out.coarse_logits.shape[1]:
            raise ValueError(
                "loss.weight.coarse > 0 needs coarse tags: give task.data.groups "
                "(a JSON {tag: coarse tag}) or set the weight to 0"
            )
        return LossOutput.weighted_sum(terms, weights, cfg.reduction)

    def evaluate(self, model: torch.nn.Module, loader: DataLoader[Any]) -> dict[str, float]:
        """mAP over the tags with validation positives, and overall P/R/F1 at the
        configured threshold."""
        was_training = model.training
        model.eval()
        scores, labels = [], []
        device = next(model.parameters()).device
        try:
            with torch.no_grad():
                for batch in loader:
                    logits = model(batch["pixel_values"].to(device)).logits
                    scores.append(torch.sigmoid(logits.float()).cpu().numpy())
                    labels.append(batch["tags"].numpy())
        finally:
            model.train(was_training)
        all_scores, all_labels = np.concatenate(scores), np.concatenate(labels)
        decisions = f1_at(all_scores, all_labels, self.config.threshold)
        return {
            "val/map": mean_average_precision(all_scores, all_labels),
            "val/f1": decisions["f1"],
            "val/precision": decisions["precision"],
            "val/recall": decisions["recall"],
        }
