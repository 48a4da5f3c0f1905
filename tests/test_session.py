"""LoraTrackerProcessor / LoraTrackerInferenceSession: offline and streaming stepping, prompts, PeftModel, resets."""

import copy

import numpy as np
import pytest
import torch
from tracking_helpers import lively_tiny_model, tracking_fixtures, write_video

from lorat_hf import add_adapters
from lorat_hf.processing_lora_tracker import (
    LoraTrackerInferenceSession,
    LoraTrackerProcessor,
    LoraTrackerVideoOutput,
    propagate_in_video_iterator,
    track_frame,
)
from lorat_hf.tracking import LoraTracker

model, clip = tracking_fixtures(model_seed=3, clip_seed=4, num_frames=6)


@pytest.fixture(scope="module")
def processor(model):
    return LoraTrackerProcessor.from_tracker_config(model.config)


SECOND_BOX = [90.0, 60.0, 120.0, 95.0]


def test_offline_propagation_equals_the_facade(model, processor, clip):
    frames, gt = clip
    session = processor.init_video_session(video=frames)
    assert session.num_frames == 6 and (session.video_height, session.video_width) == (120, 160)
    processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=7, input_boxes=[[gt[0].tolist()]])
    outputs = list(propagate_in_video_iterator(model, session))
    tracker = LoraTracker(model, box_format="xyxy")
    expected = list(tracker.track_video(frames, gt[0]))
    assert [o.frame_idx for o in outputs] == list(range(6))
    for output, reference in zip(outputs, expected, strict=True):
        assert isinstance(output, LoraTrackerVideoOutput) and output.obj_ids == [7]
        assert output.pred_boxes.shape == (1, 4) and output.pred_boxes.dtype == torch.float64
        assert output.scores.shape == (1,)
        assert np.array_equal(output.pred_boxes[0].numpy(), reference.box)
        assert output.scores[0].item() == pytest.approx(reference.score, abs=1e-7)
    assert session.get_output(3) is outputs[3]


def test_streaming_equals_offline_with_two_objects(model, processor, clip):
    frames, gt = clip
    offline = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(offline, 0, [1, 2], [[gt[0].tolist(), SECOND_BOX]])
    expected = list(propagate_in_video_iterator(model, offline))

    streaming = processor.init_video_session()
    assert streaming.num_frames == 0
    processor.add_inputs_to_inference_session(
        streaming, 0, [1, 2], [[gt[0].tolist(), SECOND_BOX]], original_size=(120, 160)
    )
    for frame, reference in zip(frames, expected, strict=True):
        output = track_frame(model, streaming, frame=frame)
        assert output.frame_idx == reference.frame_idx and output.obj_ids == [1, 2]
        assert torch.equal(output.pred_boxes, reference.pred_boxes)
        assert torch.equal(output.scores, reference.scores)
    assert streaming.num_frames == len(frames)


def test_an_object_added_later_starts_on_its_prompt_frame(model, processor, clip):
    frames, gt = clip
    session = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(session, 0, "target", gt[0])
    processor.add_inputs_to_inference_session(
        session, 3, "late", [SECOND_BOX[0], SECOND_BOX[1], 30, 35], box_format="xywh"
    )
    outputs = list(propagate_in_video_iterator(model, session))
    assert [o.obj_ids for o in outputs] == [["target"]] * 3 + [["target", "late"]] * 3
    assert outputs[3].pred_boxes[1].tolist() == SECOND_BOX and outputs[3].scores[1].item() == 1.0
    alone = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(alone, 0, "target", gt[0])
    for output, reference in zip(outputs, propagate_in_video_iterator(model, alone), strict=True):
        np.testing.assert_allclose(output.pred_boxes[0].numpy(), reference.pred_boxes[0].numpy(), atol=1e-3, rtol=0)
    late_alone = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(late_alone, 3, "late", [SECOND_BOX])
    late = list(propagate_in_video_iterator(model, late_alone))
    assert late[0].frame_idx == 3  # propagation starts on the earliest prompt
    for output, reference in zip(outputs[3:], late, strict=True):
        np.testing.assert_allclose(output.pred_boxes[1].numpy(), reference.pred_boxes[0].numpy(), atol=1e-3, rtol=0)


