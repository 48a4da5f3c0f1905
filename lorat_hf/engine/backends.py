"""Backends: how the engine runs one model family's forward pieces.

The engine (`lorat_hf.engine.steps`) owns the loop: crops, batching, decoding, mapping boxes back, updating states. A
backend owns what differs between model families and runtimes:

* `initialize_targets(states)`: the template / init step, once per new target (LoRAT: nothing, its template crop is
  re-encoded with every search; a KV-cache model encodes the template here and keeps its cache row in
  `state.extras`);
* `search(states, search_pixel_values)`: the batched search step, `(B, 3, Hx, Wx)` -> `score_map (B, H, W)` logits
  and `pred_boxes (B, H, W, 4)` normalised `xyxy`, float32;
* `after_step(states, frames, results, image_processor)`: after each step (e.g. refresh a reference template when the
  confidence is high); `release_targets(states)`: a target is finished (free its cache row).

`get_backend(model)` picks the backend registered for `model.config.model_type` (PyTorch eager); pass a
`TrackingBackend` instance anywhere a model is accepted to use another runtime (ONNX Runtime, ...).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .state import TargetState, TrackResult

# model_type -> "module:Class" of its PyTorch backend, imported on first use
_BACKENDS: dict[str, str] = {
    "lora_tracker": "lorat_hf.engine.backends:LoraTrackerBackend",
    "loratv2": "lorat_hf.engine.loratv2:Loratv2Backend",
}


def model_device_and_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of a tracker's (or PeftModel's) weights."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.device, parameter.dtype
    return torch.device("cpu"), torch.float32


def _autocast(device: torch.device, autocast_dtype: torch.dtype | None):
    if autocast_dtype is None or autocast_dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=autocast_dtype)


class TrackingBackend:
    """Runs a tracker's forward pieces for the engine. Subclass it for a new model family or runtime.

    Attributes:
        config: the model's config (crop sizes, patch size, factors).
        device: where the engine puts template crops and search batches.
    """

    config: Any
    device: torch.device
    # Whether `TrackResult.box_xyxy` is clipped to the frame (LoRAT's official pipeline) or reported as predicted
    # (LoRATv2's); the next search crop is always centred on the clipped box.
    clip_reported_boxes: bool = True

    def default_image_processor(self):
        """The image processor described by the config (crop sizes, factors, window penalty)."""
        from ..image_processing_lora_tracker import LoraTrackerImageProcessor

        return LoraTrackerImageProcessor.from_tracker_config(self.config)

    def check_image_processor(self, processor) -> None:
        """Raise a `ValueError` when the image processor's crop sizes or patch size differ from the config's."""
        names = ("template_size_wh", "search_size_wh", "patch_size")
        diffs = [
            f"{name.removesuffix('_wh')}: processor {getattr(processor, name)} vs model {getattr(self.config, name)}"
            for name in names
            if getattr(processor, name) != getattr(self.config, name)
        ]
        if diffs:
            raise ValueError(
                "The image processor does not fit the model (" + "; ".join(diffs) + "). Build it with "
                f"{type(processor).__name__}.from_tracker_config(model.config)."
            )

    def initialize_targets(self, states: Sequence[TargetState]) -> None:
        """Template step for new targets (their template crops are in the states). Default: nothing to do."""

    def after_initialize(self, states: Sequence[TargetState], frames: Sequence[np.ndarray], processor) -> None:
        """Called once after `initialize_targets` with each target's first frame (RGB) and the image processor, e.g.
        to encode a reference region from it. Default: nothing."""

    def search(
        self, states: Sequence[TargetState], search_pixel_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched search step: `(B, 3, Hx, Wx)` -> `score_map (B, H, W)`, `pred_boxes (B, H, W, 4)`, float32."""
        raise NotImplementedError(f"{type(self).__name__} must implement search().")

    def after_step(
        self, states: Sequence[TargetState], frames: Sequence[np.ndarray], results: Sequence[TrackResult], processor
    ) -> None:
        """Called after each step with the RGB frames and the results (states already updated). Default: nothing."""

    def release_targets(self, states: Sequence[TargetState]) -> None:
        """The targets are finished: free what `initialize_targets` reserved for them. Default: nothing."""


