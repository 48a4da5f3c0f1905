"""`lorat-push` publishes LoRATv2 folders like LoRAT ones: one peft adapter per stream or merged weights, a card built
from the folder's config, the same allow-list and upload code; what it pushes loads back from the Hub (the loopback
fake Hub of `tests/hub_server.py`; clients run in subprocesses because `HF_ENDPOINT` is read at import).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hub_server import WRITE_TOKEN, FakeHub, run_client
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file
from test_modeling_loratv2 import random_inputs, tiny_v2_config
from transformers import Dinov2WithRegistersModel

from lorat_hf import Loratv2Model
from lorat_hf.adapters_loratv2 import add_stream_adapters, save_stream_adapters
from lorat_hf.hub import TrackerFolderError, assemble_upload_folder, inspect_tracker_folder

BACKBONE_ID = "org/tiny-dinov2-reg"
STREAMS = ("template", "search_0", "search_1")
STREAM_FILES = {f"{s}/{n}" for s in STREAMS for n in ("adapter_config.json", "adapter_model.safetensors")}


@pytest.fixture(scope="module")
def backbone_folder(tmp_path_factory) -> Path:
    """A random tiny DINOv2-with-registers of the tiny LoRATv2 geometry (what its Hub repo holds)."""
    folder = tmp_path_factory.mktemp("backbone") / "dinov2-reg"
    torch.manual_seed(0)
    Dinov2WithRegistersModel(tiny_v2_config().dinov2_config).save_pretrained(folder)
    return folder


def make_stream_adapters(backbone_folder: Path):
    """A tiny two-region LoRATv2 on the saved backbone with official-init (non-zero) LoRA in every stream."""
    torch.manual_seed(1)
    base = Loratv2Model.from_backbone(str(backbone_folder), config=tiny_v2_config())
    return add_stream_adapters(base).eval()


def test_stream_adapter_folder_is_assembled_like_a_lorat_folder(tmp_path, backbone_folder):
    folder = save_stream_adapters(make_stream_adapters(backbone_folder), tmp_path / "final")
    (folder / "train_config.json").write_text(json.dumps({"training": {"seed": 3}}))
    (folder / "checkpoints").mkdir()
    (folder / "template" / "notes.txt").write_text("not published")

    info = inspect_tracker_folder(folder)
    assert info.kind == "adapter" and info.config.model_type == "loratv2"
    assert info.left_out == ["checkpoints/", "template/notes.txt"]

    assembled = assemble_upload_folder(folder, tmp_path / "upload", repo_id="org/v2", base_model=BACKBONE_ID)
    assert set(assembled.files) == STREAM_FILES | {
        "README.md",
        "config.json",
        "preprocessor_config.json",
        "train_config.json",
    }
    assert json.loads((tmp_path / "upload" / "config.json").read_text())["backbone_name_or_path"] == BACKBONE_ID
    for stream in STREAMS:
        adapter_config = json.loads((tmp_path / "upload" / stream / "adapter_config.json").read_text())
        assert adapter_config["base_model_name_or_path"] == BACKBONE_ID
    processor = json.loads((tmp_path / "upload" / "preprocessor_config.json").read_text())
    assert processor["template_size"] == 56 and processor["search_size"] == 112  # the tracked (last) region
    card = ModelCard.load(tmp_path / "upload" / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model_relation == "adapter"
    assert card.data.base_model == BACKBONE_ID and "loratv2" in card.data.tags
    assert "LoRATv2" in card.text and "one peft LoRA adapter per stream" in card.text
    # Only this push's streams are uploaded or replaced; LoRAT's own patterns stay as they are.
    assert set(assembled.upload_patterns) >= STREAM_FILES and set(assembled.managed_patterns) >= STREAM_FILES


def test_merged_loratv2_folder_is_assembled_with_a_finetune_card(tmp_path, backbone_folder):
    merged = make_stream_adapters(backbone_folder).merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    assembled = assemble_upload_folder(tmp_path / "merged", tmp_path / "upload", base_model=BACKBONE_ID)
    assert assembled.kind == "merged"
    assert set(assembled.files) == {"README.md", "config.json", "preprocessor_config.json", "model.safetensors"}
    assert assembled.card.data.library_name == "transformers" and assembled.card.data.base_model_relation == "finetune"


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_stream", "missing the adapter of stream 'search_1'"),
        ("wrong_rank", "search_0/adapter_config.json has r=2 but config.json says lora_r=4"),
        ("both_kinds", "holds both stream adapters"),
        ("damaged_weights", "template/adapter_model.safetensors is not a readable safetensors file"),
    ],
)
def test_inconsistent_loratv2_folders_are_refused_with_the_problem_named(tmp_path, backbone_folder, case, message):
    folder = save_stream_adapters(make_stream_adapters(backbone_folder), tmp_path / "final")
    if case == "missing_stream":
        for path in (folder / "search_1").iterdir():
            path.unlink()
        (folder / "search_1").rmdir()
    elif case == "wrong_rank":
        path = folder / "search_0" / "adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "r": 2}))
    elif case == "both_kinds":
        save_file({"x": torch.zeros(1)}, folder / "model.safetensors")
    else:
        (folder / "template" / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(TrackerFolderError, match=message):
        inspect_tracker_folder(folder)


PUSH_AND_LOAD_CLIENT = r"""
import json, sys
import torch
from safetensors.torch import load_file, save_file
from lorat_hf import load_tracker_model
from lorat_hf.commands.push import main

