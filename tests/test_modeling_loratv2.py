"""LoRATv2: parity with the official fixtures (training path, streaming path, merged and adapter models) and the
behaviour that must hold for any shape (chunked causal attention, KV cache rows, stream adapters)."""

import json

import pytest
import torch
from conftest import FIXTURES
from safetensors.torch import load_file
from transformers import AutoModel

from lorat_hf import Loratv2Config, Loratv2KVCache, Loratv2Model
from lorat_hf.adapters_loratv2 import (
    add_stream_adapters,
    load_stream_adapters,
    save_stream_adapters,
    stream_adapter_folders,
)
from lorat_hf.convert import CheckpointError
from lorat_hf.convert_loratv2 import build_adapter_model, build_merged_model, load_backbone, parse_official_loratv2
from lorat_hf.modeling_loratv2 import chunk_causal_mask

OFFICIAL_V2 = FIXTURES / "loratv2-official"
LOGITS_ATOL, BOXES_ATOL = 1e-4, 1e-5


def official_case(case: str, lora_alpha: float | None = None):
    """(fixture config, io tensors, backbone state, Loratv2Config) of an official fixture case."""
    meta = json.loads((OFFICIAL_V2 / case / "config.json").read_text())
    io = load_file(OFFICIAL_V2 / case / "io.safetensors")
    state, dinov2_config = load_backbone(OFFICIAL_V2 / case / "backbone.safetensors", meta["backbone"]["num_heads"])
    regions = meta["common"]["search_regions"]
    config = Loratv2Config(
        dinov2_config=dinov2_config,
        template_size=meta["common"]["templates"][0]["size"],
        search_sizes=[r["size"] for r in regions],
        search_area_factors=[r["area_factor"] for r in regions],
        lora_r=meta["model"]["lora_r"],
        lora_alpha=lora_alpha if lora_alpha is not None else meta["model"]["lora_alpha"],
    )
    return meta, io, state, config


def official_weights(case: str):
    """(checkpoint, phase-1 source): phase 2 takes its phase-1 streams from the full state dict."""
    checkpoint = parse_official_loratv2(load_file(OFFICIAL_V2 / case / "loratv2_checkpoint.safetensors"))
    if case != "model_p2":
        return checkpoint, None
    full = load_file(OFFICIAL_V2 / case / "loratv2_full_state_dict.safetensors")
    phase1 = {k: v for k, v in full.items() if ".2." not in k and not k.endswith(("embed.1",)) and "heads.1" not in k}
    return checkpoint, parse_official_loratv2(phase1)


def search_inputs(io):
    return [io["x_0"]] + ([io["x_1"]] if "x_1" in io else [])


def assert_outputs(output, io, prefix):
    torch.testing.assert_close(output.score_map, io[f"{prefix}.score_map"], atol=LOGITS_ATOL, rtol=0)
    torch.testing.assert_close(output.pred_boxes, io[f"{prefix}.boxes"], atol=BOXES_ATOL, rtol=0)


@pytest.mark.parametrize("case", ["model_p1", "model_p1_alpha_eq_r", "model_p2"])
def test_merged_model_training_path_matches_official(case):
    _, io, state, config = official_case(case)
    model = build_merged_model(config, state, *official_weights(case))
    with torch.no_grad():
        output = model(io["z"], search_inputs(io), io["z_feat_mask"])
    assert_outputs(output, io, "merged.train")


