"""LoRATv2 through the tracking engine: the official phase-1 run, phase 2's reference rule, the front doors."""

import numpy as np
import pytest
import torch
from data_factories import make_generic
from safetensors.torch import load_file
from test_modeling_loratv2 import OFFICIAL_V2, official_case, official_weights, tiny_v2_config
from tracking_helpers import moving_square_clip, write_frame_folder
from transformers import pipeline

from lorat_hf import LoraTracker, Loratv2Model, initialize_targets, track_step
from lorat_hf.convert_loratv2 import build_merged_model, convert_loratv2
from lorat_hf.engine import get_backend
from lorat_hf.engine.loratv2 import KV_CACHE, Loratv2Backend, should_update_reference
from lorat_hf.engine.state import TrackResult
from lorat_hf.pipeline_video_object_tracking import TASK, register_pipeline
from lorat_hf.processing_lora_tracker import LoraTrackerProcessor, propagate_in_video_iterator

E2E = OFFICIAL_V2 / "e2e_phase1"


@pytest.fixture(scope="module")
def phase1_model():
    _, _, state, config = official_case("model_p1")
    return build_merged_model(config, state, *official_weights("model_p1"))


def test_official_phase1_run_is_reproduced(phase1_model):
    run = load_file(E2E / "e2e.safetensors")
    frames = run["frames"].numpy()
    tracker = LoraTracker(phase1_model, box_format="xyxy")
    tracker.init(frames[0], run["init_box"].numpy())
    boxes, scores = zip(*(tracker.track(frame) for frame in frames[1:]), strict=True)
    np.testing.assert_allclose(np.stack(boxes), run["pred_boxes"].numpy(), atol=1e-2, rtol=0)
    np.testing.assert_allclose(scores, run["pred_confidence"].numpy(), atol=1e-5, rtol=0)


def test_template_runs_once_and_search_steps_run_only_search_tokens(phase1_model):
    run = load_file(E2E / "e2e.safetensors")
    frames = run["frames"].numpy()
    states = initialize_targets(phase1_model, None, [frames[0]], run["init_box"].numpy()[None])
    cache = states[0].extras[KV_CACHE]
    template_keys = cache.keys[0][:, :, :260].clone()
    assert template_keys.abs().sum() > 0
    calls = []
    handle = phase1_model.embeddings.patch_embeddings.register_forward_hook(
        lambda module, inputs, output: calls.append(inputs[0].shape[-1])
    )
    try:
        track_step(phase1_model, None, states, [frames[1]])
    finally:
        handle.remove()
    assert calls == [224]  # one patch embedding: the search crop, not the template
    torch.testing.assert_close(states[0].extras[KV_CACHE].keys[0][:, :, :260], template_keys)


def test_reference_rule_is_strictly_above_the_threshold_and_needs_an_accepted_box():
    assert should_update_reference(0.95, True, 0.9)
    assert not should_update_reference(0.9, True, 0.9)
    assert not should_update_reference(0.5, True, 0.9)
    assert not should_update_reference(0.99, False, 0.9)


def _clip(seed=0, frames=3, size=(96, 80)):
    generator = np.random.default_rng(seed)
    video = generator.integers(0, 255, (frames, size[1], size[0], 3), dtype=np.uint8)
    return video, np.array([30.0, 25.0, 52.0, 47.0])


@pytest.fixture(scope="module")
def phase2_model():
    torch.manual_seed(0)
    config = tiny_v2_config(
        dinov2={"image_size": 14 * 12}, template_size=56, search_sizes=[56, 84], search_area_factors=[4.0, 5.0]
    )
    return Loratv2Model(config).eval()


