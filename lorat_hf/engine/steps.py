"""The batched tracking engine: start targets, then advance any set of them one frame with one batched forward.

* `initialize_targets(model, processor, frames, boxes_xyxy, object_ids)` crops each target's template once (context
  2.0, frame-mean padding) with its foreground token types, returns one `TargetState` per target and lets the backend
  run its template step;
* `track_step(model, processor, states, frames)` takes N (state, frame) pairs — frames of different videos, or the
  same frame for several objects of one video — crops N search regions around the last boxes (w/h >= 10 px, padded
  with each template frame's mean colour), runs ONE batched search step, decodes with the Hann-penalised argmax, maps
  the boxes back with the inverse of the pixel-aligned crop (float64), clips them to the frame and updates each state
  when its clipped box is valid and intersects the frame. The template is never updated by the engine.

`model` is a tracker model (PyTorch backend chosen by `config.model_type`) or any `TrackingBackend`.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence

import numpy as np
import torch
from torch import nn

from ..boxes import boxes_are_valid, boxes_intersect_image, check_init_box, clip_boxes_to_image
from ..video_io import FrameInput, frame_to_rgb
from .backends import TrackingBackend, get_backend
from .state import TargetState, TrackResult

logger = logging.getLogger(__name__)

HALF_DTYPES = (torch.float16, torch.bfloat16)


def default_image_processor(model: nn.Module | TrackingBackend):
    """The image processor described by a tracker's config (crop sizes, factors, window penalty)."""
    return get_backend(model).default_image_processor()


