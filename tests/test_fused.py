"""Fused inference layers: equal outputs to the unfused model, standard state dict, chosen by LoraTracker, bf16."""

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import MODEL_CASES, OFFICIAL
from safetensors.torch import load_file
from torch import nn
from tracking_helpers import convert_case_a, lively_tiny_model, moving_square_clip

from lorat_hf import LoraTrackerModel, add_adapters, load_tracker_model
from lorat_hf.convert import convert
from lorat_hf.modeling_lora_tracker_fused import FusedDinov2Layer, fuse_for_inference, inference_linear, is_fused
from lorat_hf.tracking import LoraTracker

E2E = load_file(OFFICIAL / "tracking_e2e" / "tracking.safetensors")


def _inputs(model, batch=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    (zw, zh), (xw, xh) = model.config.template_size_wh, model.config.search_size_wh
    gzw, gzh = model.config.template_grid_wh
    return dict(
        template_pixel_values=torch.randn(batch, 3, zh, zw, generator=generator),
        search_pixel_values=torch.randn(batch, 3, xh, xw, generator=generator),
        template_token_type_ids=torch.randint(0, 2, (batch, gzh, gzw), generator=generator),
    )


@pytest.mark.parametrize("swiglu", [False, True], ids=["gelu", "swiglu"])
def test_fused_model_equals_the_unfused_one(swiglu):
    model = lively_tiny_model(seed=3, dinov2=dict(use_swiglu_ffn=swiglu))
    fused = fuse_for_inference(copy.deepcopy(model))
    assert is_fused(fused) and not is_fused(model)
    assert all(isinstance(layer, FusedDinov2Layer) for layer in fused.encoder.layer)
    inputs = _inputs(model)
    with torch.no_grad():
        reference, output = model(**inputs, output_hidden_states=True), fused(**inputs, output_hidden_states=True)
    assert (output.score_map - reference.score_map).abs().max() <= 1e-5
    assert (output.pred_boxes - reference.pred_boxes).abs().max() <= 1e-5
    assert len(output.hidden_states) == len(reference.hidden_states)
    assert fuse_for_inference(fused) is fused  # fusing twice changes nothing


@pytest.mark.parametrize("name", MODEL_CASES)
def test_fused_model_reproduces_the_official_merged_outputs(tmp_path, name):
    config = json.loads((OFFICIAL / name / "config.json").read_text())
    io = load_file(OFFICIAL / name / "io.safetensors")
    folder = convert(
        OFFICIAL / name / "dinov2.safetensors",
        OFFICIAL / name / "lorat_release.safetensors",
        tmp_path / "merged",
        num_heads=config["backbone"]["num_heads"],
        template_size=config["geometry"]["template_size_wh"][0],
        search_size=config["geometry"]["search_size_wh"][0],
        merge=True,
    )
    model = load_tracker_model(folder)
    fused = fuse_for_inference(copy.deepcopy(model))
    inputs = dict(
        template_pixel_values=io["z"], search_pixel_values=io["x"], template_token_type_ids=io["z_feat_mask"]
    )
    with torch.no_grad():
        reference, output = model(**inputs), fused(**inputs)
    assert (output.score_map - reference.score_map).abs().max() <= 1e-5
    assert (output.pred_boxes - reference.pred_boxes).abs().max() <= 1e-5
    # the official merged model fuses qkv the same way
    assert (output.score_map - io["score_map_merged"]).abs().max() <= 5e-6
    torch.testing.assert_close(output.pred_boxes, io["boxes_merged"], atol=config["recommended_atol"]["boxes"], rtol=0)


def test_fused_state_dict_is_the_standard_one(tmp_path):
    model = lively_tiny_model(seed=4, dinov2=dict(use_swiglu_ffn=True))
    fused = fuse_for_inference(copy.deepcopy(model))
    expected, saved = model.state_dict(), fused.state_dict()
    assert list(saved) == list(expected)
    assert all(torch.equal(saved[key], expected[key]) for key in expected)

    fused.save_pretrained(tmp_path / "fused")  # an ordinary checkpoint that the unfused class loads
    reloaded = LoraTrackerModel.from_pretrained(tmp_path / "fused").eval()
    inputs = _inputs(model, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).score_map, model(**inputs).score_map, atol=0, rtol=0)

    other = fuse_for_inference(lively_tiny_model(seed=5, dinov2=dict(use_swiglu_ffn=True)))
    other.load_state_dict(expected)  # standard keys load into fused layers
    with torch.no_grad():
        assert (other(**inputs).score_map - model(**inputs).score_map).abs().max() <= 1e-5


