"""Fused LoRATv2 inference: equal to the unfused model on the training and KV-cache paths, official parity, standard
state dict, chosen by LoraTracker.from_pretrained, bf16 weights."""

import copy

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_modeling_loratv2 import (
    OFFICIAL_V2,
    assert_outputs,
    official_case,
    official_weights,
    random_inputs,
    search_inputs,
    tiny_v2_config,
)
from tracking_helpers import lively_weights, moving_square_clip

from lorat_hf import LoraTracker, Loratv2Model
from lorat_hf.adapters_loratv2 import add_stream_adapters
from lorat_hf.convert_loratv2 import build_merged_model
from lorat_hf.modeling_lora_tracker_fused import fuse_for_inference, is_fused
from lorat_hf.modeling_loratv2_fused import FusedLoratv2Layer

ATOL = 1e-5


def lively_v2(seed=0, **overrides):
    return lively_weights(Loratv2Model(tiny_v2_config(**overrides)), seed)


def _stream(model, template, searches, mask, rows=(2, 0)):
    """init_template, update_region for every earlier region, track_region of the last; returns (output, cache)."""
    cache = model.new_kv_cache(3)
    model.init_template(template, cache, mask, cache_rows=list(rows))
    for region, crop in enumerate(searches[:-1]):
        model.update_region(region, crop, cache, list(rows))
    return model.track_region(len(searches) - 1, searches[-1], cache, list(rows)), cache


@pytest.mark.parametrize("swiglu", [False, True], ids=["gelu", "swiglu"])
def test_fused_loratv2_equals_the_unfused_model_on_both_paths(swiglu):
    model = lively_v2(seed=1, dinov2={"use_swiglu_ffn": swiglu})
    fused = fuse_for_inference(copy.deepcopy(model))
    assert is_fused(fused) and not is_fused(model)
    assert all(isinstance(layer, FusedLoratv2Layer) for layer in fused.encoder.layer)
    template, searches, mask = random_inputs(model.config, batch=2, seed=4)
    with torch.no_grad():
        reference, output = model(template, searches, mask), fused(template, searches, mask)
        (streamed_ref, cache_ref), (streamed, cache) = (_stream(m, template, searches, mask) for m in (model, fused))
    assert reference.score_map.std() > 0.1  # outputs that vary: the comparison means something
    for got, expected in ((output, reference), (streamed, streamed_ref), (streamed, reference)):
        assert (got.score_map - expected.score_map).abs().max() <= ATOL
        assert (got.pred_boxes - expected.pred_boxes).abs().max() <= ATOL
    for got, expected in zip(cache.keys + cache.values, cache_ref.keys + cache_ref.values, strict=True):
        assert (got - expected).abs().max() <= ATOL
    assert not cache.keys[0][1].any(), "an unused cache row stays untouched"
    assert fuse_for_inference(fused) is fused


@pytest.mark.parametrize("case", ["model_p1", "model_p2"])
def test_fused_loratv2_reproduces_the_official_outputs(case):
    _, io, state, config = official_case(case)
    model = fuse_for_inference(build_merged_model(config, state, *official_weights(case)))
    rows = io["kv.kv_cache_batch_idx"].long()
    cache = model.new_kv_cache(3)
    with torch.no_grad():
        assert_outputs(model(io["z"], search_inputs(io), io["z_feat_mask"]), io, "merged.train")
        model.init_template(io["z"], cache, io["z_feat_mask"], cache_rows=rows)
        if case == "model_p1":
            assert_outputs(model.track_region(0, io["x_0"], cache, rows), io, "kv.track_0")
            for layer in range(config.dinov2_config.num_hidden_layers):
                torch.testing.assert_close(cache.keys[layer], io[f"kv.after_track_0.k.{layer}"], atol=1e-5, rtol=0)
                torch.testing.assert_close(cache.values[layer], io[f"kv.after_track_0.v.{layer}"], atol=1e-5, rtol=0)
        else:
            model.update_region(0, io["x_0"], cache, rows)
            assert_outputs(model.track_region(1, io["x_1"], cache, rows), io, "kv.track_1")
            torch.testing.assert_close(cache.keys[-1], io["kv.after_track_1.k.1"], atol=1e-5, rtol=0)


