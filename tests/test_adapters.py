"""peft integration: what trains, initialisations, methods, saving and loading adapter folders."""

import json

import pytest
import torch
from conftest import tiny_config
from peft import PeftModel

from lorat_hf import LoraTrackerModel, add_adapters, get_lora_config, get_peft_config, load_tracker_model
from lorat_hf.adapters import MODULES_TO_SAVE, save_adapter_folder


def _inputs(batch=2):
    torch.manual_seed(1)
    return dict(
        template_pixel_values=torch.randn(batch, 3, 56, 56),
        search_pixel_values=torch.randn(batch, 3, 112, 112),
        template_token_type_ids=torch.randint(0, 2, (batch, 4, 4)),
    )


def test_lora_config_targets_every_linear_of_every_layer_and_nothing_else():
    config = tiny_config()
    model = add_adapters(LoraTrackerModel(config))
    lora_modules = sorted(n for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A)
    expected = sorted(
        f"base_model.model.encoder.layer.{i}.{part}"
        for i in range(2)
        for part in (
            "attention.q_proj",
            "attention.k_proj",
            "attention.v_proj",
            "attention.o_proj",
            "mlp.fc1",
            "mlp.fc2",
        )
    )
    assert lora_modules == expected
    lora_config = get_lora_config(config)
    assert (lora_config.r, lora_config.lora_alpha, lora_config.lora_dropout) == (4, 8, 0.0)
    assert sorted(lora_config.modules_to_save) == sorted(MODULES_TO_SAVE)


def test_only_lora_token_types_and_head_train():
    model = add_adapters(LoraTrackerModel(tiny_config()))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n or ".modules_to_save." in n for n in trainable)
    assert any("token_type_embeddings.modules_to_save" in n for n in trainable)
    assert any("tracker_head.modules_to_save" in n for n in trainable)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "base_model.model.embeddings.position_embeddings" in frozen


def test_official_init_makes_b_nonzero_while_peft_init_keeps_the_backbone_function():
    import copy

    torch.manual_seed(0)
    base = LoraTrackerModel(tiny_config(lora_init="peft")).eval()
    with torch.no_grad():
        reference = base(**_inputs()).score_map
    peft_default = add_adapters(copy.deepcopy(base)).eval()
    layer = peft_default.get_base_model().encoder.layer[0].attention.q_proj
    assert torch.count_nonzero(layer.lora_B["default"].weight) == 0
    with torch.no_grad():
        torch.testing.assert_close(peft_default(**_inputs()).score_map, reference, atol=0, rtol=0)
    base.config.lora_init = "official"
    official = add_adapters(copy.deepcopy(base)).eval()
    bert = official.get_base_model().encoder.layer[0].attention.q_proj
    for weight in (bert.lora_A["default"].weight, bert.lora_B["default"].weight):
        assert torch.count_nonzero(weight) == weight.numel()
        assert 0.01 < weight.std().item() < 0.03 and weight.abs().max() <= 2.0
    with torch.no_grad():
        assert not torch.allclose(official(**_inputs()).score_map, reference)


@pytest.mark.parametrize("method", ["lora", "dora", "rslora", "ia3"])
def test_peft_methods_are_configuration(method):
    model = add_adapters(LoraTrackerModel(tiny_config()), method=method)
    out = model(**_inputs(), labels=torch.tensor([[0.2, 0.2, 0.6, 0.7]] * 2))
    out.loss.backward()
    assert any(
        p.grad is not None for n, p in model.named_parameters() if "modules_to_save" not in n and p.requires_grad
    )
    peft_config = get_peft_config(model.get_base_model().config, method)
    if method == "rslora":
        assert peft_config.use_rslora
    if method == "dora":
        assert peft_config.use_dora


def test_lora_on_q_and_v_only_is_a_config_change():
    model = add_adapters(LoraTrackerModel(tiny_config(lora_target_modules=["q_proj", "v_proj"])))
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A}
    assert names == {"q_proj", "v_proj"}


def test_swiglu_gate_and_up_share_their_lora_a():
    model = add_adapters(LoraTrackerModel(tiny_config(dinov2={"use_swiglu_ffn": True})))
    mlp = model.get_base_model().encoder.layer[0].mlp
    assert mlp.gate_proj.lora_A["default"].weight is mlp.up_proj.lora_A["default"].weight


