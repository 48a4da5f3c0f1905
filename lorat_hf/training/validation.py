"""Periodic validation during training: the loss on fixed pairs, and a short tracking evaluation (success AUC)."""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from .progress import isolated_rng

logger = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module, dataloader, accelerator, drop_keys: tuple[str, ...] = ("sample_index",)
) -> dict[str, float]:
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


def evaluate_tracking(
    model: torch.nn.Module,
    image_processor,
    sequences,
    autocast_dtype: torch.dtype | None = None,
    max_batch_size: int = 64,
    protocol: str = "ostrack",
    show_progress: bool = False,
) -> dict[str, float]:
    """One-pass evaluation: track every sequence from its first-frame box, then score it with an OPE protocol.

    All sequences advance in lockstep through ONE batched forward per frame index (`lorat_hf.tracking.track_step`),
    each with its own template and state. Predictions are compared with the shipped ground truth
    (`groundtruth_xywh`, with each sequence's `coordinate_offset`), so the numbers equal `lorat-eval`'s for the same
    boxes. Runs in eval mode under `isolated_rng()`; call it on the main process only.

    Args:
        model: the tracker (`LoraTrackerModel` or a PeftModel around one), unwrapped from DDP.
        image_processor: its `LoraTrackerImageProcessor`.
        sequences: rows of the sequence schema (a `datasets.Dataset` from `lorat_hf.data.sequences.load_sequences`).
        autocast_dtype: bf16/fp16 when the frozen weights are stored in that dtype (mixed-precision training).
        max_batch_size: largest forward batch (targets per chunk).
        protocol: `ostrack` (success AUC as OSTrack/LoRAT report it) or `pytracking`.
    Returns:
        `track_success_auc`, `track_precision`, `track_normalized_precision` (percent) and `track_num_sequences`.
    """
    from ..data.sequences import iter_sequences
    from ..evaluation.protocols import SequenceData, evaluate_sequences
    from ..tracking import initialize_targets, track_step

    tracks = list(iter_sequences(sequences))
    if not tracks:
        raise ValueError("No sequences to track.")
    was_training = model.training
    model.eval()
    try:
        with isolated_rng():
            states = initialize_targets(
                model,
                image_processor,
                [t.frame(0) for t in tracks],
                [t.boxes_xyxy[0] for t in tracks],
                list(range(len(tracks))),
            )
            predictions = [np.full((len(t), 4), np.nan) for t in tracks]
            for index, track in enumerate(tracks):
                predictions[index][0] = track.boxes_xyxy[0]
            longest = max(len(t) for t in tracks)
            for frame_index in tqdm(range(1, longest), desc="Tracking", disable=not show_progress, leave=False):
                active = [i for i, t in enumerate(tracks) if frame_index < len(t)]
                results = track_step(
                    model,
                    image_processor,
                    [states[i] for i in active],
                    [tracks[i].frame(frame_index) for i in active],
                    autocast_dtype=autocast_dtype,
                    max_batch_size=max_batch_size,
                )
                for i, result in zip(active, results, strict=True):
                    predictions[i][frame_index] = result.box_xyxy
    finally:
        model.train(was_training)
    scored = []
    for track, boxes in zip(tracks, predictions, strict=True):
        xywh = boxes.copy()
        xywh[:, 2:] -= xywh[:, :2]
        xywh[:, :2] += track.coordinate_offset  # results are written in the benchmark's own convention
        scored.append(SequenceData(track.name, track.groundtruth_xywh, [xywh], visible=track.visible))
    report = evaluate_sequences(protocol, scored, dataset=tracks[0].dataset)
    metrics = {
        f"track_{key}": float(report.metrics[key]) for key in ("success_auc", "precision", "normalized_precision")
    }
    metrics["track_num_sequences"] = float(report.num_sequences)
    return metrics