def test_phase2_first_frame_is_the_training_forward_with_the_first_frame_as_reference(phase2_model):
    """init fills the reference region from frame 0; the tracked region is the last one."""
    video, box = _clip()
    backend = get_backend(phase2_model)
    assert isinstance(backend, Loratv2Backend)
    processor = backend.default_image_processor()
    states = initialize_targets(phase2_model, processor, [video[0]], box[None])
    template = processor.prepare_template(video[0], box)
    reference = backend.reference_image_processor(processor).prepare_search(video[0], box, template.padding_color)
    search = processor.prepare_search(video[1], box, template.padding_color)
    with torch.no_grad():
        expected = phase2_model(
            template.pixel_values[None],
            [reference.pixel_values[None], search.pixel_values[None]],
            template.token_type_ids[None],
        )
        score_map, boxes = backend.search(states, search.pixel_values[None])
    torch.testing.assert_close(score_map, expected.score_map, atol=1e-5, rtol=0)
    torch.testing.assert_close(boxes, expected.pred_boxes, atol=1e-6, rtol=0)


def test_phase2_reference_is_refreshed_only_for_confident_accepted_frames(phase2_model):
    video, box = _clip(frames=2)
    backend = get_backend(phase2_model)
    processor = backend.default_image_processor()
    states = initialize_targets(
        phase2_model, processor, [video[0]] * 3, np.stack([box] * 3), object_ids=["a", "b", "c"]
    )
    start, end = phase2_model.config.chunk_offsets[1], phase2_model.config.chunk_offsets[2]
    before = [s.extras[KV_CACHE].keys[-1][:, :, start:end].clone() for s in states]
    for state in states:
        state.box_xyxy = box + 3.0  # the new reference is cropped around the accepted box
    results = [
        TrackResult(s.object_id, s.box_xyxy, score, accepted, np.zeros(4), 0, np.eye(2))
        for s, score, accepted in zip(states, [0.95, 0.9, 0.97], [True, True, False], strict=True)
    ]
    backend.after_step(states, [video[1]] * 3, results, processor)
    changed = [
        not torch.equal(s.extras[KV_CACHE].keys[-1][:, :, start:end], b) for s, b in zip(states, before, strict=True)
    ]
    assert changed == [True, False, False]
    # the refreshed slot holds exactly region 0 encoded from frame 1 around the accepted box ("b" started like "a")
    check = states[1].extras[KV_CACHE].rows([0])
    crop = backend.reference_image_processor(processor).prepare_search(video[1], box + 3.0, states[0].padding_color)
    with torch.no_grad():
        phase2_model.update_region(0, crop.pixel_values[None], check)
    torch.testing.assert_close(states[0].extras[KV_CACHE].keys[-1], check.keys[-1], atol=1e-6, rtol=0)


def test_batched_targets_track_like_single_targets(phase2_model):
    video, box = _clip(frames=4)
    boxes = [box, box + np.array([5.0, 2.0, 9.0, 6.0])]
    together = LoraTracker(phase2_model, box_format="xyxy")
    together.init(video[0], boxes=boxes, object_ids=["x", "y"])
    joint = [together.track(frame) for frame in video[1:]]
    for object_id, start in zip(["x", "y"], boxes, strict=True):
        alone = LoraTracker(phase2_model, box_format="xyxy")
        alone.init(video[0], start)
        for frame, both in zip(video[1:], joint, strict=True):
            single_box, single_score = alone.track(frame)
            np.testing.assert_allclose(single_box, both[object_id][0], atol=1e-3)
            assert abs(single_score - both[object_id][1]) < 1e-4


# ----------------------------------------------------------------------------------------------------------------
# Front doors
# ----------------------------------------------------------------------------------------------------------------


def test_converted_adapter_folder_tracks_the_official_run_through_from_pretrained(tmp_path):
    meta_case = OFFICIAL_V2 / "model_p1"
    convert_loratv2(
        meta_case / "backbone.safetensors",
        meta_case / "loratv2_checkpoint.safetensors",
        tmp_path / "adapters",
        num_heads=2,
        template_size=224,
        search_sizes=[224],
        lora_alpha=16,
    )
    run = load_file(E2E / "e2e.safetensors")
    frames = run["frames"].numpy()
    tracker = LoraTracker.from_pretrained(tmp_path / "adapters", box_format="xyxy", device="cpu")
    assert isinstance(tracker.model, Loratv2Model)  # streams merged on load: no LoRA cost while tracking
    tracker.init(frames[0], run["init_box"].numpy())
    boxes = np.stack([tracker.track(frame)[0] for frame in frames[1:]])
    np.testing.assert_allclose(boxes, run["pred_boxes"].numpy(), atol=1e-2, rtol=0)


