"""The official checkpoint converter: every fixture case, every input format, and its errors."""

import json

import pytest
import torch
from conftest import MODEL_CASES, OFFICIAL
from safetensors.torch import load_file, save_file
from transformers import Dinov2Config, Dinov2Model

from lorat_hf import LoraTrackerModel, load_tracker_model
from lorat_hf.convert import CheckpointError, convert, main, official_backbone_to_hf


def _case(name):
    return json.loads((OFFICIAL / name / "config.json").read_text()), load_file(OFFICIAL / name / "io.safetensors")


def _outputs(model, io):
    with torch.no_grad():
        return model(io["z"], io["x"], template_token_type_ids=io["z_feat_mask"])


@pytest.mark.parametrize("name", MODEL_CASES)
def test_cli_merged_output_is_a_plain_model_with_official_outputs(tmp_path, name):
    config, io = _case(name)
    geometry = config["geometry"]
    code = main(
        [
            "--dinov2",
            str(OFFICIAL / name / "dinov2.safetensors"),
            "--lorat",
            str(OFFICIAL / name / "lorat_release.safetensors"),
            "--output",
            str(tmp_path / "merged"),
            "--num-heads",
            str(config["backbone"]["num_heads"]),
            "--template-size",
            str(geometry["template_size_wh"][0]),
            "--search-size",
            str(geometry["search_size_wh"][0]),
            "--merge",
        ]
    )
    assert code == 0
    model = LoraTrackerModel.from_pretrained(tmp_path / "merged").eval()
    out = _outputs(model, io)
    torch.testing.assert_close(
        out.score_map, io["score_map_merged"], atol=config["recommended_atol"]["score_map"], rtol=0
    )
    torch.testing.assert_close(out.pred_boxes, io["boxes_merged"], atol=config["recommended_atol"]["boxes"], rtol=0)
    assert model.config.search_area_factor == (5.0 if geometry["search_size_wh"][0] == 378 else 4.0)
    assert model.config.lora_r == config["lora"]["r"] and model.config.lora_alpha == config["lora"]["alpha"]


def test_full_official_state_dict_converts_like_the_release_file(tmp_path):
    name = "model_c_224_swiglu"
    config, io = _case(name)
    for source in ("lorat_release", "lorat_full_state_dict"):
        convert(
            OFFICIAL / name / "dinov2.safetensors",
            OFFICIAL / name / f"{source}.safetensors",
            tmp_path / source,
            num_heads=2,
        )
    a = _outputs(load_tracker_model(tmp_path / "lorat_release"), io)
    b = _outputs(load_tracker_model(tmp_path / "lorat_full_state_dict"), io)
    assert torch.equal(a.score_map, b.score_map) and torch.equal(a.pred_boxes, b.pred_boxes)


def test_swiglu_w12_lora_becomes_gate_and_up_loras_sharing_a(tmp_path):
    name = "model_c_224_swiglu"
    release = load_file(OFFICIAL / name / "lorat_release.safetensors")
    convert(
        OFFICIAL / name / "dinov2.safetensors",
        OFFICIAL / name / "lorat_release.safetensors",
        tmp_path / "out",
        num_heads=2,
    )
    model = load_tracker_model(tmp_path / "out").get_base_model()
    mlp = model.encoder.layer[1].mlp
    a, b = release["blocks.1.mlp.w12.lora.A"], release["blocks.1.mlp.w12.lora.B"]
    assert mlp.gate_proj.lora_A["default"].weight is mlp.up_proj.lora_A["default"].weight
    assert torch.equal(mlp.gate_proj.lora_A["default"].weight, a)
    assert torch.equal(torch.cat([mlp.gate_proj.lora_B["default"].weight, mlp.up_proj.lora_B["default"].weight]), b)
    assert torch.equal(mlp.down_proj.lora_A["default"].weight, release["blocks.1.mlp.w3.lora.A"])


