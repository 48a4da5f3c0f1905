"""Inference: the batched tracking engine and the `LoraTracker` facade.

The engine is two functions over independent per-target states, exactly the official LoRAT tracker:

* `initialize_targets(model, processor, frames, boxes_xyxy, object_ids)` crops each target's template once (context
  2.0, frame-mean padding) with its foreground token types and returns one `TargetState` per target;
* `track_step(model, processor, states, frames)` takes N (state, frame) pairs — frames of different videos, or the
  same frame for several objects of one video — crops N search regions around the last boxes (w/h >= 10 px, padded
  with each template frame's mean colour), runs ONE batched forward, decodes with the Hann-penalised argmax, maps the
  boxes back with the inverse of the pixel-aligned crop (float64), clips them to the frame and updates each state when
  its clipped box is valid and intersects the frame. The template is never updated.

`LoraTracker` wraps both for the common "one video, one or a few objects" case:

    tracker = LoraTracker.from_pretrained("path/or/hub-id")
    tracker.init(first_frame, [x, y, w, h])
    for frame in frames:
        box, score = tracker.track(frame)

Frames are `(H, W, 3)` uint8 RGB numpy arrays, PIL images, or uint8 torch tensors `(3, H, W)` / `(H, W, 3)` (RGB;
convert OpenCV's BGR with `cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)`). Boxes are pixels, continuous coordinates.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .adapters import HUB_KWARGS, _resolve_file, load_tracker_model
from .boxes import BOX_FORMATS, boxes_are_valid, boxes_intersect_image, check_init_box, from_xyxy, to_xyxy
from .image_processing_lora_tracker import FrameInput, LoraTrackerImageProcessor, to_rgb_array
from .modeling_lora_tracker import LoraTrackerModel
from .modeling_lora_tracker_fused import fuse_for_inference

logger = logging.getLogger(__name__)

# image processor alone, or nested in a saved LoraTrackerProcessor
PROCESSOR_CONFIG_NAMES = ("preprocessor_config.json", "processor_config.json")
HALF_DTYPES = (torch.float16, torch.bfloat16)


# ----------------------------------------------------------------------------------------------------------------
# Engine
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TargetState:
    """Everything kept about one target between frames.

    Args:
        object_id: the caller's id of the target (any hashable).
        template_pixel_values: `(3, Hz, Wz)` normalised template crop (float32, on the model's device).
        template_token_type_ids: `(zH, zW)` int64 template token types (1 = foreground), on the model's device.
        padding_color: `(3,)` float32 mean colour (0..255) of the template frame, used to pad every search crop.
        box_xyxy: `(4,)` float64 last accepted box in frame pixels: the centre of the next search crop.
        frame_size_wh: `(width, height)` of the last frame seen.
        init_box_xyxy: `(4,)` float64 box the target was initialised with.
        score: confidence of the last prediction (1.0 right after initialisation).
        num_tracked_frames: frames tracked since initialisation.
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


@dataclass
class TrackResult:
    """The prediction for one target on one frame.

    Args:
        object_id: the target's id.
        box_xyxy: `(4,)` float64 predicted box in frame pixels, clipped to the frame (what a benchmark records).
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


def model_device_and_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of a tracker's (or PeftModel's) weights."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.device, parameter.dtype
    return torch.device("cpu"), torch.float32


def tracker_config(model: nn.Module):
    """The `LoraTrackerConfig` of a `LoraTrackerModel` or of a PeftModel wrapping one."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "lora_tracker":
        raise TypeError(
            f"Expected a LoraTrackerModel (or a PeftModel around one), got {type(model).__name__}; load one with "
            "lorat_hf.load_tracker_model(path) or LoraTracker.from_pretrained(path)."
        )
    return config


def check_processor_matches(model: nn.Module, processor: LoraTrackerImageProcessor) -> None:
    """Raise a `ValueError` when the image processor's crop sizes or patch size differ from the model's config."""
    config = tracker_config(model)
    expected = {
        "template_size": config.template_size_wh,
        "search_size": config.search_size_wh,
        "patch_size": config.patch_size,
    }
    actual = {
        "template_size": processor.template_size_wh,
        "search_size": processor.search_size_wh,
        "patch_size": processor.patch_size,
    }
    diffs = [f"{k}: processor {actual[k]} vs model {expected[k]}" for k in expected if actual[k] != expected[k]]
    if diffs:
        raise ValueError(
            "The image processor does not fit the model (" + "; ".join(diffs) + "). Build it with "
            "LoraTrackerImageProcessor.from_tracker_config(model.config)."
        )


def default_image_processor(model: nn.Module) -> LoraTrackerImageProcessor:
    """The image processor described by a tracker's config (crop sizes, factors, window penalty)."""
    return LoraTrackerImageProcessor.from_tracker_config(tracker_config(model))


def frame_to_rgb(frame: FrameInput) -> np.ndarray:
    """A frame as a writable `(H, W, 3)` uint8 RGB array (see `to_rgb_array` for the accepted inputs).

    Read-only arrays (PIL views, `np.frombuffer`) are copied: torch warns when a crop wraps them.
    """
    rgb = to_rgb_array(frame)
    return rgb if rgb.flags.writeable else rgb.copy()


def _rgb_frames(frames: Sequence[FrameInput]) -> list[np.ndarray]:
    """Convert frames to RGB arrays; a frame object passed for several targets is converted once."""
    converted: dict[int, np.ndarray] = {}
    for frame in frames:
        if id(frame) not in converted:
            converted[id(frame)] = frame_to_rgb(frame)
    return [converted[id(frame)] for frame in frames]


def _autocast(device: torch.device, autocast_dtype: torch.dtype | None):
    if autocast_dtype is None or autocast_dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=autocast_dtype)