@pytest.fixture(scope="module")
def phase2_dir(tmp_path_factory, phase2_model):
    folder = tmp_path_factory.mktemp("loratv2") / "tiny-p2"
    phase2_model.save_pretrained(folder)
    return folder


def test_session_pipeline_and_facade_agree(phase2_model):
    frames, gt = moving_square_clip(num_frames=4, seed=5)
    expected = list(LoraTracker(phase2_model, box_format="xyxy").track_video(frames, gt[0]))
    processor = LoraTrackerProcessor.from_tracker_config(phase2_model.config)
    session = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=1, input_boxes=[[gt[0].tolist()]])
    outputs = list(propagate_in_video_iterator(phase2_model, session))
    for output, reference in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(output.pred_boxes[0].numpy(), reference.box, atol=1e-6)
    register_pipeline()
    x1, y1, x2, y2 = gt[0]
    results = pipeline(TASK, model=phase2_model)(list(frames), init_box=[x1, y1, x2 - x1, y2 - y1])
    assert [r["frame_index"] for r in results] == list(range(4))
    np.testing.assert_allclose(results[-1]["score"], expected[-1].score, atol=1e-6)


def test_lorat_track_and_lorat_eval_run_take_a_loratv2_folder(tmp_path, phase2_dir):
    from lorat_hf.commands.evaluate import main as evaluate_main
    from lorat_hf.commands.track import main as track_main

    frames, gt = moving_square_clip(num_frames=5, seed=2)
    folder = write_frame_folder(tmp_path / "frames", frames)
    x1, y1, x2, y2 = gt[0]
    box = f"{x1:g},{y1:g},{x2 - x1:g},{y2 - y1:g}"
    argv = [str(folder), "--box", box, "--model", str(phase2_dir), "--save-boxes", str(tmp_path / "b.csv")]
    assert track_main([*argv, "--device", "cpu", "--quiet"]) == 0
    assert len((tmp_path / "b.csv").read_text().splitlines()) == 1 + 5

    sequences = make_generic(tmp_path / "G", names=("a", "b"), num_frames=4, size_wh=(96, 72), extension="jpg")
    output = tmp_path / "run"
    args = ["run", "--model", str(phase2_dir), "--dataset", "generic", "--dataset-root", str(tmp_path / "G"),
            "--output", str(output), "--cache-dir", str(tmp_path / "cache"), "--batch-size", "2",
            "--num-workers", "1"]  # fmt: skip
    assert evaluate_main(args) == 0
    for name in sequences:
        assert len((output / "results" / f"{name}.txt").read_text().splitlines()) == 4


def test_reported_box_is_the_prediction_and_the_next_crop_centres_on_it_clipped(phase2_model):
    """Like the official LoRATv2 pipeline: the box is reported as predicted (it may leave the frame); the state keeps
    it clipped to the frame, which centres the next search crop."""

    class OutwardBackend(Loratv2Backend):
        def search(self, states, search_pixel_values):
            score_map, boxes = super().search(states, search_pixel_values)
            return score_map, torch.tensor([-2.0, -2.0, 0.6, 0.6]).expand_as(boxes).clone()

    video, box = _clip(frames=2)
    backend = OutwardBackend(phase2_model)
    states = initialize_targets(backend, None, [video[0]], box[None])
    (result,) = track_step(backend, None, states, [video[1]])
    assert result.box_xyxy[0] < 0 and result.box_xyxy[1] < 0
    assert result.state_updated
    np.testing.assert_allclose(states[0].box_xyxy[:2], [0.0, 0.0])
    np.testing.assert_allclose(states[0].box_xyxy[2:], result.box_xyxy[2:])
