"""The tracking engine and the LoraTracker facade: official parity, formats, multi-object batching, state rules."""

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, tiny_config
from PIL import Image
from safetensors.torch import load_file
from tracking_helpers import (
    FixedOutputModel,
    convert_case_a,
    lively_tiny_model,
    moving_square_clip,
    tracking_fixtures,
    write_video,
)

from lorat_hf import LoraTrackerConfig, LoraTrackerImageProcessor
from lorat_hf.tracking import (
    LoraTracker,
    check_processor_matches,
    initialize_targets,
    resolve_autocast_dtype,
    track_step,
)

E2E = load_file(OFFICIAL / "tracking_e2e" / "tracking.safetensors")
POST = load_file(OFFICIAL / "postprocess" / "postprocess.safetensors")


@pytest.fixture(scope="module")
def case_a_adapter(tmp_path_factory):
    return convert_case_a(tmp_path_factory.mktemp("case_a") / "adapter")


model, clip = tracking_fixtures(model_seed=0, clip_seed=0, num_frames=6)


# ----- parity with the official tracker -----


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "unmerged"])
def test_engine_reproduces_the_official_end_to_end_run(case_a_adapter, merge):
    tracker = LoraTracker.from_pretrained(case_a_adapter, merge=merge, device="cpu", box_format="xyxy")
    assert type(tracker.model).__name__ == ("LoraTrackerModel" if merge else "PeftModel")
    suffix = "" if merge else "_unmerged_model"
    frames = E2E["frames_hwc_uint8"].numpy()
    (state,) = initialize_targets(
        tracker.model, tracker.image_processor, [frames[0]], E2E["init_box_xyxy"].numpy()[None]
    )
    assert torch.equal(state.template_pixel_values, E2E["template_z"])
    assert torch.equal(state.template_token_type_ids, E2E["z_feat_mask"])
    assert torch.equal(state.padding_color, E2E["template_image_mean"])
    for step in range(len(frames) - 1):
        if merge:  # the fixture's per-step internals are those of the merged run
            assert np.array_equal(state.box_xyxy, E2E["search_prev_box_xyxy"][step].numpy())
        (result,) = track_step(tracker.model, tracker.image_processor, [state], [frames[step + 1]])
        if merge:
            assert np.array_equal(result.search_params, E2E["search_cropping_params"][step].numpy())
            np.testing.assert_allclose(result.box_search_px, E2E["post_box_search_px"][step].numpy(), atol=1e-3)
        assert result.best_index == E2E["best_index"][step].item()
        np.testing.assert_allclose(
            result.box_xyxy, E2E[f"pred_boxes_xyxy{suffix}"][step + 1].numpy(), atol=1e-3, rtol=0
        )
        assert result.score == pytest.approx(E2E[f"pred_confidence{suffix}"][step + 1].item(), abs=1e-5)
        assert result.state_updated


@pytest.mark.parametrize("folder", ["adapter", "merged_model"])
def test_facade_track_video_reproduces_the_official_trajectory(case_a_adapter, tmp_path, folder):
    path = case_a_adapter if folder == "adapter" else convert_case_a(tmp_path / "merged", merge=True)
    tracker = LoraTracker.from_pretrained(path, device="cpu", box_format="xyxy")
    assert type(tracker.model).__name__ == "LoraTrackerModel"
    frames = list(E2E["frames_hwc_uint8"].numpy())
    outputs = list(tracker.track_video(frames, E2E["init_box_xyxy"].numpy()))
    boxes = np.stack([o.box for o in outputs])
    np.testing.assert_allclose(boxes, E2E["pred_boxes_xyxy"].numpy(), atol=1e-3, rtol=0)
    np.testing.assert_allclose([o.score for o in outputs], E2E["pred_confidence"].numpy(), atol=1e-5, rtol=0)
    assert [o.frame_index for o in outputs] == list(range(len(frames)))


