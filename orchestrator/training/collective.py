"""Votes every rank of a trial takes part in, so all ranks take the same branch."""

from __future__ import annotations

from typing import Any

import torch


def all_agree(accelerator: Any, flag: bool) -> bool:
    """Whether any rank raised ``flag``, the same answer on every rank (an all-reduce)."""
    vote = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(vote, "sum").item() > 0)