def test_fused_loratv2_saves_and_loads_the_standard_state_dict(tmp_path):
    model = lively_v2(seed=2, dinov2={"use_swiglu_ffn": True})
    fused = fuse_for_inference(copy.deepcopy(model))
    expected, saved = model.state_dict(), fused.state_dict()
    assert list(saved) == list(expected)
    assert all(torch.equal(saved[key], expected[key]) for key in expected)
    fused.save_pretrained(tmp_path / "fused")
    reloaded = Loratv2Model.from_pretrained(tmp_path / "fused").eval()
    template, searches, mask = random_inputs(model.config, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(template, searches, mask).score_map, model(template, searches, mask).score_map
        )
    other = fuse_for_inference(lively_v2(seed=3, dinov2={"use_swiglu_ffn": True}))
    other.load_state_dict(expected)
    with torch.no_grad():
        assert (
            other(template, searches, mask).score_map - model(template, searches, mask).score_map
        ).abs().max() <= ATOL


def test_stream_adapters_must_be_merged_before_fusing():
    peft_model = add_stream_adapters(lively_v2(seed=4))
    with pytest.raises(TypeError, match="merge"):
        fuse_for_inference(peft_model)
    with pytest.raises(TypeError, match="merge them first"):
        fuse_for_inference(peft_model.get_base_model())


@pytest.fixture(scope="module")
def phase2_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loratv2_fused") / "tiny-p2"
    config = {"search_sizes": [56, 84], "dinov2": {"image_size": 14 * 12}}
    lively_v2(seed=5, **config).save_pretrained(folder)
    return folder


def test_from_pretrained_fuses_loratv2_and_tracks_like_the_unfused_model(phase2_dir):
    frames, gt = moving_square_clip(num_frames=5, seed=3)
    fused = LoraTracker.from_pretrained(phase2_dir, device="cpu", box_format="xyxy")
    plain = LoraTracker.from_pretrained(phase2_dir, device="cpu", box_format="xyxy", fuse=False)
    assert is_fused(fused.model) and not is_fused(plain.model)
    runs = [list(tracker.track_video(frames, gt[0])) for tracker in (fused, plain)]
    for got, expected in zip(*runs, strict=True):
        np.testing.assert_allclose(got.box, expected.box, atol=1e-3)
        assert abs(got.score - expected.score) <= 1e-5

    bf16 = LoraTracker.from_pretrained(phase2_dir, device="cpu", box_format="xyxy", dtype=torch.bfloat16)
    assert is_fused(bf16.model) and bf16.model.dtype == torch.bfloat16 and bf16.autocast_dtype is None
    assert all(np.isfinite(r.box).all() for r in bf16.track_video(frames, gt[0]))
    # one streaming step from the same inputs: bf16 weights keep the logits within ~1% and boxes within ~0.2% of the crop
    template, searches, mask = random_inputs(plain.model.config, batch=2, seed=4)
    with torch.no_grad():
        expected, _ = _stream(plain.model, template, searches, mask)
        low, _ = _stream(bf16.model, template.bfloat16(), [x.bfloat16() for x in searches], mask)
    assert (low.score_map.float() - expected.score_map).abs().max() <= 0.02 * expected.score_map.abs().max()
    assert (low.pred_boxes.float() - expected.pred_boxes).abs().max() <= 5e-3


def test_official_phase1_run_through_the_fused_tracker():
    _, _, state, config = official_case("model_p1")
    run = load_file(OFFICIAL_V2 / "e2e_phase1" / "e2e.safetensors")
    frames = run["frames"].numpy()
    tracker = LoraTracker(fuse_for_inference(build_merged_model(config, state, *official_weights("model_p1"))))
    tracker.box_format = "xyxy"
    tracker.init(frames[0], run["init_box"].numpy())
    boxes, scores = zip(*(tracker.track(frame) for frame in frames[1:]), strict=True)
    np.testing.assert_allclose(np.stack(boxes), run["pred_boxes"].numpy(), atol=1e-2, rtol=0)
    np.testing.assert_allclose(scores, run["pred_confidence"].numpy(), atol=1e-5, rtol=0)