def test_dinov2_as_pth_and_as_hugging_face_folder(tmp_path):
    name = "model_a_224_gelu"
    config, io = _case(name)
    official = load_file(OFFICIAL / name / "dinov2.safetensors")
    torch.save(official, tmp_path / "dinov2_vitb14_pretrain.pth")
    hf_state = official_backbone_to_hf(official)
    backbone = Dinov2Model(Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=518))
    backbone.load_state_dict(hf_state)
    backbone.save_pretrained(tmp_path / "hf_dinov2")
    release = OFFICIAL / name / "lorat_release.safetensors"
    convert(tmp_path / "dinov2_vitb14_pretrain.pth", release, tmp_path / "from_pth", num_heads=2)
    convert(tmp_path / "hf_dinov2", release, tmp_path / "from_hf", num_heads=2)
    assert (tmp_path / "from_pth" / "backbone" / "config.json").is_file()  # official weights: a converted copy ships
    assert not (tmp_path / "from_hf" / "backbone").exists()  # a HF folder is referenced instead
    for folder in ("from_pth", "from_hf"):
        out = _outputs(load_tracker_model(tmp_path / folder), io)
        torch.testing.assert_close(out.score_map, io["score_map"], atol=1e-4, rtol=0)


def test_release_without_meta_scalars_uses_scaling_one_like_the_official_merge(tmp_path):
    name = "model_a_224_gelu"
    release = load_file(OFFICIAL / name / "lorat_release.safetensors")
    del release["lora_alpha"], release["use_rslora"]
    save_file(release, tmp_path / "base.bin")  # the official release suffix, safetensors inside
    convert(OFFICIAL / name / "dinov2.safetensors", tmp_path / "base.bin", tmp_path / "a", num_heads=2)
    assert load_tracker_model(tmp_path / "a").get_base_model().config.lora_alpha == 8  # = r: scaling 1
    convert(OFFICIAL / name / "dinov2.safetensors", tmp_path / "base.bin", tmp_path / "b", num_heads=2, lora_alpha=16)
    config, io = _case(name)
    out = _outputs(load_tracker_model(tmp_path / "b"), io)
    torch.testing.assert_close(out.score_map, io["score_map"], atol=1e-4, rtol=0)


def test_bad_checkpoints_fail_with_a_list_of_the_problems(tmp_path):
    name = "model_a_224_gelu"
    dinov2 = OFFICIAL / name / "dinov2.safetensors"
    release = load_file(OFFICIAL / name / "lorat_release.safetensors")
    broken = dict(release)
    del broken["blocks.1.attn.proj.lora.B"]
    broken["head.cls_mlp.layers.0.weight"] = torch.zeros(3, 3)
    broken["blocks.0.attn.mystery.lora.A"] = torch.zeros(8, 64)
    save_file(broken, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError) as info:
        convert(dinov2, tmp_path / "broken.safetensors", tmp_path / "out", num_heads=2)
    assert "blocks.0.attn.mystery.lora.A" in str(info.value)
    del broken["blocks.0.attn.mystery.lora.A"]
    save_file(broken, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError) as info:
        convert(dinov2, tmp_path / "broken.safetensors", tmp_path / "out", num_heads=2)
    message = str(info.value)
    assert "encoder.layer.1.attention.o_proj: no LoRA B" in message and "(3, 3)" in message
    assert not (tmp_path / "out").exists()  # nothing half-written
    (tmp_path / "truncated.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(CheckpointError, match="truncated"):
        convert(dinov2, tmp_path / "truncated.safetensors", tmp_path / "out", num_heads=2)


def test_cli_errors(tmp_path, capsys):
    name = "model_a_224_gelu"
    args = [
        "--dinov2",
        str(OFFICIAL / name / "dinov2.safetensors"),
        "--lorat",
        str(OFFICIAL / name / "lorat_release.safetensors"),
    ]
    assert main(args + ["--output", str(tmp_path / "x")]) == 2
    assert "--variant or --num-heads" in capsys.readouterr().err
    assert main(args + ["--output", str(tmp_path / "x"), "--variant", "B-224"]) == 2
    assert "do not match variant B-224" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(args + ["--output", str(tmp_path / "taken"), "--num-heads", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert main(args + ["--output", str(tmp_path / "taken"), "--num-heads", "2", "--overwrite"]) == 0
    assert (tmp_path / "taken" / "adapter_config.json").is_file()


def test_lorat_convert_is_a_command_and_keeps_its_module_name(capsys):
    from importlib.metadata import entry_points

    from lorat_hf.commands import convert as convert_command

    assert entry_points(group="console_scripts")["lorat-convert"].value == "lorat_hf.commands.convert:main"
    for run, prog in ((convert_command.main, "lorat-convert"), (main, "python -m lorat_hf.convert")):
        with pytest.raises(SystemExit) as exit_info:
            run(["--lorat", "x.bin"])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith(f"usage: {prog} ")