@torch.inference_mode()
def initialize_targets(
    model: nn.Module,
    processor: LoraTrackerImageProcessor | None,
    frames: Sequence[FrameInput],
    boxes_xyxy: Sequence[Sequence[float]] | np.ndarray,
    object_ids: Sequence[Hashable] | None = None,
) -> list[TargetState]:
    """Start tracking targets: one template crop per (frame, box) pair, computed once and cached in the state.

    Args:
        model: a `LoraTrackerModel` or a PeftModel around one (only its device and config are used here).
        processor: the image processor (None: built from the model's config).
        frames: one frame per target (the same frame object may be repeated for several objects of one video).
        boxes_xyxy: `(N, 4)` initial boxes, frame pixels, `xyxy`.
        object_ids: N distinct ids (default `0..N-1`).
    Returns:
        N `TargetState`s, in the input order.
    """
    processor = processor or default_image_processor(model)
    check_processor_matches(model, processor)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_xyxy must be (num_targets, 4), got shape {boxes.shape}.")
    if len(frames) != len(boxes):
        raise ValueError(f"Got {len(frames)} frames for {len(boxes)} boxes; pass one frame per target.")
    object_ids = list(range(len(boxes))) if object_ids is None else list(object_ids)
    if len(object_ids) != len(boxes):
        raise ValueError(f"Got {len(object_ids)} object ids for {len(boxes)} boxes.")
    if len(set(object_ids)) != len(object_ids):
        raise ValueError(f"Object ids must be distinct, got {object_ids}.")
    device, _ = model_device_and_dtype(model)
    states = []
    for frame, box, object_id in zip(_rgb_frames(frames), boxes, object_ids, strict=True):
        frame_size = (int(frame.shape[1]), int(frame.shape[0]))
        check_init_box(box, frame_size)
        template = processor.prepare_template(frame, box)
        states.append(
            TargetState(
                object_id=object_id,
                template_pixel_values=template.pixel_values.to(device),
                template_token_type_ids=template.token_type_ids.to(device),
                padding_color=template.padding_color,
                box_xyxy=box.copy(),
                frame_size_wh=frame_size,
                init_box_xyxy=box.copy(),
            )
        )
    return states


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