def check_processor_matches(model: nn.Module | TrackingBackend, processor) -> None:
    """Raise a `ValueError` when the image processor's crop sizes or patch size differ from the model's config."""
    get_backend(model).check_image_processor(processor)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` -> CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def parse_compute_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """`None`, `"fp32"`, `"float16"`, `"bf16"`, `torch.bfloat16`, ... -> float32, float16 or bfloat16."""
    if isinstance(dtype, str):
        name = {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32"}.get(dtype, dtype)
        if not isinstance(getattr(torch, name, None), torch.dtype):
            raise ValueError(f"Unknown dtype {dtype!r}; use float32, float16 or bfloat16.")
        dtype = getattr(torch, name)
    if dtype is None:
        return torch.float32
    if dtype != torch.float32 and dtype not in HALF_DTYPES:
        raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}.")
    return dtype


def resolve_autocast_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for a requested compute dtype (`"float16"`, `torch.bfloat16`, ...); None means fp32."""
    dtype = parse_compute_dtype(dtype)
    if dtype == torch.float32:
        return None
    if device.type == "cpu":
        logger.warning("%s autocast on CPU is usually slower than float32 and is not the official setting.", dtype)
    return dtype


def rgb_frames(frames: Sequence[FrameInput]) -> list[np.ndarray]:
    """Convert frames to RGB arrays; a frame object passed for several targets is converted once."""
    converted: dict[int, np.ndarray] = {}
    for frame in frames:
        if id(frame) not in converted:
            converted[id(frame)] = frame_to_rgb(frame)
    return [converted[id(frame)] for frame in frames]


def _checked_targets(
    boxes_xyxy: Sequence[Sequence[float]] | np.ndarray, num_frames: int, object_ids: Sequence[Hashable] | None
) -> tuple[np.ndarray, list[Hashable]]:
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_xyxy must be (num_targets, 4), got shape {boxes.shape}.")
    if num_frames != len(boxes):
        raise ValueError(f"Got {num_frames} frames for {len(boxes)} boxes; pass one frame per target.")
    object_ids = list(range(len(boxes))) if object_ids is None else list(object_ids)
    if len(object_ids) != len(boxes):
        raise ValueError(f"Got {len(object_ids)} object ids for {len(boxes)} boxes.")
    if len(set(object_ids)) != len(object_ids):
        raise ValueError(f"Object ids must be distinct, got {object_ids}.")
    return boxes, object_ids


@torch.inference_mode()
def initialize_targets(
    model: nn.Module | TrackingBackend,
    processor,
    frames: Sequence[FrameInput],
    boxes_xyxy: Sequence[Sequence[float]] | np.ndarray,
    object_ids: Sequence[Hashable] | None = None,
) -> list[TargetState]:
    """Start tracking targets: one template crop per (frame, box) pair, computed once and cached in the state.

    Args:
        model: a tracker model (or a PeftModel around one), or a `TrackingBackend`.
        processor: the image processor (None: built from the model's config).
        frames: one frame per target (the same frame object may be repeated for several objects of one video).
        boxes_xyxy: `(N, 4)` initial boxes, frame pixels, `xyxy`.
        object_ids: N distinct ids (default `0..N-1`).
    Returns:
        N `TargetState`s, in the input order.
    """
    backend = get_backend(model)
    processor = processor or backend.default_image_processor()
    backend.check_image_processor(processor)
    boxes, object_ids = _checked_targets(boxes_xyxy, len(frames), object_ids)
    states = []
    for frame, box, object_id in zip(rgb_frames(frames), boxes, object_ids, strict=True):
        frame_size = (int(frame.shape[1]), int(frame.shape[0]))
        check_init_box(box, frame_size)
        template = processor.prepare_template(frame, box)
        states.append(
            TargetState(
                object_id=object_id,
                template_pixel_values=template.pixel_values.to(backend.device),
                template_token_type_ids=template.token_type_ids.to(backend.device),
                padding_color=template.padding_color,
                box_xyxy=box.copy(),
                frame_size_wh=frame_size,
                init_box_xyxy=box.copy(),
            )
        )
    if states:
        backend.initialize_targets(states)
        backend.after_initialize(states, rgb_frames(frames), processor)
    return states


@torch.inference_mode()
def track_step(
    model: nn.Module | TrackingBackend,
    processor,
    states: Sequence[TargetState],
    frames: Sequence[FrameInput],
    autocast_dtype: torch.dtype | None = None,
    max_batch_size: int | None = None,
) -> list[TrackResult]:
    """Track every target one frame further with ONE batched search step, and update the states in place.

    Args:
        model: a tracker model (or a PeftModel around one) in eval mode, or a `TrackingBackend`.
        processor: the image processor (None: built from the model's config).
        states: N target states (from `initialize_targets`), e.g. from different videos.
        frames: the next frame of each target (the same frame object may serve several targets of one video).
        autocast_dtype: `torch.float16` / `torch.bfloat16` to run the forward under autocast (GPU), None for fp32
            (for a model; a backend carries its own setting).
        max_batch_size: split the forward into chunks of at most this many targets (None: one forward; for a model).
    Returns:
        N `TrackResult`s, in the input order.
    """
    if len(states) != len(frames):
        raise ValueError(f"Got {len(frames)} frames for {len(states)} target states; pass one frame per target.")
    if not states:
        return []
    backend = get_backend(model, autocast_dtype=autocast_dtype, max_batch_size=max_batch_size)
    processor = processor or backend.default_image_processor()
    frames = rgb_frames(frames)
    searches = [
        processor.prepare_search(frame, state.box_xyxy, state.padding_color)
        for frame, state in zip(frames, states, strict=True)
    ]
    score_map, pred_boxes = backend.search(states, torch.stack([search.pixel_values for search in searches]))
    boxes_search_px, confidence, best_index = processor.select_best_cells(score_map.cpu(), pred_boxes.cpu())
    params = np.stack([search.params for search in searches])
    frame_sizes = np.array([(frame.shape[1], frame.shape[0]) for frame in frames], dtype=np.float64)
    mapped = processor.boxes_to_frame(boxes_search_px, params, frame_sizes, clip=False)
    boxes = clip_boxes_to_image(mapped, frame_sizes)
    reported = boxes if backend.clip_reported_boxes else mapped
    accepted = boxes_are_valid(boxes) & boxes_intersect_image(boxes, frame_sizes)

    results = []
    for i, state in enumerate(states):
        state.frame_size_wh = (int(frame_sizes[i, 0]), int(frame_sizes[i, 1]))
        state.score = float(confidence[i])
        state.num_tracked_frames += 1
        if accepted[i]:
            state.box_xyxy = boxes[i].copy()
        results.append(
            TrackResult(
                object_id=state.object_id,
                box_xyxy=reported[i].copy(),
                score=float(confidence[i]),
                state_updated=bool(accepted[i]),
                box_search_px=boxes_search_px[i].numpy(),
                best_index=int(best_index[i]),
                search_params=params[i],
            )
        )
    backend.after_step(states, frames, results, processor)
    return results


def release_targets(model: nn.Module | TrackingBackend, states: Sequence[TargetState]) -> None:
    """Tell the backend these targets are finished (frees per-target resources such as KV-cache rows)."""
    if states:
        get_backend(model).release_targets(states)
