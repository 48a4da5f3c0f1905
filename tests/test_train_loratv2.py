"""LoRATv2 training through examples/train.py (the same loop as LoRAT): the tiny phase-1 and phase-2 recipes, exact
resume, trainable-only checkpoints, and phase 2 starting from the phase-1 export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from data_factories import make_generic
from safetensors.torch import load_file
from test_train_script import CONFIGS, launch, read_metrics
from test_train_script import tiny_args as lorat_tiny_args

pytestmark = pytest.mark.slow

RECIPES = CONFIGS / "loratv2"


@pytest.fixture(scope="module")
def generic_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generic_v2")
    make_generic(root / "train", names=[f"seq{i}" for i in range(5)], num_frames=10, size_wh=(96, 72), extension="jpg")
    make_generic(root / "val", names=["val0", "val1"], num_frames=6, size_wh=(96, 72), extension="jpg")
    return root


def tiny_args(recipe: str, data_root: Path, output_dir: Path, *extra: str) -> list[str]:
    """The LoRAT tiny-run arguments (generic test sequences, 2 steps of 8 per epoch, 4 epochs) on a LoRATv2 recipe,
    with the periodic tracking evaluation on the two validation videos."""
    tracking = (
        "--tracking_eval_dataset",
        "generic:val",
        "--tracking_eval_sequences",
        "2",
        "--tracking_eval_steps",
        "4",
    )
    args = lorat_tiny_args(data_root, output_dir, *tracking, *extra)
    args[args.index("--config") + 1] = str(RECIPES / recipe)
    return args


def validation_losses(output_dir: Path) -> list[float]:
    metrics = read_metrics(output_dir)
    tracked = [m for m in metrics if "track_success_auc" in m]  # the streaming tracker ran on the validation videos
    assert tracked and all(m["track_num_sequences"] == 2 and 0 <= m["track_success_auc"] <= 100 for m in tracked)
    return [m["val_loss"] for m in metrics if "val_loss" in m]


def stream_of(name: str) -> str:
    """The stream adapter a trainable parameter belongs to (`...lora_A.<stream>.weight`, `...modules_to_save.<stream>...`)."""
    for marker in (".lora_A.", ".lora_B.", ".modules_to_save."):
        if marker in name:
            return name.split(marker)[1].split(".")[0]
    raise AssertionError(f"{name} is not a stream adapter parameter")


@pytest.fixture(scope="module")
def phase1(generic_data, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("loratv2") / "p1"
    launch(tiny_args("tiny-synthetic-p1.yaml", generic_data, output))
    return output


def test_phase_1_trains_checkpoints_its_two_streams_and_resumes_exactly(phase1, generic_data, tmp_path):
    first, last = validation_losses(phase1)
    assert last < first  # the fixed validation tuplets' loss goes down
    trained = load_file(phase1 / "checkpoints" / "checkpoint-8" / "trainable_model.safetensors")
    assert {stream_of(name) for name in trained} == {"template", "search_0"}  # trainable-only, both streams
    assert not any("experts.0." in n and "search_0" in n for n in trained)  # each stream adapts only its expert
    final = phase1 / "final"
    assert json.loads((final / "config.json").read_text())["model_type"] == "loratv2"
    assert sorted(p.name for p in final.iterdir() if (p / "adapter_config.json").is_file()) == ["search_0", "template"]

    split = tmp_path / "split"
    launch(tiny_args("tiny-synthetic-p1.yaml", generic_data, split, "--max_train_steps", "3"))
    launch(tiny_args("tiny-synthetic-p1.yaml", generic_data, split, "--resume_from_checkpoint", "latest"))
    assert read_metrics(split) == read_metrics(phase1)  # every loss, lr, grad norm and validation loss, exactly
    for stream in ("template", "search_0"):
        expected = load_file(final / stream / "adapter_model.safetensors")
        resumed = load_file(split / "final" / stream / "adapter_model.safetensors")
        assert expected.keys() == resumed.keys()
        assert all(torch.equal(expected[k], resumed[k]) for k in expected), stream


def test_phase_2_starts_from_the_phase_1_export_and_trains_only_its_new_stream(phase1, generic_data, tmp_path):
    from lorat_hf.adapters_loratv2 import load_stream_adapters, stream_adapter_folders
    from lorat_hf.configuration_loratv2 import Loratv2Config
    from lorat_hf.modeling_loratv2 import Loratv2Model

    output = tmp_path / "p2"
    launch(
        tiny_args(
            "tiny-synthetic-p2.yaml",
            generic_data,
            output,
            "--phase1_model_path",
            str(phase1 / "final"),
            "--num_train_epochs",
            "2",
            "--validation_steps",
            "2",
        )
    )
    first, last = validation_losses(output)
    assert last < first
    trained = load_file(output / "checkpoints" / "checkpoint-4" / "trainable_model.safetensors")
    assert {stream_of(name) for name in trained} == {"search_1"}  # only the new region's expert, token type, head
    assert any("heads.1." in n for n in trained) and any("search_token_type_embeddings.1." in n for n in trained)

    config = Loratv2Config.from_pretrained(output / "final")
    phase1_config = Loratv2Config.from_pretrained(phase1 / "final")
    assert config.search_sizes == [112, 168] and config.search_area_factors == [4.0, 5.0]
    assert config.backbone_name_or_path == phase1_config.backbone_name_or_path  # phase 1's backbone, not a new one
    folders = stream_adapter_folders(output / "final")
    assert sorted(folders) == ["search_0", "search_1", "template"]
    for stream in ("template", "search_0"):  # the phase-1 streams are carried over untouched
        before = load_file(phase1 / "final" / stream / "adapter_model.safetensors")
        after = load_file(output / "final" / stream / "adapter_model.safetensors")
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before), stream

    base = Loratv2Model.from_backbone(config.backbone_name_or_path, config=config)
    model = load_stream_adapters(base, folders, merge=True).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        output_tensors = model(
            torch.randn(1, 3, 56, 56),
            [torch.randn(1, 3, 112, 112), torch.randn(1, 3, 168, 168)],
            template_token_type_ids=torch.ones(1, 4, 4, dtype=torch.long),
        )
    assert output_tensors.score_map.shape == (1, 12, 12) and output_tensors.pred_boxes.shape == (1, 12, 12, 4)


def test_phase_2_refuses_a_missing_phase_1_model(tmp_path):
    from lorat_hf.training.builders import read_phase1_config

    with pytest.raises(FileNotFoundError, match="train phase 1 first"):
        read_phase1_config(tmp_path / "nowhere")


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.yaml")))
def test_every_loratv2_recipe_parses_and_builds_its_model_on_the_meta_device(recipe):
    from lorat_hf import count_parameters
    from lorat_hf.training import build_tracker, parse_train_args, tracker_config_from_args

    config = parse_train_args(["--config", str(RECIPES / recipe)])
    assert config.model.model_type == "loratv2"
    tracker_config = tracker_config_from_args(config.model, config.peft)
    with torch.device("meta"):
        model = build_tracker(tracker_config, config.peft)
    total, trainable = count_parameters(model)
    phase_2 = config.model.variant.startswith("p2-")
    assert tracker_config.num_search_regions == (2 if phase_2 else 1)
    trained_streams = {stream_of(n) for n, p in model.named_parameters() if p.requires_grad}
    assert trained_streams == ({"search_1"} if phase_2 else {"template", "search_0"})
    assert 0 < trainable < (total if recipe.startswith("tiny-") else total / 4)  # the backbone stays frozen
    if phase_2:  # phase 2 continues the export of the matching phase-1 recipe
        phase1_recipe = recipe.replace("p2-", "p1-").replace("-378", "-224").replace("-p2.yaml", "-p1.yaml")
        phase1_output = parse_train_args(["--config", str(RECIPES / phase1_recipe)]).training.output_dir
        assert config.model.phase1_model_path == f"{phase1_output}/final"
    if not recipe.startswith(("tiny-", "_")):
        assert config.model.variant in recipe
        assert tracker_config.search_sizes == ([224, 378] if phase_2 else [224])
        assert tracker_config.search_area_factors == ([4.0, 5.0] if phase_2 else [4.0])
        assert (config.training.learning_rate, config.training.min_lr, config.training.warmup_lr) == (1e-4, 5e-6, 1e-7)
        assert (config.peft.lora_r, config.peft.lora_alpha, config.data.max_frame_gap) == (64, 64, 100)
        assert config.training.global_batch_size == 128 and config.data.samples_per_epoch == 131072
        if recipe.startswith("got10k-"):
            assert config.data.train_datasets == ["got10k:train"] and config.training.num_train_epochs == 100
        else:
            assert config.data.train_datasets == ["lasot:train", "trackingnet:train", "coco:train", "got10k:vot_train"]
            assert config.training.num_train_epochs == 170
        assert tracker_config.dinov2_config.drop_path_rate == (0.1 if "-L-" in recipe else 0.0)


def test_loratv2_options_fail_clearly():
    from lorat_hf.training import parse_train_args

    with pytest.raises(ValueError, match="phase-2 variant.*phase1_model_path"):
        parse_train_args(["--model_type", "loratv2", "--variant", "p2-B-378"])
    with pytest.raises(ValueError, match="not an official LoRATv2 variant"):
        parse_train_args(["--model_type", "loratv2", "--variant", "B-224"])
    with pytest.raises(ValueError, match=r"set model_type: loratv2"):
        parse_train_args(["--variant", "p1-B-224"])
    with pytest.raises(ValueError, match="use search_sizes"):
        parse_train_args(["--model_type", "loratv2", "--variant", "p1-B-224", "--search_size", "224"])
    with pytest.raises(ValueError, match="LoRATv2 option"):
        parse_train_args(["--search_sizes", "224"])
