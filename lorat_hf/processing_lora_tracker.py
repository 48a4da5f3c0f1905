"""`LoraTrackerProcessor`: the stateless I/O of the Sam2Video-style video API for LoRAT.

As in transformers' Sam2Video, the processor converts inputs (frames, box prompts) and creates inference sessions;
the session (`lorat_hf.engine.session.LoraTrackerInferenceSession`) holds all per-video state, and `track_frame` /
`propagate_in_video_iterator` step it with the tracking engine. Those names are re-exported here:

    processor = LoraTrackerProcessor.from_tracker_config(model.config)
    session = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=[1, 2], input_boxes=[[[x1, y1, x2, y2], ...]])
    for output in propagate_in_video_iterator(model, session):
        output.frame_idx, output.obj_ids, output.pred_boxes, output.scores
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch
from transformers.image_processing_base import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .boxes import BOX_FORMATS, check_init_box, from_xyxy, to_xyxy
from .engine.session import (
    LoraTrackerInferenceSession,
    LoraTrackerVideoOutput,
    propagate_in_video_iterator,
    track_frame,
)
from .image_processing_lora_tracker import LoraTrackerImageProcessor
from .video_io import FrameInput, frame_to_rgb


class LoraTrackerProcessor(ProcessorMixin):
    r"""Processor for LoRAT video tracking: wraps a [`LoraTrackerImageProcessor`] and creates inference sessions.

    Args:
        image_processor ([`LoraTrackerImageProcessor`]): crops, normalisation and decoding.
    """

    def __init__(self, image_processor: LoraTrackerImageProcessor):
        super().__init__(image_processor)

    @classmethod
    def from_tracker_config(cls, config, **kwargs: Any) -> LoraTrackerProcessor:
        """The processor matching a `LoraTrackerConfig`."""
        return cls(LoraTrackerImageProcessor.from_tracker_config(config, **kwargs))

    def __call__(
        self,
        images: FrameInput | list[FrameInput] | None = None,
        input_boxes: Sequence | np.ndarray | None = None,
        box_format: str = "xyxy",
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """`original_sizes (B, 2)` as `(height, width)` of `images`, plus the template model inputs when
        `input_boxes` (one box per image, pixels in `box_format`) are given (see `LoraTrackerImageProcessor`)."""
        if images is None:
            raise ValueError("Pass images=frame (or a list of frames).")
        images = images if isinstance(images, list) else [images]
        rgb = [frame_to_rgb(image) for image in images]
        data: dict[str, Any] = {"original_sizes": [[frame.shape[0], frame.shape[1]] for frame in rgb]}
        if input_boxes is not None:
            data.update(
                self.image_processor.preprocess(
                    rgb,
                    np.asarray(input_boxes, dtype=np.float64).reshape(len(rgb), 4),
                    box_format=box_format,
                    return_tensors=None,
                )
            )
        return BatchFeature(data=data, tensor_type=return_tensors)

    def init_video_session(
        self,
        video: Sequence[FrameInput] | np.ndarray | torch.Tensor | str | os.PathLike | None = None,
        inference_device: str | torch.device = "cpu",
        inference_state_device: str | torch.device | None = None,
        processing_device: str | torch.device | None = None,
        video_storage_device: str | torch.device | None = None,
        dtype: torch.dtype | str = torch.float32,
        max_frames: int | None = None,
    ) -> LoraTrackerInferenceSession:
        """A new session: pass `video` (frames, or a file/folder path read with OpenCV) for offline use, or nothing to
        stream frames with `track_frame(model, session, frame=...)`.

        `inference_state_device` and `processing_device` are accepted for Sam2Video compatibility: LoRAT's state is a
        few boxes, and crops are computed on the CPU (exact official arithmetic).
        """
        del inference_state_device, processing_device
        if isinstance(video, (str, os.PathLike)):
            from .video_io import read_video_frames

            video = read_video_frames(video, max_frames=max_frames)
        elif video is not None and max_frames is not None:
            video = list(video)[:max_frames]
        return LoraTrackerInferenceSession(
            video=video,
            inference_device=inference_device,
            video_storage_device=video_storage_device or "cpu",
            dtype=dtype,
            image_processor=self.image_processor,
        )

    def add_inputs_to_inference_session(
        self,
        inference_session: LoraTrackerInferenceSession,
        frame_idx: int,
        obj_ids: Hashable | Sequence[Hashable],
        input_boxes: Sequence | np.ndarray | torch.Tensor,
        original_size: Sequence[int] | None = None,
        box_format: str = "xyxy",
        clear_old_inputs: bool = True,
    ) -> None:
        """Give the session the box of one or more objects on `frame_idx`: tracking of each object (re)starts there.

        Args:
            inference_session: the session.
            frame_idx: frame the boxes belong to.
            obj_ids: one id or a list of ids (one per box).
            input_boxes: pixels in `box_format`; `[[box, ...]]` (Sam2 nesting: image, box, 4), `[box, ...]` or `box`.
            original_size: `(height, width)` of that frame; needed when streaming and the frame is not stored yet.
            box_format: `"xyxy"` (Sam2's convention, default) or `"xywh"`.
            clear_old_inputs: drop other prompts previously given on this frame.
        """
        if box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
        ids = [obj_ids] if isinstance(obj_ids, (int, str)) or not isinstance(obj_ids, Sequence) else list(obj_ids)
        boxes = (
            torch.as_tensor(input_boxes, dtype=torch.float64).numpy()
            if isinstance(input_boxes, torch.Tensor)
            else np.asarray(input_boxes, dtype=np.float64)
        )
        if boxes.ndim == 3:
            if boxes.shape[0] != 1:
                raise ValueError(
                    f"input_boxes hold boxes for {boxes.shape[0]} images; a session step takes one image."
                )
            boxes = boxes[0]
        boxes = boxes.reshape(-1, 4) if boxes.size and boxes.shape[-1] == 4 else boxes
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(
                f"input_boxes must be [[x1, y1, x2, y2], ...] boxes, got shape {np.asarray(input_boxes).shape}."
            )
        if len(boxes) != len(ids):
            raise ValueError(f"Got {len(ids)} object ids for {len(boxes)} boxes.")
        if frame_idx in inference_session.processed_frames:
            frame = inference_session.get_frame(frame_idx)
            size_hw = (int(frame.shape[0]), int(frame.shape[1]))
        elif original_size is not None:
            size_hw = (int(original_size[0]), int(original_size[1]))
        elif inference_session.video_height is not None:
            size_hw = (inference_session.video_height, inference_session.video_width)
        else:
            raise ValueError(
                f"Frame {frame_idx} is not in the session yet: pass original_size=(height, width) so the boxes can be "
                "checked, or add the frame first."
            )
        boxes_xyxy = to_xyxy(boxes, box_format)
        for box in boxes_xyxy:
            check_init_box(box, (size_hw[1], size_hw[0]), box_format)
        if clear_old_inputs:
            inference_session.inputs_per_frame.pop(int(frame_idx), None)
        for obj_id, box in zip(ids, boxes_xyxy, strict=True):
            inference_session.add_box_inputs(frame_idx, obj_id, box)

    def post_process_boxes(self, pred_boxes: torch.Tensor | np.ndarray, box_format: str = "xywh") -> np.ndarray:
        """Frame-pixel `xyxy` boxes `(..., 4)` of an output converted to `box_format` (float64 numpy)."""
        boxes = pred_boxes.cpu().numpy() if isinstance(pred_boxes, torch.Tensor) else np.asarray(pred_boxes)
        return from_xyxy(boxes.astype(np.float64), box_format)


__all__ = [
    "LoraTrackerProcessor",
    "LoraTrackerInferenceSession",
    "LoraTrackerVideoOutput",
    "track_frame",
    "propagate_in_video_iterator",
]
