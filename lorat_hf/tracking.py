"""`LoraTracker`: the stateful front door for "one video, one or a few objects", on the tracking engine.

    tracker = LoraTracker.from_pretrained("path/or/hub-id")
    tracker.init(first_frame, [x, y, w, h])
    for frame in frames:
        box, score = tracker.track(frame)

Frames are `(H, W, 3)` uint8 RGB numpy arrays, PIL images, or uint8 torch tensors `(3, H, W)` / `(H, W, 3)` (RGB;
convert OpenCV's BGR with `cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)`). Boxes are pixels, continuous coordinates.

The engine itself (`initialize_targets`, `track_step`, `TargetState`, backends) lives in `lorat_hf.engine`; its
names are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .boxes import BOX_FORMATS, check_init_box, from_xyxy, parse_user_boxes, to_xyxy
from .engine import (
    TargetState,
    TrackingBackend,
    TrackResult,
    check_processor_matches,
    default_image_processor,
    get_backend,
    initialize_targets,
    model_device_and_dtype,
    parse_compute_dtype,
    release_targets,
    resolve_autocast_dtype,
    resolve_device,
    run_tracker_forward,
    track_step,
    tracker_config,
)
from .image_processing_lora_tracker import LoraTrackerImageProcessor
from .modeling_lora_tracker_fused import fuse_for_inference
from .video_io import FrameInput, frame_to_rgb

# image processor alone, or nested in a saved LoraTrackerProcessor
PROCESSOR_CONFIG_NAMES = ("preprocessor_config.json", "processor_config.json")


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


class LoraTracker:
    r"""A stateful LoRAT tracker for one video: `init` on the first frame, then `track` each following frame.

    Single object: `init(frame, box)` then `track(frame) -> (box, score)`. Several objects of one video:
    `init(frame, boxes=[...], object_ids=[...])` then `track(frame) -> {object_id: (box, score)}`, all objects in ONE
    batched forward. Boxes are pixels in `box_format` (`"xywh"` by default, or `"xyxy"`) and come back as float64
    numpy arrays `(4,)`; scores are floats in `[0, 1]`.

    Frames: `(H, W, 3)` uint8 RGB numpy arrays, PIL images, or uint8 torch tensors `(3, H, W)` / `(H, W, 3)`, RGB.

    Args:
        model: a `LoraTrackerModel` (merged) or a PeftModel around one, or a `lorat_hf.engine.TrackingBackend` (which
            carries its own device and compute settings: leave `device`, `dtype` and `max_batch_size` unset).
        image_processor: crops and decoding (None: built from the model's config).
        device: move the model there (None: leave it where it is).
        dtype: compute dtype: None/float32; bfloat16 converts the weights once, in place (`model.to(torch.bfloat16)`:
            on CPUs with bf16 matrix units about 2x faster than float32, where autocast, which re-casts every weight
            on every forward, is slower); float16 runs under autocast with the weights as they are (the official GPU
            setting: fp16 weights can overflow in DINOv2's residual stream).
        box_format: the default format of the boxes given to `init` and returned by `track` (each call may pass its
            own `box_format`, which applies to that call only).
        max_batch_size: largest number of objects per forward (None: all at once).

    Attributes:
        backend: the engine backend running the model (`autocast_dtype` and `max_batch_size` are its settings).
    """

    def __init__(
        self,
        model: nn.Module | TrackingBackend,
        image_processor: LoraTrackerImageProcessor | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        box_format: str = "xywh",
        max_batch_size: int | None = None,
    ):
        if box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
        if isinstance(model, TrackingBackend):
            if (device, dtype, max_batch_size) != (None, None, None):
                raise ValueError("A backend carries its own device, dtype and batch size: do not pass them again.")
            self.backend = model
            self.model = getattr(model, "model", None)
        else:
            tracker_config(model)
            if device is not None:
                model = model.to(resolve_device(device))
            self.model = model.eval()
            if parse_compute_dtype(dtype) == torch.bfloat16:
                self.model, autocast_dtype = model.to(torch.bfloat16), None
            else:
                autocast_dtype = resolve_autocast_dtype(dtype, model_device_and_dtype(model)[0])
            self.backend = get_backend(self.model, autocast_dtype=autocast_dtype, max_batch_size=max_batch_size)
        self.device = self.backend.device
        self.image_processor = image_processor or self.backend.default_image_processor()
        self.backend.check_image_processor(self.image_processor)
        self.box_format = box_format
        self._states: list[TargetState] = []
        self._single_object = True
        self._frame_size_wh: tuple[int, int] | None = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype of the forwards (None: the weights' dtype); settable."""
        return getattr(self.backend, "autocast_dtype", None)

    @autocast_dtype.setter
    def autocast_dtype(self, value: torch.dtype | None) -> None:
        self.backend.autocast_dtype = value

    @property
    def max_batch_size(self) -> int | None:
        """Largest number of objects per forward (None: all at once); settable."""
        return getattr(self.backend, "max_batch_size", None)

    @max_batch_size.setter
    def max_batch_size(self, value: int | None) -> None:
        self.backend.max_batch_size = value

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
        onednn_kernels: bool = False,
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
                `model_int8.onnx` of a local folder written by `lorat-export` (CPU, float32).
            onednn_kernels: with `fuse`, run the fused Linear layers through oneDNN on the CPU: faster where oneDNN's
                GEMM beats MKL's (0.81x the official forward at batch 1 on the AMD CPU of benchmarks/RESULTS.md,
                against 1.02x), equal to the default within float rounding (1e-5), but not bit for bit: the default
                reproduces the official tracking run exactly.
            hub_kwargs: `revision`, `cache_dir`, `token`, `local_files_only`, ...
        """
        from .adapters import HUB_KWARGS, _resolve_file, load_tracker_model  # peft loads with the first model

        unknown = sorted(set(hub_kwargs) - set(HUB_KWARGS))
        if unknown:
            raise TypeError(f"Unexpected keyword arguments {unknown}; hub options are {list(HUB_KWARGS)}.")
        if path_or_repo_id is None:
            from .assets import default_model_path

            path_or_repo_id = default_model_path()
        path = os.fspath(path_or_repo_id)
        if onednn_kernels and not (backend == "torch" and merge and fuse):
            raise ValueError(
                "onednn_kernels=True runs torch's fused layers: it needs backend='torch', merge=True and fuse=True."
            )
        if backend != "torch":
            from .engine.backend_onnxruntime import load_onnxruntime_backend

            if parse_compute_dtype(dtype) != torch.float32 or (
                device is not None and torch.device(device).type != "cpu"
            ):
                raise ValueError(
                    f"The {backend} backend runs its exported graph on the CPU in float32; drop dtype={dtype!r}."
                )
            runtime = load_onnxruntime_backend(path, backend)
            image_processor = LoraTrackerImageProcessor.from_pretrained(path)
            return cls(runtime, image_processor, box_format=box_format)
        model = load_tracker_model(path, merge=merge, backbone_name_or_path=backbone_name_or_path, **hub_kwargs)
        if merge and fuse:
            model = fuse_for_inference(model, onednn_kernels=onednn_kernels)
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
        release_targets(self.backend, self._states)
        self._states = []
        self._single_object = True
        self._frame_size_wh = None

    def _format(self, box_format: str | None) -> str:
        """This call's box format: its own `box_format`, else the tracker's."""
        if box_format is None:
            return self.box_format
        if box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
        return box_format

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

        Replaces anything tracked before. `box_format` is the format of this call's box(es) only (None: the
        tracker's `box_format`, `"xywh"` unless it was built with another).
        """
        if (box is None) == (boxes is None):
            raise ValueError("Pass exactly one of box=[...] (one object) or boxes=[[...], ...] (several objects).")
        box_format = self._format(box_format)
        single = box is not None
        user_boxes = parse_user_boxes(box if single else boxes, box_format, single)
        if single and object_ids is not None and len(object_ids) != 1:
            raise ValueError("With a single box, pass at most one object id.")
        rgb = frame_to_rgb(frame)
        boxes_xyxy = to_xyxy(user_boxes, box_format)
        for user_box, box_xyxy in zip(user_boxes, boxes_xyxy, strict=True):
            check_init_box(box_xyxy, (rgb.shape[1], rgb.shape[0]), box_format, user_box=user_box)
        release_targets(self.backend, self._states)
        self._states = initialize_targets(
            self.backend, self.image_processor, [rgb] * len(boxes_xyxy), boxes_xyxy, object_ids
        )
        self._single_object = single
        self._frame_size_wh = (rgb.shape[1], rgb.shape[0])

    def track(
        self, frame: FrameInput, box_format: str | None = None
    ) -> tuple[np.ndarray, float] | dict[Hashable, tuple[np.ndarray, float]]:
        """Predict the object(s) on the next frame: `(box, score)`, or `{object_id: (box, score)}` after a
        multi-object `init`. Boxes are float64 `(4,)` in this call's `box_format` (None: the tracker's), clipped to
        the frame (LoRAT) or as predicted (LoRATv2, like its official pipeline). Every frame must have the size of the
        frame given to `init` (boxes are pixels of that size)."""
        if not self._states:
            raise RuntimeError("The tracker has no object: call tracker.init(first_frame, box) before track(frame).")
        box_format = self._format(box_format)
        rgb = frame_to_rgb(frame)
        size_wh = (rgb.shape[1], rgb.shape[0])
        if size_wh != self._frame_size_wh:
            raise ValueError(
                f"This frame is {size_wh[0]}x{size_wh[1]} but the tracker was initialised on a "
                f"{self._frame_size_wh[0]}x{self._frame_size_wh[1]} frame, and its boxes are pixels of that size. "
                "Resize every frame to the first frame's size, or call tracker.init again on a frame of the new size."
            )
        results = track_step(self.backend, self.image_processor, self._states, [rgb] * len(self._states))
        outputs = {r.object_id: (from_xyxy(r.box_xyxy, box_format), r.score) for r in results}
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
            box / boxes / object_ids: the first-frame object(s), as in `init`.
            box_format: the format of the first-frame box(es) and of every yielded box (None: the tracker's).
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
                    shown = self._format(box_format)
                    objects = {s.object_id: (from_xyxy(s.init_box_xyxy, shown), 1.0) for s in self._states}
                else:
                    prediction = self.track(rgb, box_format=box_format)
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
    "TrackedFrame",
    # re-exported from lorat_hf.engine
    "TargetState",
    "TrackResult",
    "TrackingBackend",
    "initialize_targets",
    "track_step",
    "release_targets",
    "run_tracker_forward",
    "check_processor_matches",
    "default_image_processor",
    "frame_to_rgb",
    "model_device_and_dtype",
    "resolve_autocast_dtype",
    "parse_compute_dtype",
]