class LoraTrackerBackend(TrackingBackend):
    """LoRAT in PyTorch: one joint forward over the cached template crop and the search crop per step.

    Args:
        model: a `LoraTrackerModel` or a PeftModel around one.
        autocast_dtype: float16 / bfloat16 to run under autocast, None for the weights' dtype.
        max_batch_size: split each forward into chunks of at most this many targets (None: one forward).
    """

    def __init__(self, model: nn.Module, autocast_dtype: torch.dtype | None = None, max_batch_size: int | None = None):
        self.model = model
        self.config = model.config
        self.device, self.weight_dtype = model_device_and_dtype(model)
        self.autocast_dtype = autocast_dtype
        self.max_batch_size = max_batch_size

    def search(
        self, states: Sequence[TargetState], search_pixel_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return run_tracker_forward(
            self.model,
            torch.stack([state.template_pixel_values for state in states]),
            torch.stack([state.template_token_type_ids for state in states]),
            search_pixel_values,
            autocast_dtype=self.autocast_dtype,
            max_batch_size=self.max_batch_size,
        )


def run_tracker_forward(
    model: nn.Module,
    template_pixel_values: torch.Tensor,
    template_token_type_ids: torch.Tensor,
    search_pixel_values: torch.Tensor,
    autocast_dtype: torch.dtype | None = None,
    max_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's forward on a batch (split in chunks of `max_batch_size`), under autocast when asked.

    Returns `score_map (B, H, W)` and `pred_boxes (B, H, W, 4)` as float32 on the model's device.
    """
    device, weight_dtype = model_device_and_dtype(model)
    template_pixel_values = template_pixel_values.to(device=device, dtype=weight_dtype)
    search_pixel_values = search_pixel_values.to(device=device, dtype=weight_dtype)
    template_token_type_ids = template_token_type_ids.to(device)
    chunk = max_batch_size or len(search_pixel_values)
    score_maps, boxes = [], []
    with _autocast(device, autocast_dtype):
        for start in range(0, len(search_pixel_values), chunk):
            part = slice(start, start + chunk)
            output = model(
                template_pixel_values=template_pixel_values[part],
                search_pixel_values=search_pixel_values[part],
                template_token_type_ids=template_token_type_ids[part],
            )
            score_maps.append(output.score_map.float())
            boxes.append(output.pred_boxes.float())
    return torch.cat(score_maps), torch.cat(boxes)


def register_backend(model_type: str, backend: type[TrackingBackend] | str) -> None:
    """Make `get_backend` build `backend(model, autocast_dtype=..., max_batch_size=...)` for `model_type` models.

    `backend` is a class or a lazy `"package.module:ClassName"` reference.
    """
    _BACKENDS[model_type] = backend


def registered_model_types() -> list[str]:
    """The `model_type`s the engine can track with."""
    return sorted(_BACKENDS)


def _backend_class(model_type: str) -> type[TrackingBackend]:
    backend = _BACKENDS[model_type]
    if isinstance(backend, str):
        module_name, class_name = backend.split(":")
        backend = getattr(importlib.import_module(module_name), class_name)
    return backend


def tracker_config(model: nn.Module | TrackingBackend):
    """The config of a tracker model (or of a PeftModel wrapping one, or of a backend)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in _BACKENDS:
        raise TypeError(
            f"Expected a LoraTrackerModel (or a PeftModel around one), got {type(model).__name__}; load one with "
            "lorat_hf.load_tracker_model(path) or LoraTracker.from_pretrained(path)."
        )
    return config


def get_backend(
    model: nn.Module | TrackingBackend, autocast_dtype: torch.dtype | None = None, max_batch_size: int | None = None
) -> TrackingBackend:
    """The backend running `model`: `model` itself when it is a `TrackingBackend` (which then carries its own compute
    settings), else the PyTorch backend registered for its `config.model_type`."""
    if isinstance(model, TrackingBackend):
        return model
    config = tracker_config(model)
    return _backend_class(config.model_type)(model, autocast_dtype=autocast_dtype, max_batch_size=max_batch_size)