@torch.inference_mode()
def track_step(
    model: nn.Module,
    processor: LoraTrackerImageProcessor | None,
    states: Sequence[TargetState],
    frames: Sequence[FrameInput],
    autocast_dtype: torch.dtype | None = None,
    max_batch_size: int | None = None,
) -> list[TrackResult]:
    """Track every target one frame further with ONE batched forward, and update the states in place.

    Args:
        model: a `LoraTrackerModel` or a PeftModel around one, in eval mode.
        processor: the image processor (None: built from the model's config).
        states: N target states (from `initialize_targets`), e.g. from different videos.
        frames: the next frame of each target (the same frame object may serve several targets of one video).
        autocast_dtype: `torch.float16` / `torch.bfloat16` to run the forward under autocast (GPU), None for fp32.
        max_batch_size: split the forward into chunks of at most this many targets (None: one forward).
    Returns:
        N `TrackResult`s, in the input order.
    """
    if len(states) != len(frames):
        raise ValueError(f"Got {len(frames)} frames for {len(states)} target states; pass one frame per target.")
    if not states:
        return []
    processor = processor or default_image_processor(model)
    rgb_frames = _rgb_frames(frames)
    searches = [
        processor.prepare_search(frame, state.box_xyxy, state.padding_color)
        for frame, state in zip(rgb_frames, states, strict=True)
    ]
    score_map, pred_boxes = run_tracker_forward(
        model,
        torch.stack([state.template_pixel_values for state in states]),
        torch.stack([state.template_token_type_ids for state in states]),
        torch.stack([search.pixel_values for search in searches]),
        autocast_dtype=autocast_dtype,
        max_batch_size=max_batch_size,
    )
    boxes_search_px, confidence, best_index = processor.select_best_cells(score_map.cpu(), pred_boxes.cpu())
    params = np.stack([search.params for search in searches])
    frame_sizes = np.array([(frame.shape[1], frame.shape[0]) for frame in rgb_frames], dtype=np.float64)
    boxes = processor.boxes_to_frame(boxes_search_px, params, frame_sizes)
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
                box_xyxy=boxes[i].copy(),
                score=float(confidence[i]),
                state_updated=bool(accepted[i]),
                box_search_px=boxes_search_px[i].numpy(),
                best_index=int(best_index[i]),
                search_params=params[i],
            )
        )
    return results


# ----------------------------------------------------------------------------------------------------------------
# Facade
# ----------------------------------------------------------------------------------------------------------------


class TrackedFrame(NamedTuple):
    """One frame of `LoraTracker.track_video`.

    `box` / `score` are the (first) target's prediction in the tracker's box format (`score` is 1.0 on the first
    frame, which returns the initial box); `objects` maps every object id to its `(box, score)`; `frame` is the
    `(H, W, 3)` RGB uint8 frame.
    """

    frame_index: int
    frame: np.ndarray
    box: np.ndarray
    score: float
    objects: dict[Hashable, tuple[np.ndarray, float]]


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


