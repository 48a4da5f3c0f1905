"""The Sam2Video-style inference session of the engine: per-video state, and the functions that step it.

As in transformers' Sam2Video, the session holds all per-video state (frames, objects, prompts, their `TargetState`s,
outputs), `LoraTrackerProcessor` (`lorat_hf.processing_lora_tracker`) does the stateless I/O and creates sessions, and
`track_frame` / `propagate_in_video_iterator` advance a session with the engine's `initialize_targets` / `track_step`
(the same code as `LoraTracker`). The model's `forward` stays the pure batched function used for training.

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

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers.utils import ModelOutput

from ..video_io import FrameInput, frame_to_rgb
from .backends import TrackingBackend, get_backend
from .state import TargetState
from .steps import initialize_targets, release_targets, resolve_autocast_dtype, track_step


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

    Attributes:
        target_states: `{obj_id: TargetState}` of the started objects (the engine's per-target state).
        backend: the `TrackingBackend` stepping this session, built from the model on the first `track_frame`.
    """

    def __init__(
        self,
        video: Sequence[FrameInput] | np.ndarray | torch.Tensor | None = None,
        video_height: int | None = None,
        video_width: int | None = None,
        inference_device: str | torch.device = "cpu",
        video_storage_device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        image_processor=None,
    ):
        self.video_height = video_height
        self.video_width = video_width
        self.inference_device = torch.device(inference_device)
        self.video_storage_device = torch.device(video_storage_device)
        self.dtype = dtype
        self.autocast_dtype = resolve_autocast_dtype(dtype, self.inference_device)
        self.image_processor = image_processor
        self.backend: TrackingBackend | None = None
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
        if getattr(self, "target_states", None) and self.backend is not None:
            self.backend.release_targets(list(self.target_states.values()))
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


def _session_backend(model: nn.Module | TrackingBackend, session: LoraTrackerInferenceSession) -> TrackingBackend:
    """The session's backend for `model`, built once (a backend may keep per-target resources between frames)."""
    if isinstance(model, TrackingBackend):
        return model
    cached = session.backend
    if cached is None or getattr(cached, "model", None) is not model:
        cached = session.backend = get_backend(model, autocast_dtype=session.autocast_dtype)
    device = session.inference_device
    model_device = cached.device
    index_differs = None not in (model_device.index, device.index) and model_device.index != device.index
    if model_device.type != device.type or index_differs:
        raise ValueError(
            f"The model is on {model_device} but the session's inference_device is {device}: create the session with "
            f"processor.init_video_session(inference_device={str(model_device)!r}) or move the model."
        )
    return cached


@torch.inference_mode()
def track_frame(
    model: nn.Module | TrackingBackend,
    inference_session: LoraTrackerInferenceSession,
    frame_idx: int | None = None,
    frame: FrameInput | None = None,
    image_processor=None,
) -> LoraTrackerVideoOutput:
    """Process one frame of a session: objects with a box prompt on this frame (re)start from it, every other
    started object is tracked, all of them in ONE batched forward.

    Pass `frame=` to stream (the frame is stored and gets the next index) or `frame_idx=` for a stored frame.
    Works with a `LoraTrackerModel`, a PeftModel around one, or a `TrackingBackend`.
    """
    session = inference_session
    if frame is not None:
        frame_idx = session.add_new_frame(frame, frame_idx)
    elif frame_idx is None:
        raise ValueError("Pass frame_idx= (a stored frame) or frame= (streaming).")
    rgb = session.get_frame(frame_idx).cpu().numpy()
    backend = _session_backend(model, session)
    processor = image_processor or session.image_processor or backend.default_image_processor()
    backend.check_image_processor(processor)

    prompts = session.inputs_per_frame.get(int(frame_idx), {})
    if prompts:
        restarted = [session.target_states[obj_id] for obj_id in prompts if obj_id in session.target_states]
        release_targets(backend, restarted)
        new_states = initialize_targets(
            backend, processor, [rgb] * len(prompts), np.stack(list(prompts.values())), list(prompts)
        )
        session.target_states.update({state.object_id: state for state in new_states})
    tracked = [state for obj_id, state in session.target_states.items() if obj_id not in prompts]
    results = track_step(backend, processor, tracked, [rgb] * len(tracked))
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
    model: nn.Module | TrackingBackend,
    inference_session: LoraTrackerInferenceSession,
    start_frame_idx: int | None = None,
    max_frame_num_to_track: int | None = None,
    show_progress_bar: bool = False,
    image_processor=None,
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
    "LoraTrackerInferenceSession",
    "LoraTrackerVideoOutput",
    "track_frame",
    "propagate_in_video_iterator",
]