args = json.loads(sys.argv[1])
assert main([args["folder"], "--repo-id", "org/tiny-loratv2", "--base-model", args["backbone_id"]]) == 0
inputs = load_file(args["inputs"])
searches = [inputs["search_0"], inputs["search_1"]]
found = {}
for name, merge in (("adapters", False), ("merged", True)):
    model = load_tracker_model("org/tiny-loratv2", merge=merge, cache_dir=args["cache"]).eval()
    with torch.no_grad():
        out = model(inputs["template"], searches, inputs["mask"])
    found[name + ".score_map"], found[name + ".pred_boxes"] = out.score_map, out.pred_boxes
save_file(found, args["output"])
"""


def test_lorat_push_publishes_stream_adapters_that_load_back_from_the_hub(tmp_path, backbone_folder):
    model = make_stream_adapters(backbone_folder)
    folder = save_stream_adapters(model, tmp_path / "final")  # names the local backbone, as training does
    template, searches, mask = random_inputs(model.get_base_model().config)
    save_file(
        {"template": template, "search_0": searches[0], "search_1": searches[1], "mask": mask},
        tmp_path / "inputs.safetensors",
    )
    with torch.no_grad():
        expected = model(template, searches, mask)
    args = {
        "folder": str(folder),
        "backbone_id": BACKBONE_ID,
        "inputs": str(tmp_path / "inputs.safetensors"),
        "output": str(tmp_path / "found.safetensors"),
        "cache": str(tmp_path / "cache"),
    }
    with FakeHub(idle_timeout=300, max_lifetime=900) as fake_hub:
        fake_hub.add_folder(BACKBONE_ID, backbone_folder)
        result = run_client(fake_hub, tmp_path, PUSH_AND_LOAD_CLIENT, json.dumps(args), token=WRITE_TOKEN)
        assert result.returncode == 0, result.stderr[-3000:]
        files = fake_hub.files("org/tiny-loratv2")
    assert STREAM_FILES | {"README.md", "config.json", "preprocessor_config.json"} <= set(files)
    assert not any(name.startswith("checkpoints/") for name in files)
    found = load_file(tmp_path / "found.safetensors")
    for name in ("adapters", "merged"):
        torch.testing.assert_close(found[name + ".score_map"], expected.score_map, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(found[name + ".pred_boxes"], expected.pred_boxes, rtol=1e-4, atol=1e-5)
