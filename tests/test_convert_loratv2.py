"""`lorat-convert --model-type loratv2` (`python -m lorat_hf.convert`): merged and adapter folders, phase 2, errors."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_modeling_loratv2 import OFFICIAL_V2, assert_outputs, search_inputs
from transformers import AutoModel

from lorat_hf import Loratv2Model, load_tracker_model
from lorat_hf.commands.convert import main


def _cli(case, output, *extra):
    meta = json.loads((OFFICIAL_V2 / case / "config.json").read_text())
    sizes = []
    for region in meta["common"]["search_regions"]:
        sizes += ["--search-size", str(region["size"][0])]
    return main(
        [
            "--model-type",
            "loratv2",
            "--dinov2",
            str(OFFICIAL_V2 / case / "backbone.safetensors"),
            "--lorat",
            str(OFFICIAL_V2 / case / "loratv2_checkpoint.safetensors"),
            "--num-heads",
            str(meta["backbone"]["num_heads"]),
            "--template-size",
            "224",
            *sizes,
            "--lora-alpha",
            str(meta["model"]["lora_alpha"]),
            "--output",
            str(output),
            *extra,
        ]
    )


def _phase1_file(tmp_path):
    """The phase-1 streams of the p2 case (merged phase-1 weights, heads.0, token types) as a file of their own."""
    full = load_file(OFFICIAL_V2 / "model_p2" / "loratv2_full_state_dict.safetensors")
    phase1 = {k: v for k, v in full.items() if ".2." not in k and not k.endswith("embed.1") and "heads.1" not in k}
    path = tmp_path / "phase1.safetensors"
    save_file({k: v.contiguous() for k, v in phase1.items()}, path)
    return path


@pytest.mark.parametrize("case", ["model_p1", "model_p2"])
def test_cli_merged_and_adapter_folders_reproduce_official_outputs(tmp_path, case):
    extra = ["--phase1-lorat", str(_phase1_file(tmp_path))] if case == "model_p2" else []
    assert _cli(case, tmp_path / "merged", "--merge", *extra) == 0
    assert _cli(case, tmp_path / "adapters", *extra) == 0
    io = load_file(OFFICIAL_V2 / case / "io.safetensors")
    merged = AutoModel.from_pretrained(tmp_path / "merged").eval()
    assert isinstance(merged, Loratv2Model)
    adapters = load_tracker_model(tmp_path / "adapters")
    merged_adapters = load_tracker_model(tmp_path / "adapters", merge=True)
    assert isinstance(merged_adapters, Loratv2Model)
    with torch.no_grad():
        for model in (merged, adapters, merged_adapters):
            assert_outputs(model(io["z"], search_inputs(io), io["z_feat_mask"]), io, "merged.train")
        cache = merged_adapters.new_kv_cache(3)
        rows = io["kv.kv_cache_batch_idx"].long()
        merged_adapters.init_template(io["z"], cache, io["z_feat_mask"], cache_rows=rows)
        assert_outputs(merged_adapters.track_region(0, io["x_0"], cache, rows), io, "kv.track_0")


def test_cli_phase2_without_phase1_checkpoint_fails_clearly(tmp_path, capsys):
    assert _cli("model_p2", tmp_path / "out", "--merge") == 2
    assert "--phase1-lorat" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_rejects_a_variant_that_does_not_fit_the_tensors(tmp_path, capsys):
    assert _cli("model_p1", tmp_path / "out", "--variant", "p1-B-224") == 2
    assert "hidden_size" in capsys.readouterr().err


def test_cli_lorat_rejects_loratv2_options(tmp_path):
    with pytest.raises(SystemExit):
        main(["--dinov2", "x", "--lorat", "y", "--output", str(tmp_path), "--phase1-lorat", "z", "--num-heads", "2"])


def test_a_hugging_face_backbone_folder_converts_like_the_timm_file(tmp_path):
    from transformers import Dinov2WithRegistersModel

    from lorat_hf.convert_loratv2 import load_backbone

    state, backbone_config = load_backbone(OFFICIAL_V2 / "model_p1" / "backbone.safetensors", 2)
    backbone = Dinov2WithRegistersModel(backbone_config)
    backbone.load_state_dict(state)
    backbone.save_pretrained(tmp_path / "dinov2-reg")
    meta = json.loads((OFFICIAL_V2 / "model_p1" / "config.json").read_text())
    code = main(
        ["--model-type", "loratv2", "--dinov2", str(tmp_path / "dinov2-reg"), "--lorat",
         str(OFFICIAL_V2 / "model_p1" / "loratv2_checkpoint.safetensors"), "--num-heads", "2", "--template-size",
         "224", "--search-size", "224", "--lora-alpha", str(meta["model"]["lora_alpha"]), "--output",
         str(tmp_path / "adapters")]
    )  # fmt: skip
    assert code == 0
    config = json.loads((tmp_path / "adapters" / "config.json").read_text())
    assert config["backbone_name_or_path"] == str((tmp_path / "dinov2-reg").resolve())  # no copy of the backbone
    io = load_file(OFFICIAL_V2 / "model_p1" / "io.safetensors")
    model = load_tracker_model(tmp_path / "adapters", merge=True)
    with torch.no_grad():
        assert_outputs(model(io["z"], search_inputs(io), io["z_feat_mask"]), io, "merged.train")


def test_lorat_push_takes_converted_loratv2_folders(tmp_path):
    from lorat_hf.hub import inspect_tracker_folder

    assert _cli("model_p1", tmp_path / "merged", "--merge") == 0
    assert _cli("model_p1", tmp_path / "adapters") == 0
    merged, adapters = inspect_tracker_folder(tmp_path / "merged"), inspect_tracker_folder(tmp_path / "adapters")
    assert (merged.kind, merged.weight_files) == ("merged", ["model.safetensors"])
    assert adapters.kind == "adapter"
    assert adapters.weight_files == [f"{s}/adapter_model.safetensors" for s in ("template", "search_0")]
