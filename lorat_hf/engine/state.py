"""What the engine keeps about each target between frames, and what one step returns."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class TargetState:
    """Everything kept about one target between frames.

    The engine owns the generic fields; a model family's backend keeps whatever else it needs between frames in
    `extras` (a KV-cache row, a second reference template, ...), written by its `initialize_targets` / `after_step`.

    Args:
        object_id: the caller's id of the target (any hashable).
        template_pixel_values: `(3, Hz, Wz)` normalised template crop (float32, on the backend's device).
        template_token_type_ids: `(zH, zW)` int64 template token types (1 = foreground), on the backend's device.
        padding_color: `(3,)` float32 mean colour (0..255) of the template frame, used to pad every search crop.
        box_xyxy: `(4,)` float64 last accepted box in frame pixels: the centre of the next search crop.
        frame_size_wh: `(width, height)` of the last frame seen.
        init_box_xyxy: `(4,)` float64 box the target was initialised with.
        score: confidence of the last prediction (1.0 right after initialisation).
        num_tracked_frames: frames tracked since initialisation.
        extras: model-family state, keyed by name (empty for LoRAT).
    """

    object_id: Hashable
    template_pixel_values: torch.Tensor
    template_token_type_ids: torch.Tensor
    padding_color: torch.Tensor
    box_xyxy: np.ndarray
    frame_size_wh: tuple[int, int]
    init_box_xyxy: np.ndarray
    score: float = 1.0
    num_tracked_frames: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackResult:
    """The prediction for one target on one frame.

    Args:
        object_id: the target's id.
        box_xyxy: `(4,)` float64 predicted box in frame pixels, what the family's official pipeline records: clipped to
            the frame for LoRAT, as predicted for LoRATv2 (`TrackingBackend.clip_reported_boxes`).
        score: confidence: the un-penalised sigmoid score of the selected cell, in `[0, 1]`.
        state_updated: whether the box was valid and inside the frame, and so became the next search centre.
        box_search_px: `(4,)` float32 predicted box in search-crop pixels (before mapping back).
        best_index: flat index `row * W + col` of the selected response cell.
        search_params: `(2, 2)` float64 pixel-aligned search-crop map `[[sx, sy], [tx, ty]]` (crop = frame * s + t).
    """

    object_id: Hashable
    box_xyxy: np.ndarray
    score: float
    state_updated: bool
    box_search_px: np.ndarray
    best_index: int
    search_params: np.ndarray


__all__ = ["TargetState", "TrackResult"]