@pytest.mark.parametrize("swiglu", [False, True])
def test_adapter_folder_round_trip_unmerged_and_merged(tmp_path, swiglu):
    from transformers import Dinov2Model

    torch.manual_seed(0)
    config = tiny_config(dinov2={"use_swiglu_ffn": swiglu})
    backbone = Dinov2Model(config.dinov2_config)
    backbone.save_pretrained(tmp_path / "dinov2")
    model = add_adapters(LoraTrackerModel.from_backbone(str(tmp_path / "dinov2"), config=config)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.05)  # pretend it trained
        expected = model(**_inputs())
    save_adapter_folder(model, tmp_path / "adapter")
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json"} <= files
    assert json.loads((tmp_path / "adapter" / "config.json").read_text())["model_type"] == "lora_tracker"
    loaded = load_tracker_model(tmp_path / "adapter")
    assert isinstance(loaded, PeftModel)
    merged = load_tracker_model(tmp_path / "adapter", merge=True)
    assert isinstance(merged, LoraTrackerModel)
    with torch.no_grad():
        unmerged_out, merged_out = loaded(**_inputs()), merged(**_inputs())
    torch.testing.assert_close(unmerged_out.score_map, expected.score_map, atol=0, rtol=0)
    torch.testing.assert_close(merged_out.score_map, expected.score_map, atol=1e-5, rtol=0)
    torch.testing.assert_close(merged_out.pred_boxes, expected.pred_boxes, atol=1e-6, rtol=0)


def test_loading_errors_are_clear(tmp_path):
    with pytest.raises(OSError, match="not a lorat_hf tracker"):
        (tmp_path / "empty").mkdir()
        load_tracker_model(tmp_path / "empty")
    config = tiny_config()
    model = add_adapters(LoraTrackerModel(config))
    save_adapter_folder(model, tmp_path / "adapter")
    with pytest.raises(ValueError, match="does not name its DINOv2 backbone"):
        load_tracker_model(tmp_path / "adapter")
    adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    adapter_config["r"] = 16
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(adapter_config))
    with pytest.raises(ValueError, match="r=16"):
        from lorat_hf.adapters import check_adapter_matches

        check_adapter_matches(str(tmp_path / "adapter" / "adapter_config.json"), config)


def test_broken_model_files_name_the_file_and_what_to_do(tmp_path):
    from lorat_hf.model_files import ModelFileError

    config = tiny_config()
    LoraTrackerModel(config).save_pretrained(tmp_path / "merged")
    weights = tmp_path / "merged" / "model.safetensors"
    intact = weights.read_bytes()

    weights.write_bytes(intact[: len(intact) - 1000])  # an interrupted download
    with pytest.raises(ModelFileError, match=r"merged/model.safetensors is damaged .*Download the model again"):
        load_tracker_model(tmp_path / "merged")
    weights.write_bytes(intact[:40])
    with pytest.raises(ModelFileError, match=r"model.safetensors is damaged .*40 bytes"):
        load_tracker_model(tmp_path / "merged")
    weights.write_bytes(intact)

    config_file = tmp_path / "merged" / "config.json"
    original = config_file.read_text()
    edited = json.loads(original)
    edited["dinov2_config"]["hidden_size"] = 64
    config_file.write_text(json.dumps(edited))
    with pytest.raises(ModelFileError, match=r"model.safetensors does not fit .*merged/config.json: .* another shape"):
        load_tracker_model(tmp_path / "merged")
    edited["dinov2_config"]["hidden_size"], edited["dinov2_config"]["num_hidden_layers"] = 32, 3
    config_file.write_text(json.dumps(edited))  # more layers than the weights: never silently random layers
    with pytest.raises(ModelFileError, match=r"tensors are missing \(first: encoder.layer.2"):
        load_tracker_model(tmp_path / "merged")
    config_file.write_text(original[: len(original) // 2])
    with pytest.raises(ModelFileError, match=r"config.json is not valid JSON"):
        load_tracker_model(tmp_path / "merged")
    config_file.write_text(original)
    assert isinstance(load_tracker_model(tmp_path / "merged"), LoraTrackerModel)

    # adapter folders: the adapter weights and a backbone folder are checked the same way
    from transformers import Dinov2Model

    Dinov2Model(config.dinov2_config).save_pretrained(tmp_path / "dinov2")
    save_adapter_folder(add_adapters(LoraTrackerModel(config)), tmp_path / "adapter")
    adapter_weights = tmp_path / "adapter" / "adapter_model.safetensors"
    adapter_weights.write_bytes(adapter_weights.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match=r"adapter_model.safetensors is damaged"):
        load_tracker_model(tmp_path / "adapter", backbone_name_or_path=str(tmp_path / "dinov2"))
    backbone_weights = tmp_path / "dinov2" / "model.safetensors"
    backbone_weights.write_bytes(backbone_weights.read_bytes()[:-100])
    save_adapter_folder(add_adapters(LoraTrackerModel(config)), tmp_path / "adapter2")
    with pytest.raises(ModelFileError, match=r"dinov2/model.safetensors is damaged"):
        load_tracker_model(tmp_path / "adapter2", backbone_name_or_path=str(tmp_path / "dinov2"))
