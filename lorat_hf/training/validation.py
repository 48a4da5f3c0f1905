"""Periodic validation during training: the loss on fixed pairs, and a short tracking evaluation (success AUC)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..boxes import xyxy_to_xywh
from ..engine import VideoJob, get_backend, track_videos
from .progress import isolated_rng

logger = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module,
    dataloader,
    accelerator,
    drop_keys: tuple[str, ...] = ("sample_index",),
    forward: Callable[[torch.nn.Module, dict], Any] | None = None,
) -> dict[str, float]:
    """Mean validation loss terms over every batch of every rank.

    Collective: call it on EVERY rank (the criterion averages positives over ranks, and the sums are reduced). The
    dataloader must give each rank the same number of batches (accelerate's `even_batches`, the default). Runs in eval
    mode under `isolated_rng()`, so it never shifts the training RNG. `forward(model, batch)` runs a batch (default
    `model(**batch)`; a model family's `TrainingFamily.forward`). Returns `val_loss`, `val_cls_loss`, `val_reg_loss`.
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
                    output = model(**batch) if forward is None else forward(model, batch)
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

    All sequences advance together through the engine (`lorat_hf.engine.track_videos`), one batched forward per
    frame index (in chunks of `max_batch_size`), each with its own template and state. Predictions are compared with the shipped ground truth
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

    tracks = list(iter_sequences(sequences))
    if not tracks:
        raise ValueError("No sequences to track.")
    jobs = [VideoJob(index, len(t), t.frame, t.boxes_xyxy[0]) for index, t in enumerate(tracks)]
    was_training = model.training
    model.eval()
    predictions: dict[int, np.ndarray] = {}
    try:
        with isolated_rng(), tqdm(total=sum(map(len, tracks)), desc="Tracking", disable=not show_progress) as bar:
            backend = get_backend(model, autocast_dtype=autocast_dtype, max_batch_size=max_batch_size)
            for tracked in track_videos(
                backend, image_processor, jobs, batch_size=len(jobs), num_workers=1, on_frames=bar.update
            ):
                predictions[tracked.key] = tracked.boxes_xyxy
    finally:
        model.train(was_training)
    scored = []
    for index, track in enumerate(tracks):
        xywh = xyxy_to_xywh(predictions[index])
        xywh[:, :2] += track.coordinate_offset  # results are written in the benchmark's own convention
        scored.append(SequenceData(track.name, track.groundtruth_xywh, [xywh], visible=track.visible))
    report = evaluate_sequences(protocol, scored, dataset=tracks[0].dataset)
    metrics = {
        f"track_{key}": float(report.metrics[key]) for key in ("success_auc", "precision", "normalized_precision")
    }
    metrics["track_num_sequences"] = float(report.num_sequences)
    return metrics
