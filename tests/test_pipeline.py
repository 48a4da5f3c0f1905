"""pipeline("video-object-tracking"): registration, inputs (path, frame list, array), output schema, errors."""

import logging

import numpy as np
import pytest
from tracking_helpers import lively_tiny_model, moving_square_clip, write_frame_folder, write_video
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from lorat_hf.pipeline_video_object_tracking import TASK, VideoObjectTrackingPipeline, register_pipeline
from lorat_hf.tracking import LoraTracker


@pytest.fixture(scope="module")
def model():
    register_pipeline()
    return lively_tiny_model(seed=6)


@pytest.fixture(scope="module")
def clip():
    return moving_square_clip(num_frames=6, seed=7)


def _xywh(box_xyxy):
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    return [x1, y1, x2 - x1, y2 - y1]


def test_register_pipeline_is_idempotent(caplog):
    register_pipeline()
    with caplog.at_level(logging.WARNING):
        register_pipeline()
        register_pipeline()
    assert "already registered" not in caplog.text
    assert PIPELINE_REGISTRY.supported_tasks[TASK]["impl"] is VideoObjectTrackingPipeline
    assert TASK in PIPELINE_REGISTRY.get_supported_tasks()


def test_video_file_output_schema_and_values(tmp_path, model, clip):
    frames, gt = clip
    path = write_video(tmp_path / "clip.avi", frames)
    tracker_pipeline = pipeline(TASK, model=model)
    assert isinstance(tracker_pipeline, VideoObjectTrackingPipeline)
    init_box = _xywh(gt[0])
    outputs = tracker_pipeline(str(path), init_box=init_box)
    assert [o["frame_index"] for o in outputs] == list(range(len(frames)))
    for output in outputs:
        assert set(output) == {"frame_index", "box", "score"}
        assert len(output["box"]) == 4 and all(type(v) is float for v in output["box"])
        assert type(output["score"]) is float and 0.0 <= output["score"] <= 1.0
    assert outputs[0]["box"] == init_box and outputs[0]["score"] == 1.0
    decoded = [frame for frame in LoraTracker(model).track_video(path, init_box)]
    for output, reference in zip(outputs, decoded, strict=True):
        np.testing.assert_allclose(output["box"], reference.box, atol=1e-9)


def test_frame_list_array_and_folder_inputs_agree(tmp_path, model, clip):
    frames, gt = clip
    tracker_pipeline = pipeline(TASK, model=model)
    from_list = tracker_pipeline(frames, init_box=gt[0].tolist(), box_format="xyxy")
    from_array = tracker_pipeline(np.stack(frames), init_box=gt[0].tolist(), box_format="xyxy")
    from_folder = tracker_pipeline(
        write_frame_folder(tmp_path / "frames", frames), init_box=gt[0].tolist(), box_format="xyxy"
    )
    assert from_list == from_array == from_folder  # lossless PNG frames
    tracker = LoraTracker(model, box_format="xyxy")
    tracker.init(frames[0], gt[0])
    box, score = tracker.track(frames[1])
    assert from_list[1]["box"] == box.tolist() and from_list[1]["score"] == score
    assert len(tracker_pipeline(frames, init_box=gt[0].tolist(), box_format="xyxy", max_frames=3)) == 3
    half = tracker_pipeline(frames[:3], init_box=gt[0].tolist(), box_format="xyxy", autocast_dtype="bfloat16")
    assert half[0] == from_list[0] and all(0.0 <= o["score"] <= 1.0 for o in half)


def test_several_videos_and_a_saved_model_folder(tmp_path, model, clip):
    frames, gt = clip
    model.save_pretrained(tmp_path / "tracker")
    tracker_pipeline = pipeline(TASK, model=str(tmp_path / "tracker"))
    first = write_video(tmp_path / "a.avi", frames)
    second = write_video(tmp_path / "b.avi", frames[:4])
    outputs = tracker_pipeline([str(first), str(second)], init_box=_xywh(gt[0]))
    assert [len(o) for o in outputs] == [6, 4]
    assert outputs[0][:4] == outputs[1]


def test_pipeline_errors(model, clip):
    frames, gt = clip
    tracker_pipeline = pipeline(TASK, model=model)
    with pytest.raises(ValueError, match="Pass init_box"):
        tracker_pipeline(frames)
    with pytest.raises(ValueError, match="box_format"):
        tracker_pipeline(frames, init_box=_xywh(gt[0]), box_format="cxcywh")
    with pytest.raises(ValueError, match="outside the 160x120 frame"):
        tracker_pipeline(frames, init_box=[400, 400, 10, 10])
    with pytest.raises(ValueError, match=r"\(num_frames, height, width, 3\)"):
        tracker_pipeline(np.zeros((4, 4, 3), dtype=np.uint8), init_box=[0, 0, 2, 2])
    with pytest.raises(TypeError, match="Unexpected arguments"):
        tracker_pipeline(frames, init_box=_xywh(gt[0]), threshold=0.5)
