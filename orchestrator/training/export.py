"""A trial's final weights as an MLflow ``pytorch`` model: ``mlflow.pytorch.load_model`` (or
``models:/<sweep>@best``) gives back a module, with a signature and an input example taken
from the validation data, so the registered model says what it expects."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def first_tensor(batch: Any) -> torch.Tensor | None:
    """The batch's model input: the tensor itself, the first of a tuple/list, or the first
    tensor value of a dict (``pixel_values`` of a detection batch)."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, list | tuple):
        return next((b for b in batch if isinstance(b, torch.Tensor)), None)
    if isinstance(batch, dict):
        return next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
    return None


def _numpy(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.detach().cpu().numpy()
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        output = {f.name: getattr(output, f.name) for f in dataclasses.fields(output)}
    if isinstance(output, dict):  # transformers' ModelOutput is one
        arrays = {k: _numpy(v) for k, v in output.items() if isinstance(v, torch.Tensor)}
        return arrays or None
    return None


#: MLflow's default serialisation: ``torch.export`` (loading runs no pickled code)
PT2 = "pt2"


def save_mlflow_model(
    module: torch.nn.Module, example: torch.Tensor | None, out: Path, serialization: str = PT2
) -> bool:
    """Write ``module`` as an MLflow model folder at ``out`` (which must not exist yet).

    ``serialization`` is the task's ``mlflow_format`` (``pt2`` or ``pickle``): a model
    with data-dependent control flow (a detector's NMS / matching) cannot be traced by
    ``torch.export``, and finding that out costs ~15 s per trial on 2 cores, so such a
    task asks for ``pickle`` up front. Best effort: a model whose output MLflow cannot
    describe is saved without an output schema; any failure leaves no folder and returns
    False (the plain ``model.pt`` stays).
    """
    try:
        import mlflow.pytorch
        from mlflow.models import infer_signature

        module = module.cpu().eval()
        signature = input_example = None
        if example is not None:
            example = example[:2].cpu()
            with torch.no_grad():
                output = module(example)
            signature = infer_signature(example.numpy(), _numpy(output))
            input_example = example.numpy()
        # MLflow infers requirements by re-importing the model in a subprocess (~5 s per
        # save on 2 cores); a torch model needs what its flavour always needs
        requirements = mlflow.pytorch.get_default_pip_requirements()
        try:
            mlflow.pytorch.save_model(
                module,
                str(out),
                signature=signature,
                input_example=input_example,
                pip_requirements=requirements,
                serialization_format=serialization,
            )
        except Exception:
            if serialization != PT2:
                raise
            # the default torch.export format cannot trace data-dependent control flow
            # (a detector's NMS loop); the pickled module loads back the same way
            import shutil

            shutil.rmtree(out, ignore_errors=True)
            mlflow.pytorch.save_model(
                module,
                str(out),
                signature=signature,
                input_example=input_example,
                pip_requirements=requirements,
                serialization_format="pickle",
            )
        return True
    except Exception as exc:  # the weights are saved regardless; a flavour is a bonus
        log.warning("could not save an MLflow model flavour: %s", exc)
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        return False