@pytest.mark.parametrize("case", ["model_p1", "model_p2"])
def test_streaming_path_matches_official_outputs_and_cache(case):
    _, io, state, config = official_case(case)
    model = build_merged_model(config, state, *official_weights(case))
    rows = io["kv.kv_cache_batch_idx"].long()
    cache = model.new_kv_cache(3)
    with torch.no_grad():
        model.init_template(io["z"], cache, io["z_feat_mask"], cache_rows=rows)
        assert_outputs(model.track_region(0, io["x_0"], cache, rows), io, "kv.track_0")
        if case == "model_p1":
            for layer in range(config.dinov2_config.num_hidden_layers):
                torch.testing.assert_close(cache.keys[layer], io[f"kv.after_track_0.k.{layer}"], atol=1e-5, rtol=0)
                torch.testing.assert_close(cache.values[layer], io[f"kv.after_track_0.v.{layer}"], atol=1e-5, rtol=0)
        else:  # phase 2 protocol: template, reference region 0, tracked region 1
            cache = model.new_kv_cache(3)
            model.init_template(io["z"], cache, io["z_feat_mask"], cache_rows=rows)
            model.update_region(0, io["x_0"], cache, rows)
            output = model.track_region(1, io["x_1"], cache, rows)
            assert_outputs(output, io, "kv.track_1")
            assert_outputs(output, io, "merged.train")
            torch.testing.assert_close(cache.keys[-1], io["kv.after_track_1.k.1"], atol=1e-5, rtol=0)
            torch.testing.assert_close(cache.values[-1], io["kv.after_track_1.v.1"], atol=1e-5, rtol=0)
    assert not cache.keys[0][1].any(), "a cache row no batch element uses must stay untouched"


@pytest.mark.parametrize("case", ["model_p1", "model_p1_alpha_eq_r", "model_p2"])
def test_stream_adapters_apply_alpha_over_r_like_the_merged_model(case):
    """Unmerged adapters (training) and merged weights (inference) compute the same function."""
    _, io, state, config = official_case(case)
    adapters = build_adapter_model(config, state, *official_weights(case))
    with torch.no_grad():
        output = adapters(io["z"], search_inputs(io), io["z_feat_mask"])
    assert_outputs(output, io, "merged.train")


@pytest.mark.parametrize("case", ["model_p1", "model_p2"])
def test_official_training_module_is_the_alpha_equal_r_model(case):
    """The official training forward omits alpha/r: converted with lora_alpha = r it is reproduced exactly."""
    meta, io, state, config = official_case(case, lora_alpha=None)
    _, _, _, unscaled = official_case(case, lora_alpha=meta["model"]["lora_r"])
    adapters = build_adapter_model(unscaled, state, *official_weights(case))
    with torch.no_grad():
        output = adapters(io["z"], search_inputs(io), io["z_feat_mask"])
    assert_outputs(output, io, "train_module")
    if config.lora_alpha != config.lora_r:
        assert (output.score_map - io["merged.train.score_map"]).abs().max() > 1e-2


def test_phase2_checkpoint_alone_asks_for_the_phase1_checkpoint():
    _, _, state, config = official_case("model_p2")
    checkpoint, _ = official_weights("model_p2")
    with pytest.raises(CheckpointError, match="--phase1-lorat"):
        build_merged_model(config, state, checkpoint)


@pytest.mark.parametrize("case", ["model_p1", "model_p2"])
def test_saved_folders_reload_with_official_outputs(tmp_path, case):
    _, io, state, config = official_case(case)
    weights = official_weights(case)
    build_merged_model(config, state, *weights).save_pretrained(tmp_path / "merged")
    save_stream_adapters(build_adapter_model(config, state, *weights), tmp_path / "adapters")
    assert sorted(stream_adapter_folders(tmp_path / "adapters")) == sorted(config.stream_names)

    merged = AutoModel.from_pretrained(tmp_path / "merged").eval()
    assert isinstance(merged, Loratv2Model)
    base = Loratv2Model(config)
    base.load_backbone_state_dict(state)
    adapters = load_stream_adapters(base, stream_adapter_folders(tmp_path / "adapters"))
    with torch.no_grad():
        for model in (merged, adapters):
            assert_outputs(model(io["z"], search_inputs(io), io["z_feat_mask"]), io, "merged.train")