class LoraTracker:
    r"""A stateful LoRAT tracker for one video: `init` on the first frame, then `track` each following frame.

    Single object: `init(frame, box)` then `track(frame) -> (box, score)`. Several objects of one video:
    `init(frame, boxes=[...], object_ids=[...])` then `track(frame) -> {object_id: (box, score)}`, all objects in ONE
    batched forward. Boxes are pixels in `box_format` (`"xywh"` by default, or `"xyxy"`) and come back as float64
    numpy arrays `(4,)`; scores are floats in `[0, 1]`.

    Frames: `(H, W, 3)` uint8 RGB numpy arrays, PIL images, or uint8 torch tensors `(3, H, W)` / `(H, W, 3)`, RGB.

    Args:
        model: a `LoraTrackerModel` (merged) or a PeftModel around one.
        image_processor: crops and decoding (None: built from the model's config).
        device: move the model there (None: leave it where it is).
        dtype: compute dtype: None/float32; bfloat16 converts the weights once, in place (`model.to(torch.bfloat16)`:
            on CPUs with bf16 matrix units about 2x faster than float32, where autocast, which re-casts every weight
            on every forward, is slower); float16 runs under autocast with the weights as they are (the official GPU
            setting: fp16 weights can overflow in DINOv2's residual stream).
        box_format: format of the boxes given to and returned by `init`/`track`.
        max_batch_size: largest number of objects per forward (None: all at once).
    """

    def __init__(
        self,
        model: nn.Module,
        image_processor: LoraTrackerImageProcessor | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        box_format: str = "xywh",
        max_batch_size: int | None = None,
    ):
        tracker_config(model)
        if box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
        if device is not None:
            model = model.to(resolve_device(device))
        self.model = model.eval()
        self.image_processor = image_processor or default_image_processor(model)
        check_processor_matches(model, self.image_processor)
        self.device, _ = model_device_and_dtype(model)
        if parse_compute_dtype(dtype) == torch.bfloat16:
            self.model = model.to(torch.bfloat16)
            self.autocast_dtype = None
        else:
            self.autocast_dtype = resolve_autocast_dtype(dtype, self.device)
        self.box_format = box_format
        self.max_batch_size = max_batch_size
        self._states: list[TargetState] = []
        self._single_object = True

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike | None = None,
        merge: bool = True,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        box_format: str = "xywh",
        backbone_name_or_path: str | None = None,
        fuse: bool = True,
        backend: str = "torch",
        **hub_kwargs: Any,
    ) -> LoraTracker:
        """Load a tracker from an adapter folder / Hub repo (peft files + tracker config) or a merged model folder.

        The image processor comes from `preprocessor_config.json` / `processor_config.json` when the folder has one,
        otherwise from the tracker config.

        Args:
            path_or_repo_id: local folder or Hub repo id; None loads the demo tracker embedded in the package
                (`lorat_hf.assets.default_model_path()`, trained on synthetic videos only).
            merge: merge LoRA into the backbone (no inference overhead); False keeps the PeftModel.
            device: where to run (None: CUDA when available, else CPU).
            dtype: compute dtype (see the class docstring).
            box_format: `"xywh"` (default) or `"xyxy"`.
            backbone_name_or_path: DINOv2 to use instead of the one the adapter names.
            fuse: with `merge`, swap the layers for the inference-optimised fused ones
                (`lorat_hf.modeling_lora_tracker_fused.fuse_for_inference`: same outputs, faster).
            backend: `"torch"`, or `"onnxruntime"` / `"onnxruntime-int8"` to run the `model.onnx` /
                `model_int8.onnx` of a folder written by `lorat-export` (CPU, float32 inputs).
            hub_kwargs: `revision`, `cache_dir`, `token`, `local_files_only`, ...
        """
        unknown = sorted(set(hub_kwargs) - set(HUB_KWARGS))
        if unknown:
            raise TypeError(f"Unexpected keyword arguments {unknown}; hub options are {list(HUB_KWARGS)}.")
        if path_or_repo_id is None:
            from .assets import default_model_path

            path_or_repo_id = default_model_path()
        path = os.fspath(path_or_repo_id)
        if backend != "torch":
            from .backend_onnxruntime import BACKENDS, load_onnxruntime_model

            if backend not in BACKENDS:
                raise ValueError(f"Unknown backend {backend!r}; choose one of {BACKENDS}.")
            if parse_compute_dtype(dtype) != torch.float32:
                raise ValueError(f"The {backend} backend runs its exported graph as it is; drop dtype={dtype!r}.")
            model = load_onnxruntime_model(path, backend)
        else:
            model = load_tracker_model(path, merge=merge, backbone_name_or_path=backbone_name_or_path, **hub_kwargs)
            if merge and fuse and isinstance(model, LoraTrackerModel):
                model = fuse_for_inference(model)
        if any(_resolve_file(path, name, dict(hub_kwargs)) is not None for name in PROCESSOR_CONFIG_NAMES):
            image_processor = LoraTrackerImageProcessor.from_pretrained(path, **hub_kwargs)
        else:
            image_processor = default_image_processor(model)
        return cls(model, image_processor, device=resolve_device(device), dtype=dtype, box_format=box_format)

    # ----- state -----
    @property
    def is_initialized(self) -> bool:
        return bool(self._states)

    @property
    def object_ids(self) -> list[Hashable]:
        return [state.object_id for state in self._states]

    @property
    def states(self) -> list[TargetState]:
        """The engine states of the tracked objects (read them, do not modify them)."""
        return list(self._states)

    def reset(self) -> None:
        """Forget every object (call `init` again to start a new video)."""
        self._states = []
        self._single_object = True

    def init(
        self,
        frame: FrameInput,
        box: Sequence[float] | np.ndarray | None = None,
        *,
        boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
        object_ids: Sequence[Hashable] | None = None,
        box_format: str | None = None,
    ) -> None:
        """Start tracking on `frame`: one object with `box`, or several with `boxes` (and optional `object_ids`).

        Replaces anything tracked before. `box_format` overrides the tracker's format from now on.
        """
        if (box is None) == (boxes is None):
            raise ValueError("Pass exactly one of box=[...] (one object) or boxes=[[...], ...] (several objects).")
        if box_format is not None:
            if box_format not in BOX_FORMATS:
                raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
            self.box_format = box_format
        single = box is not None
        user_boxes = np.asarray([box] if single else boxes, dtype=np.float64)
        if user_boxes.ndim != 2 or user_boxes.shape[1] != 4:
            what = "box must be 4 numbers" if single else "boxes must be a list of 4-number boxes"
            raise ValueError(f"{what} ({self.box_format}), got shape {np.asarray(box if single else boxes).shape}.")
        if single and object_ids is not None and len(object_ids) != 1:
            raise ValueError("With a single box, pass at most one object id.")
        rgb = frame_to_rgb(frame)
        boxes_xyxy = to_xyxy(user_boxes, self.box_format)
        for user_box in boxes_xyxy:
            check_init_box(user_box, (rgb.shape[1], rgb.shape[0]), self.box_format)
        self._states = initialize_targets(
            self.model, self.image_processor, [rgb] * len(boxes_xyxy), boxes_xyxy, object_ids
        )
        self._single_object = single

    def track(self, frame: FrameInput) -> tuple[np.ndarray, float] | dict[Hashable, tuple[np.ndarray, float]]:
        """Predict the object(s) on the next frame: `(box, score)`, or `{object_id: (box, score)}` after a
        multi-object `init`. Boxes are float64 `(4,)` in `box_format`, clipped to the frame."""
        if not self._states:
            raise RuntimeError("The tracker has no object: call tracker.init(first_frame, box) before track(frame).")
        rgb = frame_to_rgb(frame)
        results = track_step(
            self.model,
            self.image_processor,
            self._states,
            [rgb] * len(self._states),
            autocast_dtype=self.autocast_dtype,
            max_batch_size=self.max_batch_size,
        )
        outputs = {r.object_id: (from_xyxy(r.box_xyxy, self.box_format), r.score) for r in results}
        return next(iter(outputs.values())) if self._single_object else outputs

    def track_video(
        self,
        video: str | os.PathLike | int | Iterable[FrameInput],
        box: Sequence[float] | np.ndarray | None = None,
        *,
        boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
        object_ids: Sequence[Hashable] | None = None,
        box_format: str | None = None,
        max_frames: int | None = None,
        show_progress: bool = False,
    ) -> Iterator[TrackedFrame]:
        """Track through a whole video, lazily: yields a `TrackedFrame` per frame, starting with the first frame
        (initial box, score 1.0).

        Args:
            video: a video file, a folder of frames, a camera index, a stream URL (read with OpenCV, see
                `lorat_hf.video_io`) or any iterable of frames.
            box / boxes / object_ids / box_format: the first-frame object(s), as in `init`.
            max_frames: stop after this many frames.
            show_progress: show a tqdm progress bar.
        """
        from tqdm.auto import tqdm

        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}.")
        from .video_io import VideoReader

        if isinstance(video, (str, os.PathLike, int)):
            video = VideoReader(video, max_frames=max_frames)
        if isinstance(video, VideoReader):
            total = video.info.num_frames
        else:
            total = len(video) if hasattr(video, "__len__") else None
        if total is not None and max_frames is not None:
            total = min(total, max_frames)
        progress = tqdm(total=total, unit="frame", disable=not show_progress, desc="tracking")
        try:
            for frame_index, frame in enumerate(video):
                if max_frames is not None and frame_index >= max_frames:
                    break
                rgb = frame_to_rgb(frame)
                if frame_index == 0:
                    self.init(rgb, box, boxes=boxes, object_ids=object_ids, box_format=box_format)
                    objects = {s.object_id: (from_xyxy(s.init_box_xyxy, self.box_format), 1.0) for s in self._states}
                else:
                    prediction = self.track(rgb)
                    objects = {self._states[0].object_id: prediction} if self._single_object else prediction
                first_box, first_score = next(iter(objects.values()))
                progress.update(1)
                yield TrackedFrame(frame_index, rgb, first_box, first_score, objects)
        finally:
            progress.close()
            close = getattr(video, "close", None)
            if callable(close):
                close()


__all__ = [
    "LoraTracker",
    "TargetState",
    "TrackResult",
    "TrackedFrame",
    "initialize_targets",
    "track_step",
    "run_tracker_forward",
    "check_processor_matches",
    "default_image_processor",
    "frame_to_rgb",
    "model_device_and_dtype",
]