def test_session_stepping_works_through_a_peft_model(clip):
    frames, gt = clip
    torch.manual_seed(0)
    peft_model = add_adapters(lively_tiny_model(seed=5)).eval()  # official init: non-zero LoRA B
    merged = copy.deepcopy(peft_model).merge_and_unload().eval()
    processor = LoraTrackerProcessor.from_tracker_config(peft_model.config)
    results = []
    for candidate in (peft_model, merged):
        session = processor.init_video_session(video=frames)
        processor.add_inputs_to_inference_session(session, 0, 1, [[gt[0].tolist()]])
        results.append(list(propagate_in_video_iterator(candidate, session)))
    plain = lively_tiny_model(seed=5)
    session = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(session, 0, 1, [[gt[0].tolist()]])
    base = list(propagate_in_video_iterator(plain, session))
    for with_peft, with_merged in zip(*results, strict=True):
        np.testing.assert_allclose(with_peft.pred_boxes.numpy(), with_merged.pred_boxes.numpy(), atol=1e-3, rtol=0)
    assert any(
        not torch.allclose(a.pred_boxes, b.pred_boxes) for a, b in zip(results[0], base, strict=True)
    )  # adapters act


def test_resets_and_frame_access(model, processor, clip):
    frames, gt = clip
    session = processor.init_video_session(video=frames[:3])
    processor.add_inputs_to_inference_session(session, 0, 1, gt[0])
    list(propagate_in_video_iterator(model, session))
    assert torch.equal(session.get_frame(2), torch.from_numpy(frames[2]))
    assert session.obj_ids == [1] and session.get_obj_num() == 1 and session.obj_idx_to_id(0) == 1
    session.reset_tracking_data()
    assert session.num_frames == 3 and session.obj_ids == [] and session.get_output(0) is None
    with pytest.raises(ValueError, match="no box prompt"):
        list(propagate_in_video_iterator(model, session))
    session.reset_inference_session()
    assert session.num_frames == 0 and session.video_height is None
    with pytest.raises(IndexError, match="Frame 0 is not in the session"):
        session.get_frame(0)


def test_prompt_validation(model, processor, clip):
    frames, gt = clip
    streaming = processor.init_video_session()
    with pytest.raises(ValueError, match="original_size"):
        processor.add_inputs_to_inference_session(streaming, 0, 1, gt[0])
    offline = processor.init_video_session(video=frames)
    with pytest.raises(ValueError, match="outside the 160x120 frame"):
        processor.add_inputs_to_inference_session(offline, 0, 1, [500, 500, 520, 530])
    with pytest.raises(ValueError, match="2 object ids for 1 boxes"):
        processor.add_inputs_to_inference_session(offline, 0, [1, 2], [gt[0]])
    with pytest.raises(ValueError, match="box_format"):
        processor.add_inputs_to_inference_session(offline, 0, 1, gt[0], box_format="cxcywh")
    with pytest.raises(ValueError, match=r"Pass frame_idx= .* or frame="):
        track_frame(model, offline)
    cuda_session = LoraTrackerInferenceSession(video=frames[:1], inference_device="cuda")
    processor.add_inputs_to_inference_session(cuda_session, 0, 1, gt[0])
    with pytest.raises(ValueError, match="inference_device is cuda"):
        track_frame(model, cuda_session, frame_idx=0)


def test_processor_call_save_and_video_path(tmp_path, model, processor, clip):
    frames, gt = clip
    inputs = processor(images=frames[0], input_boxes=[gt[0]])
    assert inputs["original_sizes"].tolist() == [[120, 160]]
    assert inputs["template_pixel_values"].shape == (1, 3, 56, 56)
    processor.save_pretrained(tmp_path / "processor")
    reloaded = LoraTrackerProcessor.from_pretrained(tmp_path / "processor")
    assert reloaded.image_processor.to_dict() == processor.image_processor.to_dict()
    session = reloaded.init_video_session(video=write_video(tmp_path / "clip.avi", frames), max_frames=4)
    assert session.num_frames == 4 and session.get_frame(0).shape == (120, 160, 3)
    assert processor.post_process_boxes(torch.tensor([[10.0, 20.0, 50.0, 60.0]])).tolist() == [
        [10.0, 20.0, 40.0, 40.0]
    ]
