"""`LoraTrackerProcessor` and `LoraTrackerInferenceSession`: the Sam2Video-style video API for LoRAT.

Three objects, as in transformers' Sam2Video: the processor is stateless I/O, the session holds all per-video state
(frames, objects, their tracker states, outputs), and the model holds the weights. LoRAT's model `forward` stays the
pure batched function used for training, so the stepping lives in two functions, `track_frame` and
`propagate_in_video_iterator`, built on the engine of `lorat_hf.tracking` (the same code as `LoraTracker`).

Offline (a whole video):

    processor = LoraTrackerProcessor.from_tracker_config(model.config)
    session = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=[1, 2], input_boxes=[[[x1, y1, x2, y2], ...]])
    for output in propagate_in_video_iterator(model, session):
        output.frame_idx, output.obj_ids, output.pred_boxes, output.scores

Streaming (frames arrive one by one):

    session = processor.init_video_session()
    processor.add_inputs_to_inference_session(session, 0, obj_ids=1, input_boxes=[[box]], original_size=(h, w))
    for frame in camera:
        output = track_frame(model, session, frame=frame)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.image_processing_base import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import ModelOutput

from .boxes import BOX_FORMATS, check_init_box, from_xyxy, to_xyxy
from .image_processing_lora_tracker import FrameInput, LoraTrackerImageProcessor
from .tracking import (
    TargetState,
    check_processor_matches,
    frame_to_rgb,
    initialize_targets,
    model_device_and_dtype,
    resolve_autocast_dtype,
    track_step,
)

logger = logging.getLogger(__name__)


@dataclass
class LoraTrackerVideoOutput(ModelOutput):
    r"""Tracking output for one frame of an inference session.

    Args:
        frame_idx (`int`): index of the frame in the session.
        obj_ids (`list`): ids of the objects present on this frame, in session order (objects added on a later
            frame are absent from earlier frames).
        pred_boxes (`torch.DoubleTensor` of shape `(num_obj, 4)`): boxes in frame pixels, `xyxy`, clipped to the
            frame (float64, the precision the boxes are computed in). On an object's input frame: its input box.
        scores (`torch.FloatTensor` of shape `(num_obj,)`): confidences in `[0, 1]` (1.0 on an input frame).
        state_updated (`torch.BoolTensor` of shape `(num_obj,)`): whether each box became the next search centre.
    """

    frame_idx: int | None = None
    obj_ids: list[Hashable] | None = None
    pred_boxes: torch.DoubleTensor | None = None
    scores: torch.FloatTensor | None = None
    state_updated: torch.BoolTensor | None = None


class LoraTrackerInferenceSession:
    r"""Everything one video's tracking needs between frames.

    Args:
        video: the frames for offline use (a list of frames, an `(T, H, W, 3)` uint8 array/tensor); None to stream.
        video_height, video_width: frame size, when known before the first frame.
        inference_device: device of the model inputs (template crops are cached there).
        video_storage_device: where stored frames live (uint8 `(H, W, 3)` RGB tensors).
        dtype: compute dtype: float32, or float16/bfloat16 for autocast.
        image_processor: crops and decoding; `LoraTrackerProcessor.init_video_session` sets it.
    """

    def __init__(
        self,
        video: Sequence[FrameInput] | np.ndarray | torch.Tensor | None = None,
        video_height: int | None = None,
        video_width: int | None = None,
        inference_device: str | torch.device = "cpu",
        video_storage_device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        image_processor: LoraTrackerImageProcessor | None = None,
    ):
        self.video_height = video_height
        self.video_width = video_width
        self.inference_device = torch.device(inference_device)
        self.video_storage_device = torch.device(video_storage_device)
        self.dtype = dtype
        self.autocast_dtype = resolve_autocast_dtype(dtype, self.inference_device)
        self.image_processor = image_processor
        self.processed_frames: dict[int, torch.Tensor] = {}
        self.obj_ids: list[Hashable] = []
        self.reset_tracking_data()
        if video is not None:
            for frame in video:
                self.add_new_frame(frame)

    # ----- frames -----
    @property
    def num_frames(self) -> int:
        """Number of frames stored so far."""
        return len(self.processed_frames)

    def add_new_frame(self, frame: FrameInput, frame_idx: int | None = None) -> int:
        """Store a frame (`(H, W, 3)` uint8 RGB array, PIL image or uint8 tensor) and return its index (default: the
        next one)."""
        rgb = torch.from_numpy(np.ascontiguousarray(frame_to_rgb(frame))).to(self.video_storage_device)
        frame_idx = self.num_frames if frame_idx is None else int(frame_idx)
        if frame_idx < 0:
            raise ValueError(f"frame_idx must be >= 0, got {frame_idx}.")
        self.processed_frames[frame_idx] = rgb
        if self.video_height is None:
            self.video_height, self.video_width = int(rgb.shape[0]), int(rgb.shape[1])
        return frame_idx

    def get_frame(self, frame_idx: int) -> torch.Tensor:
        """The stored frame `frame_idx` as an `(H, W, 3)` uint8 RGB tensor."""
        try:
            return self.processed_frames[frame_idx]
        except KeyError:
            raise IndexError(
                f"Frame {frame_idx} is not in the session ({self.num_frames} frames stored); add it with "
                "add_new_frame or pass frame= to track_frame."
            ) from None

    # ----- objects -----
    def obj_id_to_idx(self, obj_id: Hashable) -> int:
        """Index of an object id, registering the id when it is new."""
        if obj_id not in self.obj_ids:
            self.obj_ids.append(obj_id)
        return self.obj_ids.index(obj_id)

    def obj_idx_to_id(self, obj_idx: int) -> Hashable:
        return self.obj_ids[obj_idx]

    def get_obj_num(self) -> int:
        return len(self.obj_ids)

    def add_box_inputs(self, frame_idx: int, obj_id: Hashable, box_xyxy: np.ndarray) -> None:
        """Register a box prompt: the object (re)starts from this box on `frame_idx`."""
        self.obj_id_to_idx(obj_id)
        self.inputs_per_frame.setdefault(int(frame_idx), {})[obj_id] = np.asarray(box_xyxy, dtype=np.float64)

    def remove_box_inputs(self, frame_idx: int, obj_id: Hashable) -> None:
        self.inputs_per_frame.get(int(frame_idx), {}).pop(obj_id, None)

    # ----- outputs -----
    def store_output(self, output: LoraTrackerVideoOutput) -> None:
        self.frame_outputs[int(output.frame_idx)] = output

    def get_output(self, frame_idx: int) -> LoraTrackerVideoOutput | None:
        return self.frame_outputs.get(int(frame_idx))

    # ----- resets -----
    def reset_tracking_data(self) -> None:
        """Forget objects, prompts, tracker states and outputs; keep the stored frames."""
        self.obj_ids = []
        self.inputs_per_frame: dict[int, dict[Hashable, np.ndarray]] = {}
        self.target_states: dict[Hashable, TargetState] = {}
        self.frame_outputs: dict[int, LoraTrackerVideoOutput] = {}
        self.last_frame_idx: int | None = None

    def reset_inference_session(self) -> None:
        """Forget everything, the stored frames included."""
        self.reset_tracking_data()
        self.processed_frames = {}
        self.video_height = self.video_width = None


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


# ----------------------------------------------------------------------------------------------------------------
# Stepping
# ----------------------------------------------------------------------------------------------------------------


def _session_processor(
    model: nn.Module, session: LoraTrackerInferenceSession, processor: LoraTrackerImageProcessor | None
) -> LoraTrackerImageProcessor:
    processor = processor or session.image_processor or LoraTrackerImageProcessor.from_tracker_config(model.config)
    check_processor_matches(model, processor)
    return processor


@torch.inference_mode()
def track_frame(
    model: nn.Module,
    inference_session: LoraTrackerInferenceSession,
    frame_idx: int | None = None,
    frame: FrameInput | None = None,
    image_processor: LoraTrackerImageProcessor | None = None,
) -> LoraTrackerVideoOutput:
    """Process one frame of a session: objects with a box prompt on this frame (re)start from it, every other
    started object is tracked, all of them in ONE batched forward.

    Pass `frame=` to stream (the frame is stored and gets the next index) or `frame_idx=` for a stored frame.
    Works with a `LoraTrackerModel` or a PeftModel around one.
    """
    session = inference_session
    if frame is not None:
        frame_idx = session.add_new_frame(frame, frame_idx)
    elif frame_idx is None:
        raise ValueError("Pass frame_idx= (a stored frame) or frame= (streaming).")
    rgb = session.get_frame(frame_idx).cpu().numpy()
    processor = _session_processor(model, session, image_processor)
    device = session.inference_device
    model_device, _ = model_device_and_dtype(model)
    index_differs = None not in (model_device.index, device.index) and model_device.index != device.index
    if model_device.type != device.type or index_differs:
        raise ValueError(
            f"The model is on {model_device} but the session's inference_device is {device}: create the session with "
            f"processor.init_video_session(inference_device={str(model_device)!r}) or move the model."
        )

    prompts = session.inputs_per_frame.get(int(frame_idx), {})
    if prompts:
        new_states = initialize_targets(
            model, processor, [rgb] * len(prompts), np.stack(list(prompts.values())), list(prompts)
        )
        session.target_states.update({state.object_id: state for state in new_states})
    tracked = [state for obj_id, state in session.target_states.items() if obj_id not in prompts]
    results = track_step(model, processor, tracked, [rgb] * len(tracked), autocast_dtype=session.autocast_dtype)
    by_id = {r.object_id: (r.box_xyxy, r.score, r.state_updated) for r in results}
    by_id.update({obj_id: (box, 1.0, True) for obj_id, box in prompts.items()})
    present = [obj_id for obj_id in session.obj_ids if obj_id in by_id]
    output = LoraTrackerVideoOutput(
        frame_idx=int(frame_idx),
        obj_ids=present,
        pred_boxes=torch.tensor(np.array([by_id[i][0] for i in present]).reshape(-1, 4), dtype=torch.float64),
        scores=torch.tensor([by_id[i][1] for i in present], dtype=torch.float32),
        state_updated=torch.tensor([by_id[i][2] for i in present], dtype=torch.bool),
    )
    session.store_output(output)
    session.last_frame_idx = int(frame_idx)
    return output


def propagate_in_video_iterator(
    model: nn.Module,
    inference_session: LoraTrackerInferenceSession,
    start_frame_idx: int | None = None,
    max_frame_num_to_track: int | None = None,
    show_progress_bar: bool = False,
    image_processor: LoraTrackerImageProcessor | None = None,
) -> Iterator[LoraTrackerVideoOutput]:
    """Track through the stored frames, yielding one `LoraTrackerVideoOutput` per frame.

    Args:
        model: a `LoraTrackerModel` or a PeftModel around one.
        inference_session: a session holding frames and at least one box prompt.
        start_frame_idx: first frame (default: the earliest frame with a prompt).
        max_frame_num_to_track: stop after this many frames after the start frame.
        show_progress_bar: tqdm bar.
    """
    from tqdm.auto import tqdm

    session = inference_session
    if not session.inputs_per_frame or not any(session.inputs_per_frame.values()):
        raise ValueError("The session has no box prompt: call processor.add_inputs_to_inference_session first.")
    if start_frame_idx is None:
        start_frame_idx = min(idx for idx, prompts in session.inputs_per_frame.items() if prompts)
    stored = sorted(idx for idx in session.processed_frames if idx >= start_frame_idx)
    if max_frame_num_to_track is not None:
        stored = [idx for idx in stored if idx <= start_frame_idx + max_frame_num_to_track]
    for frame_idx in tqdm(stored, desc="propagate in video", disable=not show_progress_bar):
        yield track_frame(model, session, frame_idx=frame_idx, image_processor=image_processor)


__all__ = [
    "LoraTrackerProcessor",
    "LoraTrackerInferenceSession",
    "LoraTrackerVideoOutput",
    "track_frame",
    "propagate_in_video_iterator",
]
