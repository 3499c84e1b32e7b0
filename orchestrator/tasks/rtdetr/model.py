"""Construction of the Hugging Face RT-DETR network: small random presets or a local checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

from orchestrator.tasks.rtdetr.config import RTDetrModelConfig

# Randomly initialised, CPU-sized networks. The backbone is a ResNet-18-style ("basic")
# RTDetrResNet built from its config, so nothing is downloaded.
_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "backbone": {
            "embedding_size": 16,
            "hidden_sizes": [16, 32, 64, 128],
            "depths": [1, 1, 1, 1],
        },
        "d_model": 64,
        "ffn": 128,
        "heads": 4,
        "decoder_layers": 2,
    },
    "small": {
        "backbone": {
            "embedding_size": 32,
            "hidden_sizes": [32, 64, 128, 256],
            "depths": [1, 1, 2, 1],
        },
        "d_model": 128,
        "ffn": 256,
        "heads": 8,
        "decoder_layers": 3,
    },
}


def preset_config(preset: str, *, num_labels: int, num_queries: int) -> RTDetrConfig:
    """The ``RTDetrConfig`` of a named preset (see :data:`_PRESETS`)."""
    spec = _PRESETS[preset]
    # out_indices / num_labels are consumed by PreTrainedConfig's **kwargs, which the
    # dataclass-style signatures do not declare to type checkers
    backbone_extra: dict[str, Any] = {"out_indices": [2, 3, 4]}
    head_extra: dict[str, Any] = {"num_labels": num_labels}
    backbone = RTDetrResNetConfig(**spec["backbone"], layer_type="basic", **backbone_extra)
    d_model = spec["d_model"]
    return RTDetrConfig(
        backbone_config=backbone,
        # channels of backbone stages 2..4, fed to the hybrid encoder
        encoder_in_channels=spec["backbone"]["hidden_sizes"][1:],
        encoder_hidden_dim=d_model,
        d_model=d_model,
        decoder_in_channels=[d_model] * 3,
        encoder_ffn_dim=spec["ffn"],
        decoder_ffn_dim=spec["ffn"],
        encoder_attention_heads=spec["heads"],
        decoder_attention_heads=spec["heads"],
        decoder_layers=spec["decoder_layers"],
        num_queries=num_queries,
        **head_extra,
        # We never pass labels to the model (our criterion computes the loss), so it could
        # not build contrastive denoising queries anyway; 0 also drops the unused embedding.
        num_denoising=0,
        # Trained from scratch: the backbone's batch norms must learn, not stay frozen at
        # the identity as they would for a pretrained backbone.
        freeze_backbone_batch_norms=False,
    )


def build_rtdetr(
    model_cfg: RTDetrModelConfig, num_labels: int, image_size: int
) -> RTDetrForObjectDetection:
    """An ``RTDetrForObjectDetection`` with ``num_labels`` classification logits.

    A preset is randomly initialised (seed torch before calling); a checkpoint is loaded from
    a local ``save_pretrained`` directory, its class heads re-initialised if ``num_labels``
    differs. Anchors are generated from the feature-map sizes at every forward
    (``anchor_image_size`` stays unset), so any ``image_size`` that is a multiple of 32 works
    as long as it yields at least ``num_queries`` anchors.
    """
    if image_size % 32:
        raise ValueError(
            f"image_size must be a multiple of 32 (the deepest stride), got {image_size}"
        )
    # query selection takes the top num_queries of all anchors of the strides 8, 16, 32 maps
    anchors = sum((image_size // stride) ** 2 for stride in (8, 16, 32))
    if model_cfg.num_queries > anchors:
        raise ValueError(
            f"num_queries={model_cfg.num_queries} exceeds the {anchors} anchors of a "
            f"{image_size}x{image_size} image; lower it or raise image_size"
        )
    if model_cfg.checkpoint is not None:
        return _load_checkpoint(Path(model_cfg.checkpoint), num_labels, model_cfg.num_queries)
    assert model_cfg.preset is not None  # guaranteed by RTDetrModelConfig's validator
    config = preset_config(
        model_cfg.preset, num_labels=num_labels, num_queries=model_cfg.num_queries
    )
    model = RTDetrForObjectDetection(config)
    _reset_batch_norms(model)
    return model


def _load_checkpoint(
    directory: Path, num_labels: int, num_queries: int
) -> RTDetrForObjectDetection:
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"model.checkpoint {directory} is not a Hugging Face model directory "
            "(no config.json; expected the output of save_pretrained)"
        )
    model = RTDetrForObjectDetection.from_pretrained(
        str(directory),
        num_labels=num_labels,
        num_queries=num_queries,
        ignore_mismatched_sizes=True,
        local_files_only=True,
    )
    return model


def _reset_batch_norms(model: torch.nn.Module) -> None:
    # transformers initialises RT-DETR's BatchNorm scales from N(0, 0.01), which is harmless
    # when pretrained weights overwrite them but nearly zeroes every encoder/projection
    # activation when training from scratch; use the usual scale 1, shift 0.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_parameters()