# ----------------------------------------------------------------------------------------------------------------
# Behaviour on random tiny models of other shapes
# ----------------------------------------------------------------------------------------------------------------


def tiny_v2_config(**overrides) -> Loratv2Config:
    dinov2 = dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=3, image_size=14 * 12, patch_size=14)
    dinov2.update(overrides.pop("dinov2", {}))
    values = dict(
        dinov2_config=dinov2,
        template_size=56,
        search_sizes=[84, 112],
        search_area_factors=[4.0, 5.0],
        lora_r=4,
        lora_alpha=8,
    )
    values.update(overrides)
    return Loratv2Config(**values)


def random_inputs(config: Loratv2Config, batch: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    zw, zh = config.template_size_wh
    template = torch.randn(batch, 3, zh, zw, generator=generator)
    searches = [torch.randn(batch, 3, h, w, generator=generator) for w, h in config.search_sizes_wh]
    gw, gh = config.template_grid_wh
    mask = (torch.rand(batch, gh, gw, generator=generator) > 0.5).long()
    return template, searches, mask


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "dinov2": {"hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2},
            "search_sizes": [70],
            "search_area_factors": [4.0],
        },
        {"template_size": [42, 56], "search_sizes": [[84, 70], [98, 112]], "dinov2": {"num_register_tokens": 2}},
    ],
)
def test_streaming_equals_training_path_with_adapters_and_merged(overrides):
    torch.manual_seed(1)
    config = tiny_v2_config(**overrides)
    model = add_stream_adapters(Loratv2Model(config).eval()).eval()
    template, searches, mask = random_inputs(config)
    with torch.no_grad():
        reference = model(template, searches, mask)
        merged = model.merge_and_unload()
        merged_output = merged(template, searches, mask)
        cache = merged.new_kv_cache(4)
        rows = [3, 1]
        merged.init_template(template, cache, mask, cache_rows=rows)
        for region, crop in enumerate(searches[:-1]):
            merged.update_region(region, crop, cache, rows)
        streamed = merged.track_region(len(searches) - 1, searches[-1], cache, rows)
    for output in (merged_output, streamed):
        torch.testing.assert_close(output.score_map, reference.score_map, atol=1e-5, rtol=0)
        torch.testing.assert_close(output.pred_boxes, reference.pred_boxes, atol=1e-6, rtol=0)
    assert not cache.keys[0][0].any() and not cache.keys[0][2].any()


def test_attention_is_chunked_causal():
    """Earlier chunks never see later ones: changing the last region leaves the other regions' tokens unchanged."""
    torch.manual_seed(0)
    config = tiny_v2_config()
    model = Loratv2Model(config).eval()
    template, searches, mask = random_inputs(config)
    changed = [searches[0], torch.randn_like(searches[1])]
    with torch.no_grad():
        first = model(template, searches, mask, output_hidden_states=True).hidden_states[-1]
        second = model(template, changed, mask, output_hidden_states=True).hidden_states[-1]
    earlier = sum(config.chunk_sizes[:-1])
    torch.testing.assert_close(first[:, :earlier], second[:, :earlier], atol=1e-6, rtol=0)
    assert (first[:, earlier:] - second[:, earlier:]).abs().max() > 1e-3


def test_chunk_causal_mask_blocks_only_later_chunks():
    mask = chunk_causal_mask([2, 1, 3], past_length=2, dtype=torch.float32, device=torch.device("cpu"))[0, 0]
    allowed = mask == 0
    assert allowed.shape == (6, 8)
    assert allowed[:, :2].all()  # past positions are visible to every query
    assert allowed[0, 2:4].all() and not allowed[0, 4:].any()
    assert allowed[2, 2:5].all() and not allowed[2, 5:].any()
    assert allowed[5].all()
    assert chunk_causal_mask([5], 3, torch.float32, torch.device("cpu")) is None


