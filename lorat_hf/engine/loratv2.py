"""The LoRATv2 tracking backend: a KV cache per target, search-only steps, phase 2's dynamic reference region.

* `initialize_targets`: the registers + template chunk runs once per target (batched) and its keys/values stay in
  `state.extras["kv_cache"]` (a one-row `Loratv2KVCache`).
* `after_initialize` (phase 2): the reference region (search region 0: 224 px, context 4) is filled from the first
  frame around the initial box.
* `search`: the last search region (phase 1: 224 px / 4; phase 2: 378 px / 5) runs over the targets' caches, stacked.
* `after_step` (phase 2): a frame tracked with confidence strictly above `config.reference_update_threshold` (0.9)
  becomes the new reference: it is cropped around the accepted box as region 0 and re-encoded into that slot. The
  template chunk is never refreshed.

The official phase-2 evaluation pipeline at commit 5260744 cannot run (it swaps the region indices and crashes on the
first frame); this is the protocol its model and training layout imply (`docs/architecture.md`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..modeling_loratv2 import Loratv2KVCache
from .backends import TrackingBackend, _autocast, model_device_and_dtype
from .state import TargetState, TrackResult

KV_CACHE = "kv_cache"


def should_update_reference(score: float, state_updated: bool, threshold: float) -> bool:
    """Phase 2's rule: refresh the reference region when the confidence is strictly above `threshold` and the
    prediction was accepted (a valid box inside the frame)."""
    return bool(state_updated) and float(score) > float(threshold)


class Loratv2Backend(TrackingBackend):
    """LoRATv2 in PyTorch over a per-target KV cache.

    Args:
        model: a `Loratv2Model` (merged streams: no LoRA cost) or a PeftModel around one (adapters applied unmerged).
        autocast_dtype: float16 / bfloat16 to run under autocast, None for the weights' dtype.
        max_batch_size: split each step into chunks of at most this many targets (None: one call).
    """

    clip_reported_boxes = False  # the official LoRATv2 pipeline reports the box as predicted

    def __init__(self, model: nn.Module, autocast_dtype: torch.dtype | None = None, max_batch_size: int | None = None):
        network = model.get_base_model() if hasattr(model, "get_base_model") else model
        self._bind(model, network, *model_device_and_dtype(model), autocast_dtype, max_batch_size)

    def _bind(self, model, network, device, weight_dtype, autocast_dtype, max_batch_size) -> None:
        """Set the backend's attributes; `network` is anything with `Loratv2Model`'s streaming API (`new_kv_cache`,
        `init_template`, `update_region`, `track_region`), e.g. the ONNX Runtime graphs of an export folder."""
        self.model = model
        self.network = network
        self.config = network.config
        if self.config.num_search_regions > 2:
            raise ValueError(
                f"Tracking supports one or two search regions (phase 1 / phase 2); this model has "
                f"{self.config.num_search_regions}."
            )
        self.device, self.weight_dtype = device, weight_dtype
        self.autocast_dtype = autocast_dtype
        self.max_batch_size = max_batch_size
        self.tracked_region = self.config.num_search_regions - 1

    @property
    def has_reference_region(self) -> bool:
        return self.config.num_search_regions > 1

    def reference_image_processor(self, processor):
        """The crop geometry of the reference region (search region 0), sharing `processor`'s other settings."""
        return type(processor).from_tracker_config(
            self.config,
            search_size=self.config.search_sizes[0],
            search_area_factor=self.config.search_area_factors[0],
            image_mean=processor.image_mean,
            image_std=processor.image_std,
        )

    def _chunks(self, count: int) -> list[slice]:
        step = self.max_batch_size or count
        return [slice(start, start + step) for start in range(0, count, step)]

    def initialize_targets(self, states: Sequence[TargetState]) -> None:
        templates = torch.stack([s.template_pixel_values for s in states]).to(self.device, self.weight_dtype)
        token_types = torch.stack([s.template_token_type_ids for s in states]).to(self.device)
        for part in self._chunks(len(states)):
            cache = self.network.new_kv_cache(len(templates[part]), dtype=self.weight_dtype)
            with _autocast(self.device, self.autocast_dtype):
                self.network.init_template(templates[part], cache, token_types[part])
            for row, state in enumerate(states[part]):
                state.extras[KV_CACHE] = cache.rows([row])

    def after_initialize(self, states: Sequence[TargetState], frames: Sequence[np.ndarray], processor) -> None:
        if self.has_reference_region:
            self._update_reference(states, frames, [s.init_box_xyxy for s in states], processor)

    def search(
        self, states: Sequence[TargetState], search_pixel_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = search_pixel_values.to(self.device, self.weight_dtype)
        score_maps, boxes = [], []
        for part in self._chunks(len(states)):
            cache = _stacked_cache(states[part])
            with _autocast(self.device, self.autocast_dtype):
                output = self.network.track_region(self.tracked_region, pixels[part], cache)
            score_maps.append(output.score_map.float())
            boxes.append(output.pred_boxes.float())
        return torch.cat(score_maps), torch.cat(boxes)

    def after_step(
        self, states: Sequence[TargetState], frames: Sequence[np.ndarray], results: Sequence[TrackResult], processor
    ) -> None:
        if not self.has_reference_region:
            return
        threshold = self.config.reference_update_threshold
        chosen = [
            i
            for i, (s, r) in enumerate(zip(states, results, strict=True))
            if should_update_reference(r.score, r.state_updated, threshold)
        ]
        if chosen:
            self._update_reference(
                [states[i] for i in chosen],
                [frames[i] for i in chosen],
                [states[i].box_xyxy for i in chosen],
                processor,
            )

    def _update_reference(self, states, frames, boxes, processor) -> None:
        """Crop each frame around its box as search region 0 and encode it into that region's cache slot."""
        reference = self.reference_image_processor(processor)
        crops = torch.stack(
            [
                reference.prepare_search(frame, box, state.padding_color).pixel_values
                for state, frame, box in zip(states, frames, boxes, strict=True)
            ]
        ).to(self.device, self.weight_dtype)
        for part in self._chunks(len(states)):
            part_states = states[part]
            cache = _stacked_cache(part_states)
            with _autocast(self.device, self.autocast_dtype):
                self.network.update_region(0, crops[part], cache)
            for row, state in enumerate(part_states):
                state.extras[KV_CACHE] = cache.rows([row])

    def release_targets(self, states: Sequence[TargetState]) -> None:
        for state in states:
            state.extras.pop(KV_CACHE, None)


def _stacked_cache(states: Sequence[TargetState]) -> Loratv2KVCache:
    """The states' cache rows stacked into a new cache (a copy: the states' own caches are never written here)."""
    return Loratv2KVCache.cat([state.extras[KV_CACHE] for state in states])


__all__ = ["Loratv2Backend", "should_update_reference"]