def test_adapters_must_be_merged_before_fusing():
    peft_model = add_adapters(lively_tiny_model(seed=6))
    with pytest.raises(TypeError, match="merge"):
        fuse_for_inference(peft_model)
    with pytest.raises(TypeError, match="merge them first"):
        fuse_for_inference(peft_model.get_base_model())
    assert not is_fused(peft_model.merge_and_unload())


@pytest.fixture(scope="module")
def case_a_adapter(tmp_path_factory):
    return convert_case_a(tmp_path_factory.mktemp("case_a") / "adapter")


def _official_run(tracker):
    frames = E2E["frames_hwc_uint8"].numpy()
    tracker.init(frames[0], E2E["init_box_xyxy"].numpy())
    return np.stack([tracker.track(frame)[0] for frame in frames[1:]])


def test_from_pretrained_fuses_merged_trackers_and_still_tracks_like_the_official_code(case_a_adapter):
    tracker = LoraTracker.from_pretrained(case_a_adapter, device="cpu", box_format="xyxy")
    assert is_fused(tracker.model)
    assert not is_fused(LoraTracker.from_pretrained(case_a_adapter, device="cpu", fuse=False).model)
    assert type(LoraTracker.from_pretrained(case_a_adapter, merge=False, device="cpu").model).__name__ == "PeftModel"
    boxes = _official_run(tracker)
    np.testing.assert_allclose(boxes, E2E["pred_boxes_xyxy"][1:].numpy(), atol=1e-3, rtol=0)


def test_bfloat16_converts_the_weights_once_and_tracks_close_to_float32(case_a_adapter):
    tracker = LoraTracker.from_pretrained(case_a_adapter, device="cpu", box_format="xyxy", dtype="bfloat16")
    assert tracker.autocast_dtype is None
    assert {p.dtype for p in tracker.model.parameters()} == {torch.bfloat16}
    frames = E2E["frames_hwc_uint8"].numpy()
    tracker.init(frames[0], E2E["init_box_xyxy"].numpy())
    box, _ = tracker.track(frames[1])  # later frames drift apart: a random model's trajectory is chaotic
    assert np.abs(box - E2E["pred_boxes_xyxy"][1].numpy()).max() < 1.0  # px on a 320x240 frame
    io = load_file(OFFICIAL / "model_a_224_gelu" / "io.safetensors")
    half = {k: v.bfloat16() if v.is_floating_point() else v for k, v in io.items()}
    with torch.no_grad():
        output = tracker.model(half["z"], half["x"], half["z_feat_mask"])
    assert output.pred_boxes.dtype == torch.float32  # the head returns fp32
    assert ((output.pred_boxes - io["boxes_merged"]).abs() * 224).max() < 1.0  # px in the search crop, every cell

    frames, gt = moving_square_clip(num_frames=3)
    model = lively_tiny_model(seed=0)
    half = LoraTracker(model, box_format="xyxy", dtype=torch.bfloat16)
    assert half.model is model and model.tracker_head.box_mlp.layers[0].weight.dtype == torch.bfloat16
    half.init(frames[0], gt[0])
    box, score = half.track(frames[1])
    assert box.dtype == np.float64 and 0.0 <= score <= 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("gelu", [False, True], ids=["linear", "linear_gelu"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
def test_inference_linear_equals_linear_then_gelu(dtype, gelu, with_bias):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 7, 24, generator=generator).to(dtype)
    weight = nn.Parameter(torch.randn(40, 24, generator=generator).to(dtype) / 5, requires_grad=False)
    bias = torch.randn(40, generator=generator).to(dtype) if with_bias else None
    expected = F.linear(hidden.float(), weight.float(), None if bias is None else bias.float())
    expected = F.gelu(expected) if gelu else expected
    with torch.inference_mode():
        output = inference_linear(hidden, weight, bias, gelu=gelu)
    assert output.shape == (2, 7, 40) and output.dtype == dtype
    torch.testing.assert_close(
        output.float(), expected, **({} if dtype == torch.float32 else dict(atol=0.05, rtol=0.02))
    )


def test_inference_linear_keeps_gradients_when_asked():
    weight = nn.Parameter(torch.randn(5, 3))
    output = inference_linear(torch.randn(4, 3), weight, None, gelu=True)
    output.sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