def test_onednn_kernels_track_the_official_trajectory_within_float_rounding(case_a_adapter):
    tracker = LoraTracker.from_pretrained(case_a_adapter, device="cpu", box_format="xyxy", onednn_kernels=True)
    assert all(layer.attention.onednn_kernels and layer.mlp.onednn_kernels for layer in tracker.model.encoder.layer)
    frames = list(E2E["frames_hwc_uint8"].numpy())
    outputs = list(tracker.track_video(frames, E2E["init_box_xyxy"].numpy()))
    np.testing.assert_allclose(np.stack([o.box for o in outputs]), E2E["pred_boxes_xyxy"].numpy(), atol=1e-3, rtol=0)
    np.testing.assert_allclose([o.score for o in outputs], E2E["pred_confidence"].numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("options", [dict(merge=False), dict(fuse=False)])
def test_onednn_kernels_without_the_fused_torch_model_are_refused(case_a_adapter, options):
    with pytest.raises(ValueError, match="onednn_kernels=True runs torch's fused layers"):
        LoraTracker.from_pretrained(case_a_adapter, device="cpu", onednn_kernels=True, **options)


@pytest.mark.parametrize("geometry, template, search", [("g224", 112, 224), ("g378", 196, 378)])
def test_engine_decodes_like_the_official_post_processing(geometry, template, search):
    """Fixed score maps through track_step: same cells, confidences and crop-pixel boxes as the official code."""
    config = tiny_config(template_size=template, search_size=search)
    score_map, boxes = POST[f"{geometry}_score_map"], POST[f"{geometry}_boxes"]
    stub = FixedOutputModel(config, score_map, boxes)
    processor = LoraTrackerImageProcessor.from_tracker_config(config)
    frame = np.random.default_rng(0).integers(0, 256, (500, 600, 3), dtype=np.uint8)
    states = initialize_targets(stub, processor, [frame] * len(score_map), [[250, 200, 330, 270]] * len(score_map))
    results = track_step(stub, processor, states, [frame] * len(states))
    assert stub.batch_sizes == [len(states)]  # one batched forward
    assert [r.best_index for r in results] == POST[f"{geometry}_best_index"].tolist()
    assert np.array_equal(np.stack([r.box_search_px for r in results]), POST[f"{geometry}_box_search_px"].numpy())
    assert [r.score for r in results] == POST[f"{geometry}_confidence"].tolist()


def test_state_is_kept_when_the_box_leaves_the_frame_and_replaced_otherwise():
    """Official rule: report the clipped box, but move the search centre only to a valid box inside the frame."""
    config = tiny_config()
    score_map = torch.zeros(2, 8, 8)
    score_map[:, 4, 4] = 10.0
    pred_boxes = torch.zeros(2, 8, 8, 4)
    # The target hugs the left border, so the crop's left part is padding: x_crop < 42 px is left of the frame.
    pred_boxes[0, 4, 4] = torch.tensor([0.00, 0.45, 0.30, 0.55])  # entirely left of the frame
    pred_boxes[1, 4, 4] = torch.tensor([0.40, 0.45, 0.60, 0.55])  # inside the frame
    stub = FixedOutputModel(config, score_map, pred_boxes)
    frame = np.full((90, 120, 3), 128, dtype=np.uint8)
    states = initialize_targets(stub, None, [frame, frame], [[0, 30, 20, 50], [0, 30, 20, 50]])
    before = states[0].box_xyxy.copy()
    outside, inside = track_step(stub, None, states, [frame, frame])
    assert not outside.state_updated and np.array_equal(states[0].box_xyxy, before)
    assert outside.box_xyxy[0] == outside.box_xyxy[2] == 0.0  # clipped, zero width, still reported
    assert inside.state_updated and np.array_equal(states[1].box_xyxy, inside.box_xyxy)
    assert states[0].num_tracked_frames == states[1].num_tracked_frames == 1


# ----- facade -----


def test_box_formats_and_frame_types_give_the_same_trajectory(model, clip):
    frames, gt = clip
    xyxy = LoraTracker(model, box_format="xyxy")
    xyxy.init(frames[0], gt[0])
    xywh = LoraTracker(model)
    x1, y1, x2, y2 = gt[0]
    xywh.init(Image.fromarray(frames[0]), [x1, y1, x2 - x1, y2 - y1])
    chw = LoraTracker(model, box_format="xyxy")
    chw.init(torch.from_numpy(frames[0]).permute(2, 0, 1), gt[0])
    for frame in frames[1:]:
        box_xyxy, score = xyxy.track(frame)
        box_xywh, score_xywh = xywh.track(Image.fromarray(frame))
        box_chw, score_chw = chw.track(torch.from_numpy(frame).permute(2, 0, 1))
        assert isinstance(score, float) and 0.0 <= score <= 1.0 and box_xyxy.dtype == np.float64
        np.testing.assert_allclose(box_xywh[:2], box_xyxy[:2], atol=1e-9)
        np.testing.assert_allclose(box_xywh[2:], box_xyxy[2:] - box_xyxy[:2], atol=1e-9)
        assert np.array_equal(box_chw, box_xyxy) and score == score_xywh == score_chw


def test_tracker_errors_are_clear(model, clip):
    frames, gt = clip
    tracker = LoraTracker(model, box_format="xyxy")
    with pytest.raises(RuntimeError, match=r"call tracker.init"):
        tracker.track(frames[1])
    with pytest.raises(ValueError, match="outside the 160x120 frame"):
        tracker.init(frames[0], [300, 300, 340, 330])
    with pytest.raises(ValueError, match="non-positive width or height"):
        tracker.init(frames[0], [50, 50, 40, 60])
    with pytest.raises(ValueError, match="4 numbers"):
        tracker.init(frames[0], [1, 2, 3])
    with pytest.raises(ValueError, match="exactly one of"):
        tracker.init(frames[0], gt[0], boxes=[gt[0]])
    with pytest.raises(ValueError, match="uint8"):
        tracker.init(frames[0].astype(np.float32), gt[0])
    with pytest.raises(ValueError, match=r"\(height, width, 3\) RGB"):
        tracker.init(frames[0][..., 0], gt[0])
    with pytest.raises(TypeError, match="numpy array, a PIL image or a torch tensor"):
        tracker.init(frames[0].tolist(), gt[0])
    with pytest.raises(ValueError, match="box_format"):
        LoraTracker(model, box_format="cxcywh")
    with pytest.raises(ValueError, match="does not fit the model"):
        LoraTracker(model, LoraTrackerImageProcessor(template_size=112, search_size=224))
    tracker.init(frames[0], gt[0])
    tracker.reset()
    assert not tracker.is_initialized
    with pytest.raises(RuntimeError):
        tracker.track(frames[1])


def test_box_format_applies_to_its_own_call_only(model, clip):
    frames, gt = clip
    reference = LoraTracker(model, box_format="xyxy")
    reference.init(frames[0], gt[0])
    expected_xyxy, _ = reference.track(frames[1])
    tracker = LoraTracker(model)  # xywh by default
    tracker.init(frames[0], gt[0], box_format="xyxy")  # this box is xyxy ...
    box, _ = tracker.track(frames[1])  # ... later calls keep the tracker's xywh
    np.testing.assert_allclose(box, [*expected_xyxy[:2], *(expected_xyxy[2:] - expected_xyxy[:2])], atol=1e-9)
    assert tracker.box_format == "xywh"
    reference.init(frames[0], gt[0])
    reference.track(frames[1])
    expected_xyxy, _ = reference.track(frames[2])
    box_xyxy, _ = tracker.track(frames[2], box_format="xyxy")  # one call may ask for xyxy
    np.testing.assert_array_equal(box_xyxy, expected_xyxy)
    with pytest.raises(ValueError, match="box_format"):
        tracker.track(frames[3], box_format="cxcywh")


def test_a_frame_of_another_size_is_refused_not_tracked_to_a_degenerate_box(model, clip):
    frames, gt = clip
    tracker = LoraTracker(model, box_format="xyxy")
    tracker.init(frames[0], gt[0])
    smaller = np.ascontiguousarray(frames[1][::2, ::2])
    with pytest.raises(ValueError, match=r"This frame is 80x60 but the tracker was initialised on a 160x120 frame"):
        tracker.track(smaller)
    box, score = tracker.track(frames[1])  # the refused frame changed nothing
    tracker.init(smaller, gt[0] / 2)  # a new init accepts the new size
    tracker.track(np.ascontiguousarray(frames[2][::2, ::2]))


def test_box_input_errors_show_the_box_as_the_user_wrote_it(model, clip):
    frames, _ = clip
    tracker = LoraTracker(model)
    with pytest.raises(ValueError, match=r"got the string '10,20,30,40': pass numbers"):
        tracker.init(frames[0], "10,20,30,40")
    with pytest.raises(ValueError, match=r"4 numbers \[x, y, w, h\] \(xywh\), got \['a', 1, 2, 3\]"):
        tracker.init(frames[0], ["a", 1, 2, 3])
    with pytest.raises(ValueError, match=r"each 4 numbers"):
        tracker.init(frames[0], boxes=[[1, 2, 3, 4], [1, 2]])
    with pytest.raises(ValueError, match=r"The initial box \[10, nan, 30, 40\] \(xywh\) contains NaN"):
        tracker.init(frames[0], [10, float("nan"), 30, 40])
    with pytest.raises(ValueError, match=r"The initial box \[0.5, 2, inf, 4\] \(xyxy\) contains NaN or infinity"):
        tracker.init(frames[0], [0.5, 2, float("inf"), 4], box_format="xyxy")


def test_multi_object_tracking_equals_tracking_each_object_alone(model, clip):
    frames, gt = clip
    boxes = [gt[0], [90, 60, 120, 95], [10, 70, 40, 100]]
    ids = ["square", "left", "corner"]
    calls = []
    joint = LoraTracker(model, box_format="xyxy")
    original_forward = model.forward
    try:
        model.forward = lambda **kw: calls.append(len(kw["search_pixel_values"])) or original_forward(**kw)
        joint.init(frames[0], boxes=boxes, object_ids=ids)
        joint_outputs = [joint.track(frame) for frame in frames[1:]]
    finally:
        del model.forward
    assert calls == [3] * (len(frames) - 1)  # one batched forward per frame
    for object_id, box in zip(ids, boxes, strict=True):
        alone = LoraTracker(model, box_format="xyxy")
        alone.init(frames[0], box)
        for frame, joint_output in zip(frames[1:], joint_outputs, strict=True):
            single_box, single_score = alone.track(frame)
            np.testing.assert_allclose(joint_output[object_id][0], single_box, atol=1e-3, rtol=0)
            assert joint_output[object_id][1] == pytest.approx(single_score, abs=1e-5)
    assert list(joint_outputs[0]) == ids


def test_engine_tracks_different_videos_in_one_batch_independently(model):
    clip_a, gt_a = moving_square_clip(5, size_wh=(160, 120), seed=1)
    clip_b, gt_b = moving_square_clip(5, size_wh=(200, 150), seed=2, step=(-4, 2))
    processor = LoraTrackerImageProcessor.from_tracker_config(model.config)
    template_calls = []
    prepare_template = processor.prepare_template
    processor.prepare_template = lambda *a: template_calls.append(1) or prepare_template(*a)
    states = initialize_targets(model, processor, [clip_a[0], clip_b[0]], [gt_a[0], gt_b[0]], object_ids=["a", "b"])
    templates = [s.template_pixel_values for s in states]
    batched = [track_step(model, processor, states, [fa, fb]) for fa, fb in zip(clip_a[1:], clip_b[1:], strict=True)]
    assert len(template_calls) == 2  # the template crop is computed once per target
    assert all(s.template_pixel_values is t for s, t in zip(states, templates, strict=True))
    assert states[1].frame_size_wh == (200, 150)
    for index, (video, gt) in enumerate(((clip_a, gt_a), (clip_b, gt_b))):
        (alone,) = initialize_targets(model, processor, [video[0]], [gt[0]])
        for frame, step_results in zip(video[1:], batched, strict=True):
            (result,) = track_step(model, processor, [alone], [frame])
            assert step_results[index].object_id == "ab"[index]
            np.testing.assert_allclose(step_results[index].box_xyxy, result.box_xyxy, atol=1e-3, rtol=0)
            assert step_results[index].best_index == result.best_index


def test_max_batch_size_chunks_the_forward_without_changing_results(model, clip):
    frames, gt = clip
    boxes = [gt[0], [90, 60, 120, 95], [10, 70, 40, 100]]
    whole = LoraTracker(model, box_format="xyxy")
    chunked = LoraTracker(model, box_format="xyxy", max_batch_size=2)
    whole.init(frames[0], boxes=boxes)
    chunked.init(frames[0], boxes=boxes)
    for frame in frames[1:3]:
        a, b = whole.track(frame), chunked.track(frame)
        for object_id in a:
            np.testing.assert_allclose(a[object_id][0], b[object_id][0], atol=1e-3, rtol=0)


def test_from_pretrained_uses_the_saved_image_processor(tmp_path, model, clip):
    model.save_pretrained(tmp_path / "merged")
    plain = LoraTracker.from_pretrained(tmp_path / "merged", device="cpu")
    assert plain.image_processor.window_penalty == 0.45
    LoraTrackerImageProcessor.from_tracker_config(model.config, window_penalty=0.2).save_pretrained(
        tmp_path / "merged"
    )
    tuned = LoraTracker.from_pretrained(tmp_path / "merged", device="cpu")
    assert tuned.image_processor.window_penalty == 0.2
    frames, gt = clip
    reference = LoraTracker(model, LoraTrackerImageProcessor.from_tracker_config(model.config, window_penalty=0.2))
    tuned.init(frames[0], [40, 30, 28, 28])
    reference.init(frames[0], [40, 30, 28, 28])
    assert np.array_equal(tuned.track(frames[1])[0], reference.track(frames[1])[0])
    with pytest.raises(TypeError, match="Unexpected keyword"):
        LoraTracker.from_pretrained(tmp_path / "merged", merge_weights=True)


def test_track_video_reads_files_and_stops_at_max_frames(tmp_path, model, clip):
    frames, gt = clip
    path = write_video(tmp_path / "clip.avi", frames)
    tracker = LoraTracker(model, box_format="xyxy")
    outputs = list(tracker.track_video(path, gt[0], max_frames=4))
    assert [o.frame_index for o in outputs] == [0, 1, 2, 3]
    assert outputs[0].frame.shape == (120, 160, 3) and outputs[0].score == 1.0
    assert np.array_equal(outputs[0].box, gt[0]) and list(outputs[0].objects) == [0]


def test_compute_dtype_resolution():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_autocast_dtype(None, cuda) is None and resolve_autocast_dtype("float32", cuda) is None
    assert resolve_autocast_dtype("fp16", cuda) is torch.float16
    assert resolve_autocast_dtype(torch.bfloat16, cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        resolve_autocast_dtype(torch.float64, cpu)
    with pytest.raises(ValueError, match="Unknown dtype"):
        resolve_autocast_dtype("float8", cpu)


def test_bfloat16_tracks_close_to_float32(model, clip):
    frames, gt = clip
    full = LoraTracker(model, box_format="xyxy")
    half = LoraTracker(lively_tiny_model(seed=0), box_format="xyxy", dtype="bfloat16")  # converts its model
    full.init(frames[0], gt[0])
    half.init(frames[0], gt[0])
    box_full, _ = full.track(frames[1])
    box_half, score_half = half.track(frames[1])
    assert 0.0 <= score_half <= 1.0 and np.all(np.isfinite(box_half))
    assert np.abs(box_full - box_half).max() < 8.0  # a few pixels at most on a 160x120 frame


def test_processor_and_model_must_agree():
    model = lively_tiny_model(seed=1)
    check_processor_matches(model, LoraTrackerImageProcessor.from_tracker_config(model.config))
    with pytest.raises(ValueError, match=r"search_size: processor \(224, 224\) vs model \(112, 112\)"):
        check_processor_matches(model, LoraTrackerImageProcessor.from_tracker_config(LoraTrackerConfig()))
    with pytest.raises(TypeError, match="Expected a LoraTrackerModel"):
        LoraTracker(torch.nn.Linear(2, 2))
    assert LoraTracker(model).image_processor.search_size_wh == (112, 112)
