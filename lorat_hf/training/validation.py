"""Periodic validation during training: the loss on fixed pairs, and a short tracking evaluation (success AUC)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from .progress import isolated_rng

logger = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, dataloader, accelerator, drop_keys: tuple[str, ...] = ("sample_index",)) -> dict[str, float]:
    """Mean validation loss terms over every batch of every rank.

    Collective: call it on EVERY rank (the criterion averages positives over ranks, and the sums are reduced). The
    dataloader must give each rank the same number of batches (accelerate's `even_batches`, the default). Runs in eval
    mode under `isolated_rng()`, so it never shifts the training RNG. Returns `val_loss`, `val_cls_loss`,
    `val_reg_loss`.
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=accelerator.device)
    try:
        with isolated_rng():
            for batch in dataloader:
                for key in drop_keys:
                    batch.pop(key, None)
                with accelerator.autocast():
                    output = model(**batch)
                terms = output.loss_dict
                totals += torch.stack(
                    [output.loss.detach(), terms["cls_loss"], terms["reg_loss"], torch.ones((), device=totals.device)]
                ).to(totals)
    finally:
        model.train(was_training)
    totals = accelerator.reduce(totals, reduction="sum")
    batches = max(float(totals[3]), 1.0)
    return {
        "val_loss": float(totals[0]) / batches,
        "val_cls_loss": float(totals[1]) / batches,
        "val_reg_loss": float(totals[2]) / batches,
    }


def evaluate_tracking(model: torch.nn.Module, image_processor, sequences, accelerator) -> dict[str, Any]:
    """One-pass tracking of `sequences` (rows of the sequence schema) and their success AUC / precision.

    Uses the batched tracking engine (`lorat_hf.tracking`) and the OPE metrics (`lorat_hf.evaluation`). Main process
    only (call it there, then `wait_for_everyone`); runs under `isolated_rng()` and the accelerator's autocast.
    """
    raise NotImplementedError