def test_phase2_trains_only_its_last_stream():
    config = tiny_v2_config(trainable_streams=["search_1"])
    model = add_stream_adapters(Loratv2Model(config))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".search_1." in name for name in trainable)
    assert any("heads.1" in name for name in trainable)
    assert any("search_token_type_embeddings.1" in name for name in trainable)
    template, searches, mask = random_inputs(config)
    output = model(template, searches, mask, labels=torch.tensor([[0.3, 0.3, 0.6, 0.7], [0.1, 0.2, 0.5, 0.5]]))
    output.loss.backward()
    grads = [p.grad for name, p in model.named_parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_phase1_trains_every_stream_and_nothing_of_the_backbone():
    config = tiny_v2_config(search_sizes=[84], search_area_factors=[4.0])
    model = add_stream_adapters(Loratv2Model(config))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    for stream in config.stream_names:
        assert any(f".{stream}." in name for name in trainable)
    assert not any(
        "base_layer" in name or "position_embeddings" in name or "register_tokens" in name for name in trainable
    )


def test_kv_cache_row_helpers_roundtrip():
    config = tiny_v2_config()
    cache = Loratv2KVCache.empty(config, 3)
    cache.keys[0][2] = 1.0
    picked = cache.rows([2])
    assert picked.num_rows == 1 and picked.keys[0].eq(1.0).all()
    other = Loratv2KVCache.empty(config, 2)
    other.write_rows([0], picked)
    assert other.keys[0][0].eq(1.0).all() and not other.keys[0][1].any()
    assert Loratv2KVCache.cat([picked, other]).num_rows == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"search_sizes": [84, 80]}, "multiples of the patch size"),
        ({"search_sizes": [84, 14 * 13]}, "positional table"),
        ({"search_area_factors": [4.0]}, "one area factor per search region"),
        ({"trainable_streams": ["search_7"]}, "unknown streams"),
    ],
)
def test_config_rejects_bad_geometry(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_v2_config(**kwargs)


def test_bad_inputs_get_clear_errors():
    config = tiny_v2_config()
    model = Loratv2Model(config).eval()
    template, searches, mask = random_inputs(config)
    with pytest.raises(ValueError, match="one crop per search region"):
        model(template, searches[:1], mask)
    with pytest.raises(ValueError, match=r"search_pixel_values\[1\] must be"):
        model(template, [searches[0], searches[0]], mask)
    cache = model.new_kv_cache(1)
    with pytest.raises(ValueError, match="distinct rows"):
        model.init_template(template, cache, mask)
    with pytest.raises(ValueError, match="region 2 does not exist"):
        model.track_region(2, searches[1], model.new_kv_cache(2))


def test_variant_presets():
    config = Loratv2Config.from_variant("p2-L-378")
    assert config.search_sizes == [224, 378] and config.search_area_factors == [4.0, 5.0]
    assert config.chunk_sizes == [260, 256, 729]
    assert config.trained_streams == ["search_1"]
    assert config.dinov2_config.hidden_size == 1024
    assert Loratv2Config.from_variant("p1-B-224").trained_streams == ["template", "search_0"]
    with pytest.raises(ValueError, match="p1-B-224"):
        Loratv2Config.from_variant("p3-B-224")


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    config = tiny_v2_config()
    model = add_stream_adapters(Loratv2Model(config)).train()
    template, searches, mask = random_inputs(config)
    labels = torch.tensor([[0.3, 0.3, 0.6, 0.7], [0.1, 0.2, 0.5, 0.5]])

    def loss_and_grads():
        model.zero_grad()
        loss = model(template, searches, mask, labels=labels).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss, grads = loss_and_grads()
    model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpointed_loss, checkpointed_grads = loss_and_grads()
    torch.testing.assert_close(checkpointed_loss, loss, atol=1e-6, rtol=0)
    assert grads.keys() == checkpointed_grads.keys() and len(grads) > 0
    for name, grad in grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, atol=1e-6, rtol=1e-5)
