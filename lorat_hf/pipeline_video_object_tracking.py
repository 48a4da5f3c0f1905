"""`pipeline("video-object-tracking")`: track one object through a whole video with a LoRAT model.

    from transformers import pipeline
    import lorat_hf  # registers the task

    tracker = pipeline("video-object-tracking", model="path/to/merged-tracker")   # or model=<LoraTrackerModel>
    for item in tracker("clip.mp4", init_box=[x, y, w, h]):
        item["frame_index"], item["box"], item["score"]

Each call takes a WHOLE video (a file, a frame folder, or a list of frames) and loops over it internally; the
per-frame state never leaves the call. That is deliberate: transformers' pipeline machinery cannot batch inputs
without a tokenizer/feature extractor (`batch_size > 1` raises), and `num_workers > 0` would run preprocessing in a
worker process where a per-frame tracker state would be lost. To batch many videos per forward, use
`lorat_hf.tracking.initialize_targets` / `track_step`; for several objects of one video, `LoraTracker`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import Pipeline

from .boxes import BOX_FORMATS
from .image_processing_lora_tracker import LoraTrackerImageProcessor
from .tracking import LoraTracker, resolve_autocast_dtype

TASK = "video-object-tracking"


def _is_frame(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor, Image.Image))


class VideoObjectTrackingPipeline(Pipeline):
    r"""Single-object tracking through a video with a [`LoraTrackerModel`] (task `"video-object-tracking"`).

    Call arguments:
        video: a video file path, a folder of frames, a list of frames (`(H, W, 3)` uint8 RGB arrays, PIL images or
            uint8 tensors), or an `(T, H, W, 3)` uint8 array. A list of paths tracks several videos (one output list
            each), with the same `init_box` for all; pass one video per call when the boxes differ.
        init_box (`list[float]`): the object's box on the first frame, pixels, in `box_format`.
        box_format (`str`, *optional*, defaults to `"xywh"`): `"xywh"` or `"xyxy"`, for `init_box` and the outputs.
        max_frames (`int`, *optional*): track only the first `max_frames` frames.
        autocast_dtype (`torch.dtype`, *optional*): float16/bfloat16 to run the forwards under autocast (GPU; the
            official test setting is float16). To load the weights in another dtype, pass `dtype=` to `pipeline()`.

    Returns:
        A list with one dict per frame: `{"frame_index": int, "box": [4 floats], "score": float}`. `box` is in
        `box_format`, in frame pixels (continuous coordinates; clipped to the frame for LoRAT); frame 0 returns
        `init_box` with score 1.0. Scores are the tracker's confidence in `[0, 1]`.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from .engine import registered_model_types

        if getattr(self.model.config, "model_type", None) not in registered_model_types():
            raise ValueError(
                f"The video-object-tracking pipeline needs a tracker model (model_type one of "
                f"{registered_model_types()}), got a {type(self.model).__name__}."
            )
        if self.image_processor is None:
            self.image_processor = LoraTrackerImageProcessor.from_tracker_config(self.model.config)

    def __call__(self, video: Any, **kwargs: Any) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        if isinstance(video, (list, tuple)) and video and _is_frame(video[0]):
            video = {"frames": list(video)}
        elif isinstance(video, (np.ndarray, torch.Tensor)):
            if video.ndim != 4:
                raise ValueError(
                    f"A video array must be (num_frames, height, width, 3), got shape {tuple(video.shape)}."
                )
            video = {"frames": list(video)}
        elif isinstance(video, os.PathLike):
            video = os.fspath(video)
        return super().__call__(video, **kwargs)

    def _sanitize_parameters(
        self,
        init_box: Sequence[float] | None = None,
        box_format: str | None = None,
        max_frames: int | None = None,
        autocast_dtype: torch.dtype | str | None = None,
        **kwargs: Any,
    ) -> tuple[dict, dict, dict]:
        if kwargs:
            raise TypeError(
                f"Unexpected arguments {sorted(kwargs)}; the pipeline takes init_box, box_format, max_frames, autocast_dtype."
            )
        if box_format is not None and box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
        preprocess_params = {} if max_frames is None else {"max_frames": max_frames}
        forward_params: dict[str, Any] = {}
        if init_box is not None:
            forward_params["init_box"] = init_box
        if box_format is not None:
            forward_params["box_format"] = box_format
        if autocast_dtype is not None:
            forward_params["autocast_dtype"] = autocast_dtype
        return preprocess_params, forward_params, {}

    def preprocess(self, video: Any, max_frames: int | None = None) -> dict[str, Any]:
        if isinstance(video, dict):
            frames = video["frames"][:max_frames] if max_frames is not None else video["frames"]
        elif isinstance(video, str):
            from .video_io import read_video_frames

            frames = read_video_frames(video, max_frames=max_frames)
        else:
            raise TypeError(
                f"Unsupported video input {type(video).__name__}: pass a path, a list of frames or a (T, H, W, 3) array."
            )
        if not frames:
            raise ValueError("The video has no frames.")
        return {"frames": frames}

    def _forward(
        self,
        model_inputs: dict[str, Any],
        init_box: Sequence[float] | None = None,
        box_format: str = "xywh",
        autocast_dtype: torch.dtype | str | None = None,
    ) -> dict[str, Any]:
        if init_box is None:
            raise ValueError(
                "Pass init_box=[x, y, w, h] (or box_format='xyxy' and [x1, y1, x2, y2]): the object's box on the first frame."
            )
        tracker = LoraTracker(self.model, self.image_processor, box_format=box_format)
        # autocast here, as documented: the pipeline's weights keep the dtype given to `pipeline(dtype=...)`
        tracker.autocast_dtype = resolve_autocast_dtype(autocast_dtype, tracker.device)
        boxes, scores = [], []
        for item in tracker.track_video(model_inputs["frames"], init_box):
            boxes.append(item.box)
            scores.append(item.score)
        return {"boxes": np.stack(boxes), "scores": np.asarray(scores, dtype=np.float64)}

    def postprocess(self, model_outputs: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"frame_index": index, "box": [float(v) for v in box], "score": float(score)}
            for index, (box, score) in enumerate(zip(model_outputs["boxes"], model_outputs["scores"], strict=True))
        ]


def register_pipeline() -> None:
    """Register `"video-object-tracking"` with transformers' `pipeline()` (safe to call more than once)."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    current = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if current is not None and current.get("impl") is VideoObjectTrackingPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=VideoObjectTrackingPipeline, pt_model=AutoModel, type="video"
    )


__all__ = ["VideoObjectTrackingPipeline", "register_pipeline", "TASK"]
