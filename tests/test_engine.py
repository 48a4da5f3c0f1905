"""The engine's plug-in points: a backend's extras, hooks and release calls, and one engine under every front door."""

import numpy as np
import pytest
import torch
from tracking_helpers import tracking_fixtures

from lorat_hf.engine import (
    LoraTrackerBackend,
    TrackingBackend,
    VideoJob,
    get_backend,
    initialize_targets,
    register_backend,
    track_step,
    track_videos,
)
from lorat_hf.processing_lora_tracker import LoraTrackerProcessor, propagate_in_video_iterator
from lorat_hf.tracking import LoraTracker

model, clip = tracking_fixtures(model_seed=5, clip_seed=6, num_frames=5)


class RecordingBackend(LoraTrackerBackend):
    """A family with state of its own: counts its template steps in `extras`, keeps a reference box after confident
    frames and records which targets were released."""

    def __init__(self, model, autocast_dtype=None, max_batch_size=None):
        super().__init__(model, autocast_dtype, max_batch_size)
        self.released: list = []

    def initialize_targets(self, states):
        for state in states:
            state.extras["template_steps"] = 1
            state.extras["reference_box"] = state.init_box_xyxy.copy()

    def search(self, states, search_pixel_values):
        assert all(state.extras["template_steps"] == 1 for state in states)
        return super().search(states, search_pixel_values)

    def after_step(self, states, frames, results, processor):
        for state, result in zip(states, results, strict=True):
            assert frames[0].shape[-1] == 3 and result.object_id == state.object_id
            state.extras["reference_box"] = result.box_xyxy.copy()

    def release_targets(self, states):
        self.released.extend(state.object_id for state in states)


def test_a_custom_backend_carries_extras_and_tracks_like_the_model(model, clip):
    frames, gt = clip
    plain = LoraTracker(model, box_format="xyxy")
    backend = RecordingBackend(model)
    custom = LoraTracker(backend, box_format="xyxy")
    plain.init(frames[0], gt[0])
    custom.init(frames[0], gt[0])
    for frame in frames[1:]:
        box, score = plain.track(frame)
        custom_box, custom_score = custom.track(frame)
        assert np.array_equal(box, custom_box) and score == custom_score
        (state,) = custom.states
        assert np.array_equal(state.extras["reference_box"], custom_box)
    custom.reset()
    assert backend.released == [0]
    with pytest.raises(ValueError, match="backend carries its own"):
        LoraTracker(backend, dtype="bfloat16")


def test_sessions_and_many_videos_use_the_given_backend(model, clip):
    frames, gt = clip
    backend = RecordingBackend(model)
    processor = LoraTrackerProcessor.from_tracker_config(model.config)
    session = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(session, 0, obj_ids="a", input_boxes=[[gt[0]]])
    session_boxes = [out.pred_boxes[0].numpy() for out in propagate_in_video_iterator(backend, session)]
    assert session.target_states["a"].extras["template_steps"] == 1

    jobs = [VideoJob("clip", len(frames), frames.__getitem__, gt[0]), VideoJob("short", 2, frames.__getitem__, gt[0])]
    tracked = {video.key: video for video in track_videos(backend, None, jobs, batch_size=1, num_workers=1)}
    assert np.array_equal(tracked["clip"].boxes_xyxy, np.stack(session_boxes))
    assert np.array_equal(tracked["short"].boxes_xyxy, tracked["clip"].boxes_xyxy[:2])
    assert tracked["clip"].scores[0] == 1.0 and tracked["clip"].seconds.shape == (len(frames),)
    assert backend.released == ["clip", "short"]  # batch_size=1: one after the other


def test_backends_are_chosen_by_model_type(model, clip):
    frames, gt = clip
    assert type(get_backend(model)) is LoraTrackerBackend
    with pytest.raises(TypeError, match="Expected a LoraTrackerModel"):
        get_backend(torch.nn.Linear(2, 2))
    with pytest.raises(NotImplementedError, match="search"):
        TrackingBackend().search([], torch.zeros(0))

    class Family(TrackingBackend):
        def __init__(self, model, autocast_dtype=None, max_batch_size=None):
            self.model, self.config, self.device = model, model.config, torch.device("cpu")

        def search(self, states, search_pixel_values):
            grid_w, grid_h = self.config.search_grid_wh
            score_map = torch.zeros(len(states), grid_h, grid_w)
            score_map[:, grid_h // 2, grid_w // 2] = 10.0  # confident at the centre
            boxes = torch.tensor([0.4, 0.4, 0.6, 0.6]).expand(len(states), grid_h, grid_w, 4)
            return score_map, boxes

    model.config.model_type = "test_family"
    try:
        register_backend("test_family", Family)
        (state,) = initialize_targets(model, None, [frames[0]], gt[:1])
        (result,) = track_step(model, None, [state], [frames[1]])
        centre = (gt[0, :2] + gt[0, 2:]) / 2
        np.testing.assert_allclose((result.box_xyxy[:2] + result.box_xyxy[2:]) / 2, centre, atol=1.0)
    finally:
        model.config.model_type = "lora_tracker"
        from lorat_hf.engine import backends

        backends._BACKENDS.pop("test_family")
