import json

import pytest
from conftest import tiny_config
from transformers import AutoConfig, Dinov2Config

from lorat_hf import VARIANTS, LoraTrackerConfig
from lorat_hf.configuration_lora_tracker import BACKBONES

EXPECTED_VARIANTS = {
    # variant: (hidden, layers, heads, swiglu, drop_path, template px, search px, search factor, checkpoint)
    "S-224": (384, 12, 6, False, 0.0, 112, 224, 4.0, "facebook/dinov2-small"),
    "B-224": (768, 12, 12, False, 0.0, 112, 224, 4.0, "facebook/dinov2-base"),
    "B-378": (768, 12, 12, False, 0.0, 196, 378, 5.0, "facebook/dinov2-base"),
    "L-224": (1024, 24, 16, False, 0.1, 112, 224, 4.0, "facebook/dinov2-large"),
    "L-378": (1024, 24, 16, False, 0.1, 196, 378, 5.0, "facebook/dinov2-large"),
    "g-224": (1536, 40, 24, True, 0.4, 112, 224, 4.0, "facebook/dinov2-giant"),
    "g-378": (1536, 40, 24, True, 0.4, 196, 378, 5.0, "facebook/dinov2-giant"),
}


@pytest.mark.parametrize("variant", sorted(EXPECTED_VARIANTS))
def test_variant_presets_match_the_official_configs(variant):
    hidden, layers, heads, swiglu, drop_path, template, search, factor, checkpoint = EXPECTED_VARIANTS[variant]
    config = LoraTrackerConfig.from_variant(variant)
    backbone = config.dinov2_config
    assert (backbone.hidden_size, backbone.num_hidden_layers, backbone.num_attention_heads) == (hidden, layers, heads)
    assert backbone.use_swiglu_ffn is swiglu and backbone.drop_path_rate == drop_path
    assert backbone.image_size == 518 and backbone.patch_size == 14 and backbone.layer_norm_eps == 1e-6
    assert (config.template_size, config.search_size, config.search_area_factor) == (template, search, factor)
    assert config.backbone_name_or_path == checkpoint
    assert (config.lora_r, config.lora_alpha, config.lora_dropout, config.use_rslora) == (64, 64, 0.0, False)
    assert (config.window_penalty, config.template_area_factor, config.min_object_size) == (0.45, 2.0, 10.0)
    grid = search // 14
    assert config.search_grid_wh == (grid, grid) and config.template_grid_wh == (template // 14, template // 14)


def test_every_size_and_resolution_has_a_preset():
    assert set(VARIANTS) == {f"{s}-{r}" for s in BACKBONES for r in ("224", "378")}


def test_lora_targets_every_linear_of_each_layer():
    assert LoraTrackerConfig.from_variant("B-224").lora_linear_names == (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "fc1",
        "fc2",
    )
    assert LoraTrackerConfig.from_variant("g-224").lora_linear_names[-3:] == ("gate_proj", "up_proj", "down_proj")
    assert tiny_config(lora_target_modules=["q_proj", "v_proj"]).lora_linear_names == ("q_proj", "v_proj")


def test_round_trip_through_save_pretrained_and_auto_config(tmp_path):
    config = LoraTrackerConfig.from_variant("L-378", lora_r=16, lora_alpha=32, use_rslora=True)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "lora_tracker" and saved["dinov2_config"]["hidden_size"] == 1024
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, LoraTrackerConfig) and isinstance(reloaded.dinov2_config, Dinov2Config)
    ignore = {"_name_or_path"}
    assert {k: v for k, v in reloaded.to_dict().items() if k not in ignore} == {
        k: v for k, v in config.to_dict().items() if k not in ignore
    }
    assert reloaded.lora_scaling == pytest.approx(32 / 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(search_size=230), "multiples of the patch size"),
        (dict(template_size=168, search_size=112), "must fit inside the search grid"),
        (dict(lora_init="xavier"), "lora_init"),
    ],
)
def test_invalid_configs_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**kwargs)


def test_unknown_variant_lists_the_choices():
    with pytest.raises(ValueError, match="B-224"):
        LoraTrackerConfig.from_variant("B-512")


def test_rectangular_sizes():
    config = tiny_config(template_size=[56, 42], search_size=[112, 84])
    assert config.template_grid_wh == (4, 3) and config.search_grid_wh == (8, 6)
