"""Hub publishing and loading: folder validation, the assembled upload, model cards, and round trips through a
loopback fake Hub (`tests/hub_server.py`; the real Hub is not reachable from CI).

Clients that talk to the fake Hub run in subprocesses, because `HF_ENDPOINT` must be set before `huggingface_hub`
is imported; the server runs in a thread of the test process, which inspects its state directly.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from hub_server import (
    READ_TOKEN,
    REPO_ROOT,
    WRITE_TOKEN,
    FakeHub,
    make_adapter,
    make_backbone_folder,
    run_client,
    tiny_tracker_config,
    tracker_inputs,
)
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file

from lorat_hf import hub
from lorat_hf.adapters import load_tracker_model, save_adapter_folder
from lorat_hf.hub import (
    ModelCardError,
    TrackerFolderError,
    TrackingResult,
    assemble_upload_folder,
    build_model_card,
    inspect_tracker_folder,
    load_additional_adapter,
    push_tracker_to_hub,
    validate_model_card,
)

BACKBONE_ID = "tiny-models/dinov2-32"
ADAPTER_FILES = {
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
    "config.json",
    "preprocessor_config.json",
}
LASOT_REPORT = {
    "protocol": "lasot",
    "dataset": "lasot",
    "num_sequences": 280,
    "metrics": {"success_auc": 71.234, "precision": 77.3, "normalized_precision": 80.91, "success_rate_50": 83.0},
    "per_sequence": {"airplane-1": {"success_auc": 80.0}},
}
GOT10K_REPORT = {
    "protocol": "got10k",
    "dataset": "GOT-10k",
    "split": "val",
    "num_sequences": 180,
    "metrics": {"average_overlap": 0.7215, "success_rate_50": 0.818, "success_rate_75": 0.707, "speed_fps": 30.0},
}


def outputs(model, inputs: dict) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(**inputs)
    return {"score_map": out.score_map, "pred_boxes": out.pred_boxes}


@pytest.fixture(scope="module")
def backbone_folder(tmp_path_factory) -> Path:
    return make_backbone_folder(tmp_path_factory.mktemp("backbone") / "dinov2")


@pytest.fixture
def fake_hub():
    with FakeHub(idle_timeout=300, max_lifetime=900) as server:
        yield server


def add_training_leftovers(folder: Path) -> None:
    """What a training or conversion output folder holds besides the publishable files."""
    (folder / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint-10" / "optimizer.bin").write_bytes(b"optimizer state")
    (folder / "backbone").mkdir()
    (folder / "backbone" / "model.safetensors").write_bytes(b"dinov2 copy")
    (folder / "optimizer.pt").write_bytes(b"optimizer")
    (folder / "events.out.tfevents.1").write_bytes(b"log")
    (folder / "notes.txt").write_text("private notes")


# ----------------------------------------------------------------------------------------------------------------
# Folder validation and assembly (no network)
# ----------------------------------------------------------------------------------------------------------------


def test_assembled_folder_holds_only_the_allow_list(tmp_path, backbone_folder):
    model = make_adapter(backbone_folder, seed=1)
    folder = save_adapter_folder(model, tmp_path / "final")
    (folder / "train_config.json").write_text(json.dumps({"training": {"learning_rate": 1e-4, "seed": 3}}))
    (folder / "eval_results.json").write_text(json.dumps(LASOT_REPORT))
    (folder / "success_plot.png").write_bytes(b"\x89PNG fake")
    add_training_leftovers(folder)
    report = tmp_path / "got10k_val.json"
    report.write_text(json.dumps(GOT10K_REPORT))

    assembled = assemble_upload_folder(
        folder, tmp_path / "upload", repo_id="org/tiny", base_model=BACKBONE_ID, eval_reports=[report]
    )
    expected = ADAPTER_FILES | {"train_config.json", "eval_results.json", "success_plot.png", "eval/got10k_val.json"}
    assert set(assembled.files) == expected
    on_disk = {p.relative_to(tmp_path / "upload").as_posix() for p in (tmp_path / "upload").rglob("*") if p.is_file()}
    assert on_disk == expected
    assert assembled.left_out == ["backbone/", "checkpoints/", "events.out.tfevents.1", "notes.txt", "optimizer.pt"]
    # The backbone is named by its Hub id in the copy; the source folder keeps its local path.
    assert json.loads((tmp_path / "upload" / "config.json").read_text())["backbone_name_or_path"] == BACKBONE_ID
    adapter_config = json.loads((tmp_path / "upload" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == BACKBONE_ID
    assert json.loads((folder / "config.json").read_text())["backbone_name_or_path"] == str(backbone_folder)
    # The generated preprocessor config matches the tracker geometry.
    processor = json.loads((tmp_path / "upload" / "preprocessor_config.json").read_text())
    assert (processor["template_size"], processor["search_size"]) == (56, 112)
    # The card replaces peft's and carries both reports.
    card = ModelCard.load(tmp_path / "upload" / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model == BACKBONE_ID
    assert {(r.dataset_name, r.metric_type) for r in card.data.eval_results} >= {
        ("LaSOT", "success_auc"),
        ("GOT-10k", "average_overlap"),
    }
    assert "![success_plot.png](success_plot.png)" in card.text
    assert "| Seed | 3 |" in card.text and "| Learning rate | 0.0001 |" in card.text

    with pytest.raises(FileExistsError, match="not an empty folder"):
        assemble_upload_folder(folder, tmp_path / "upload", base_model=BACKBONE_ID)


def test_loaded_assembled_folder_reproduces_the_model(tmp_path, backbone_folder):
    model = make_adapter(backbone_folder, seed=2, backbone_id=str(backbone_folder))
    folder = save_adapter_folder(model, tmp_path / "final")
    assemble_upload_folder(folder, tmp_path / "upload", base_model=BACKBONE_ID)
    inputs = tracker_inputs()
    loaded = load_tracker_model(tmp_path / "upload", backbone_name_or_path=str(backbone_folder))
    expected, found = outputs(model, inputs), outputs(loaded, inputs)
    assert all(torch.equal(expected[k], found[k]) for k in expected)


def test_merged_folder_is_published_as_a_finetune(tmp_path, backbone_folder):
    merged = make_adapter(backbone_folder, seed=3, backbone_id=BACKBONE_ID).merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    assembled = assemble_upload_folder(tmp_path / "merged", tmp_path / "upload")
    assert set(assembled.files) == {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"}
    assert assembled.kind == "merged"
    card = assembled.card
    assert (card.data.library_name, card.data.base_model_relation) == ("transformers", "finetune")
    assert "LoraTrackerModel.from_pretrained" in card.text


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_config", "has no config.json"),
        ("no_weights", "missing adapter_model.safetensors"),
        ("no_adapter_config", "missing adapter_config.json"),
        ("truncated_weights", "not a readable safetensors file"),
        ("both_kinds", "holds both adapter files"),
        ("other_model_type", "not a lorat_hf tracker config"),
        ("rank_mismatch", "r=16 but the tracker config says lora_r=4"),
        ("no_modules_to_save", "does not save"),
        ("preprocessor_mismatch", "search_size 224"),
        ("secret_in_train_config", "credential-like fields ['hub.hub_token']"),
        ("bad_eval_results", "is not a lorat-eval report"),
    ],
)
def test_unpublishable_folders_get_clear_errors(tmp_path, backbone_folder, breakage, message):
    folder = save_adapter_folder(make_adapter(backbone_folder, seed=4, backbone_id=BACKBONE_ID), tmp_path / "final")

    def edit_json(name, **changes):
        values = json.loads((folder / name).read_text())
        values.update(changes)
        (folder / name).write_text(json.dumps(values))

    if breakage == "no_config":
        (folder / "config.json").unlink()
    elif breakage == "no_weights":
        (folder / "adapter_model.safetensors").unlink()
    elif breakage == "no_adapter_config":
        (folder / "adapter_config.json").unlink()
    elif breakage == "truncated_weights":
        data = (folder / "adapter_model.safetensors").read_bytes()
        (folder / "adapter_model.safetensors").write_bytes(data[: len(data) // 3])
    elif breakage == "both_kinds":
        (folder / "model.safetensors").write_bytes(b"")
    elif breakage == "other_model_type":
        edit_json("config.json", model_type="dinov2")
    elif breakage == "rank_mismatch":
        edit_json("adapter_config.json", r=16)
    elif breakage == "no_modules_to_save":
        edit_json("adapter_config.json", modules_to_save=None)
    elif breakage == "preprocessor_mismatch":
        (folder / "preprocessor_config.json").write_text(json.dumps({"template_size": 56, "search_size": 224}))
    elif breakage == "secret_in_train_config":
        (folder / "train_config.json").write_text(json.dumps({"hub": {"hub_token": "hf_abc", "push_to_hub": True}}))
    elif breakage == "bad_eval_results":
        (folder / "eval_results.json").write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(TrackerFolderError, match=message.replace("[", r"\[").replace("]", r"\]")):
        assemble_upload_folder(folder, tmp_path / "upload")
    assert not (tmp_path / "upload").exists()


def test_backbone_hub_id_is_required_and_checked(tmp_path, backbone_folder):
    # Trained on a local DINOv2 folder: no Hub id is known until the user names one.
    folder = save_adapter_folder(make_adapter(backbone_folder, seed=5), tmp_path / "local")
    with pytest.raises(TrackerFolderError, match="shape of no official DINOv2.*pass its id with --base-model"):
        inspect_and_resolve(folder)
    assert hub.resolve_base_model(inspect_tracker_folder(folder), BACKBONE_ID) == BACKBONE_ID
    with pytest.raises(TrackerFolderError, match="must be a Hub repo id"):
        hub.resolve_base_model(inspect_tracker_folder(folder), "./dinov2")
    # An official DINOv2 id whose shape differs from the tracker's backbone.
    with pytest.raises(TrackerFolderError, match="facebook/dinov2-base .*does not match"):
        hub.resolve_base_model(inspect_tracker_folder(folder), "facebook/dinov2-base")

    # The adapter config and the tracker config name different Hub backbones.
    named = save_adapter_folder(make_adapter(backbone_folder, seed=5, backbone_id=BACKBONE_ID), tmp_path / "named")
    values = json.loads((named / "adapter_config.json").read_text())
    values["base_model_name_or_path"] = "tiny-models/another-dinov2"
    (named / "adapter_config.json").write_text(json.dumps(values))
    with pytest.raises(TrackerFolderError, match="base model does not match the tracker config"):
        inspect_and_resolve(named)
    with pytest.raises(TrackerFolderError, match="contradicts adapter_config.json"):
        hub.resolve_base_model(inspect_tracker_folder(named), BACKBONE_ID)


def inspect_and_resolve(folder: Path) -> str:
    return hub.resolve_base_model(inspect_tracker_folder(folder))


def test_push_dry_run_from_a_model_object_sends_nothing(tmp_path, backbone_folder):
    model = make_adapter(backbone_folder, seed=6, backbone_id=BACKBONE_ID)
    result = push_tracker_to_hub(model, "org/tiny", dry_run=True)
    assert result.dry_run and result.commit_url is None
    assert set(result.files) == ADAPTER_FILES
    assert result.card.data.model_name == "tiny" and result.base_model == BACKBONE_ID
    # An adapter loaded under another name (peft saves those in a sub-folder) and a merged model.
    save_adapter_folder(model, tmp_path / "saved")
    named = load_tracker_model(tmp_path / "saved", adapter_name="main", backbone_name_or_path=str(backbone_folder))
    assert set(push_tracker_to_hub(named, "org/tiny", base_model=BACKBONE_ID, dry_run=True).files) == ADAPTER_FILES
    merged = push_tracker_to_hub(named.merge_and_unload(), "org/tiny", base_model=BACKBONE_ID, dry_run=True)
    assert (merged.kind, set(merged.files)) == (
        "merged",
        {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"},
    )
    named_again = load_tracker_model(
        tmp_path / "saved", adapter_name="main", backbone_name_or_path=str(backbone_folder)
    )
    load_additional_adapter(named_again, tmp_path / "saved", "other")
    with pytest.raises(ValueError, match="publish one at a time"):
        push_tracker_to_hub(named_again, "org/tiny", base_model=BACKBONE_ID, dry_run=True)
    with pytest.raises(ValueError, match="must be ORG/NAME"):
        push_tracker_to_hub(model, "tiny", dry_run=True)


# ----------------------------------------------------------------------------------------------------------------
# Model cards
# ----------------------------------------------------------------------------------------------------------------


def test_card_metadata_results_and_rendering():
    config = tiny_tracker_config(variant=None)
    unconfirmed = TrackingResult.for_benchmark("TNL2K", {"success_auc": 62.7}, source_name="summary", confirmed=False)
    card = build_model_card(
        config,
        model_name="lorat-tiny",
        base_model=BACKBONE_ID,
        repo_id="org/lorat-tiny",
        eval_results=[LASOT_REPORT, GOT10K_REPORT, unconfirmed],
        datasets=["l-lt/LaSOT"],
        train_config={"data": {"train_datasets": ["lasot", "got10k"]}, "optim": {"lr": 0.0001}},
    )
    data = card.data
    assert data.model_name == "lorat-tiny" and data.license == "apache-2.0"
    assert (data.library_name, data.base_model, data.base_model_relation) == ("peft", BACKBONE_ID, "adapter")
    assert data.tags[:4] == ["lorat-hf", "lora", "single-object-tracking", "dinov2"]
    assert data.get("pipeline_tag") is None and data.datasets == ["l-lt/LaSOT"]
    values = {(r.dataset_type, r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert values == {
        ("l-lt/LaSOT", "test", "success_auc"): 71.23,
        ("l-lt/LaSOT", "test", "precision"): 77.3,
        ("l-lt/LaSOT", "test", "normalized_precision"): 80.91,
        ("l-lt/LaSOT", "test", "success_rate_50"): 83.0,
        ("got-10k", "val", "average_overlap"): 72.15,  # GOT-10k fractions become percent; fps is not a card metric
        ("got-10k", "val", "success_rate_50"): 81.8,
        ("got-10k", "val", "success_rate_75"): 70.7,
    }
    assert all(r.task_type == "video-object-tracking" and r.source_name is None for r in data.eval_results)
    text = str(card)
    assert "model-index:" in text and "name: lorat-tiny" in text
    assert 'LoraTracker.from_pretrained("org/lorat-tiny")' in text and "--model org/lorat-tiny" in text
    assert "| LaSOT | test | 71.2 | 80.9 | 77.3 | – | 83.0 | – | lorat-eval, protocol `lasot`, 280 sequences |" in text
    assert "| TNL2K | test | 62.7 | – | – | – | – | – | summary, **unconfirmed** |" in text
    assert "| Training data | lasot, got10k |" in text and "| Learning rate | 0.0001 |" in text
    assert "9,093 (0.0 M) trained" in text  # counted on the meta device
    assert "@inproceedings{lin2024lorat" in text
    # The card survives a save/load round trip unchanged.
    assert str(ModelCard(text)) == text
    validate_model_card(card, adapter=True, base_model=BACKBONE_ID)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model_name", None, "model_name"),
        ("base_model", None, "base_model \\(the Hub id of the DINOv2 backbone"),
        ("base_model", "./dinov2", "base_model must be one Hub repo id"),
        ("license", None, "license"),
        ("library_name", "transformers", "library_name='transformers'"),
        ("base_model_relation", "quantized", "base_model_relation='quantized'"),
        ("tags", ["lora"], "tags \\['lorat-hf', 'single-object-tracking', 'dinov2'\\]"),
        ("pipeline_tag", "object-detection", "pipeline_tag='object-detection' must not be set"),
    ],
)
def test_card_validation_names_the_missing_field(field, value, message):
    card = build_model_card(tiny_tracker_config(), model_name="lorat-tiny", base_model=BACKBONE_ID)
    validate_model_card(card)
    card.data[field] = value
    if field == "model_name" and value is None:
        card.data.eval_results = None
    with pytest.raises(ModelCardError, match=message):
        validate_model_card(card, adapter=True)


def test_card_validation_checks_the_uploaded_backbone():
    card = build_model_card(tiny_tracker_config(), model_name="lorat-tiny", base_model=BACKBONE_ID, adapter=False)
    validate_model_card(card, adapter=False, base_model=BACKBONE_ID)
    with pytest.raises(ModelCardError, match="library_name='transformers'.*expected library_name='peft'"):
        validate_model_card(card, adapter=True)
    with pytest.raises(ModelCardError, match="built on 'org/other'"):
        validate_model_card(card, base_model="org/other")


def test_eval_reports_are_checked():
    with pytest.raises(ValueError, match=r"missing \['dataset'\]"):
        TrackingResult.from_report({"metrics": {"success_auc": 1.0}})
    with pytest.raises(ValueError, match="has none of the metrics"):
        TrackingResult.from_report({"dataset": "lasot", "metrics": {"fps": 30}})
    with pytest.raises(ValueError, match="not a finite number"):
        TrackingResult.from_report({"dataset": "lasot", "metrics": {"success_auc": float("nan")}})
    trackingnet = TrackingResult.from_report(
        {"dataset": "TrackingNet", "metrics": {"success": 83.5, "coverage": 99.0}}
    )
    assert (trackingnet.dataset, trackingnet.dataset_type, trackingnet.metrics) == (
        "TrackingNet",
        "trackingnet",
        {"success_auc": 83.5},
    )


def test_committed_model_cards_equal_their_rendering():
    spec = importlib.util.spec_from_file_location("model_cards_generate", REPO_ROOT / "model_cards" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generate  # its dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(generate)
        rendered = generate.render_all()
    finally:
        del sys.modules[spec.name]
    committed = {p.name for p in (REPO_ROOT / "model_cards").glob("*.md")} - {"README.md"}
    assert committed == set(rendered), "run `python model_cards/generate.py` and commit the cards"
    for name, text in rendered.items():
        assert (REPO_ROOT / "model_cards" / name).read_text(encoding="utf-8") == text, f"{name} is stale"
    assert len(rendered) == 16  # 12 LoRAT (6 variants x 2 protocols) + 4 LoRATv2
    for text in rendered.values():
        validate_model_card(ModelCard(text), adapter=True)


# ----------------------------------------------------------------------------------------------------------------
# Several adapters over one backbone (local folders)
# ----------------------------------------------------------------------------------------------------------------


def test_switching_adapters_reproduces_each_adapter_alone(tmp_path, backbone_folder):
    inputs = tracker_inputs(seed=1)
    alone = {}
    for name, seed in (("first", 11), ("second", 12)):
        model = make_adapter(backbone_folder, seed=seed, backbone_id=str(backbone_folder))
        save_adapter_folder(model, tmp_path / name)
        alone[name] = outputs(load_tracker_model(tmp_path / name), inputs)
    assert not torch.equal(alone["first"]["score_map"], alone["second"]["score_map"])

    model = load_tracker_model(tmp_path / "first", adapter_name="first")
    backbone_weight = model.get_base_model().encoder.layer[0].attention.q_proj.base_layer.weight
    model = load_additional_adapter(model, tmp_path / "second", "second")
    assert model.get_base_model().encoder.layer[0].attention.q_proj.base_layer.weight is backbone_weight
    for name in ("second", "first", "second"):
        model.set_adapter(name)
        found = outputs(model, inputs)
        assert all(torch.equal(found[k], alone[name][k]) for k in found), name

    with pytest.raises(ValueError, match="already loaded"):
        load_additional_adapter(model, tmp_path / "second", "second")
    with pytest.raises(TypeError, match="merge=False"):
        load_additional_adapter(model.merge_and_unload(), tmp_path / "second", "third")


def test_additional_adapter_must_share_backbone_and_geometry(tmp_path, backbone_folder):
    model = make_adapter(backbone_folder, seed=13, backbone_id=BACKBONE_ID)
    other_geometry = make_adapter(backbone_folder, seed=14, backbone_id=BACKBONE_ID, search_size=168)
    other_backbone = make_adapter(backbone_folder, seed=15, backbone_id="tiny-models/other-dinov2")
    save_adapter_folder(other_geometry, tmp_path / "geometry")
    save_adapter_folder(other_backbone, tmp_path / "backbone")
    with pytest.raises(ValueError, match="uses template/search crops"):
        load_additional_adapter(model, tmp_path / "geometry", "geometry")
    with pytest.raises(ValueError, match="trained on the backbone tiny-models/other-dinov2"):
        load_additional_adapter(model, tmp_path / "backbone", "backbone")
    with pytest.raises(OSError, match="not a tracker adapter"):
        load_additional_adapter(model, backbone_folder, "dinov2")


def test_swiglu_adapters_keep_the_tied_lora_a(tmp_path, backbone_folder):
    swiglu = dict(TINY_SWIGLU)
    folder = make_backbone_folder_swiglu(tmp_path / "swiglu-dinov2")
    first = make_adapter(folder, seed=16, dinov2_config=swiglu)
    second = make_adapter(folder, seed=17, dinov2_config=swiglu)
    save_adapter_folder(first, tmp_path / "first")
    save_adapter_folder(second, tmp_path / "second")
    model = load_tracker_model(tmp_path / "first")
    load_additional_adapter(model, tmp_path / "second", "second")
    mlp = model.get_base_model().encoder.layer[0].mlp
    for name in ("default", "second"):
        assert mlp.up_proj.lora_A[name].weight is mlp.gate_proj.lora_A[name].weight
    inputs = tracker_inputs(seed=2)
    model.set_adapter("second")
    assert torch.equal(outputs(model, inputs)["pred_boxes"], outputs(second, inputs)["pred_boxes"])


TINY_SWIGLU = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=224,
    use_mask_token=False,
    use_swiglu_ffn=True,
)


def make_backbone_folder_swiglu(folder: Path) -> Path:
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(5)
    Dinov2Model(Dinov2Config(**TINY_SWIGLU)).save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------------------------------------------
# Round trips through the fake Hub (client subprocesses)
# ----------------------------------------------------------------------------------------------------------------

ROUND_TRIP_CLIENT = r"""
import json, sys
import torch
from huggingface_hub import HfApi
from safetensors.torch import load_file, save_file
from lorat_hf.adapters import load_tracker_model
from lorat_hf.hub import load_additional_adapter, push_tracker_to_hub

args = json.loads(sys.argv[1])
inputs = load_file(args["inputs"])
found = {}

def record(name, model):
    with torch.no_grad():
        out = model(**inputs)
    found[name + ".score_map"], found[name + ".pred_boxes"] = out.score_map, out.pred_boxes

main = push_tracker_to_hub(args["main"], "org/tracker", base_model=args["backbone_id"])
v2 = push_tracker_to_hub(args["v2"], "org/tracker", revision="v2", commit_message="second adapter")
push_tracker_to_hub(args["v2"], "org/other-tracker")
merged = push_tracker_to_hub(args["merged"], "org/tracker-merged")
cache = args["cache"]
record("main", load_tracker_model("org/tracker", cache_dir=cache))
record("main_merged", load_tracker_model("org/tracker", merge=True, cache_dir=cache))
record("v2", load_tracker_model("org/tracker", revision="v2", cache_dir=cache))
record("main_by_commit", load_tracker_model("org/tracker", revision=main.commit_oid, cache_dir=cache))
record("merged_repo", load_tracker_model("org/tracker-merged", cache_dir=cache))
model = load_tracker_model("org/tracker", adapter_name="main", cache_dir=cache)
load_additional_adapter(model, "org/tracker", "v2", revision="v2", cache_dir=cache)
model.set_adapter("v2")
record("switched_v2", model)
model.set_adapter("main")
record("switched_main", model)
errors = {}
for name, call in {
    "missing_repo": lambda: load_tracker_model("org/does-not-exist", cache_dir=cache),
    "missing_revision": lambda: load_tracker_model("org/tracker", revision="v3", cache_dir=cache),
}.items():
    try:
        call()
    except Exception as error:
        errors[name] = f"{type(error).__name__}: {error}"

# The LoraTracker facade loads the same repo (merged by default) and tracks like the local folder it came from.
import numpy as np
from lorat_hf.tracking import LoraTracker
frames = np.random.default_rng(0).integers(0, 255, size=(4, 120, 160, 3), dtype=np.uint8)
tracks = {}
for name, tracker in {
    "hub": LoraTracker.from_pretrained("org/tracker", revision="v2", cache_dir=cache),
    "local": LoraTracker.from_pretrained(args["v2"]),
}.items():
    tracker.init(frames[0], (40.0, 30.0, 24.0, 24.0))
    tracks[name] = [[float(v) for v in tracker.track(frame)[0]] for frame in frames[1:]]
    tracks[name + "_processor"] = type(tracker.image_processor).__name__

# transformers' push_to_hub on the PeftModel: the card already on the Hub is kept; only peft files are re-uploaded.
updated = load_tracker_model("org/tracker", cache_dir=cache)
with torch.no_grad():
    updated.base_model.model.tracker_head.modules_to_save["default"].score_mlp.layers[-1].bias.add_(1.0)
updated.push_to_hub("org/tracker", commit_message="update weights")
record("updated", updated)

# Offline: the Hub goes away; cached revisions still load with local_files_only, others fail clearly.
import urllib.request
urllib.request.urlopen(urllib.request.Request(HfApi().endpoint + "/_fake/shutdown", method="POST"))
record("offline_v2", load_tracker_model("org/tracker", revision="v2", cache_dir=cache, local_files_only=True))
try:
    load_tracker_model("org/other-tracker", cache_dir=cache, local_files_only=True)
except OSError as error:
    errors["offline_not_cached"] = str(error)
try:
    push_tracker_to_hub(args["v2"], "org/tracker")
except Exception as error:
    errors["push_offline"] = f"{type(error).__name__}: {error}"
save_file({k: v.contiguous() for k, v in found.items()}, args["outputs"])
print(json.dumps({"errors": errors, "main_commit": main.commit_oid, "v2_files": v2.files, "merged_files": merged.files,
                  "tracks": tracks}))
"""


def test_push_then_load_round_trip(tmp_path, backbone_folder, fake_hub):
    fake_hub.add_folder(BACKBONE_ID, backbone_folder)
    main = make_adapter(backbone_folder, seed=21)  # names the local backbone folder: push fixes it up
    v2 = make_adapter(backbone_folder, seed=22, backbone_id=BACKBONE_ID)
    save_adapter_folder(main, tmp_path / "main")
    save_adapter_folder(v2, tmp_path / "v2")
    add_training_leftovers(tmp_path / "main")
    inputs = tracker_inputs(seed=3)
    save_file(inputs, tmp_path / "inputs.safetensors")
    expected = {"main": outputs(main, inputs), "v2": outputs(v2, inputs)}
    merged = make_adapter(backbone_folder, seed=21, backbone_id=BACKBONE_ID).merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    expected["main_merged"] = outputs(merged, inputs)

    args = {k: str(tmp_path / k) for k in ("main", "v2", "merged", "cache")}
    args.update(
        backbone_id=BACKBONE_ID, inputs=str(tmp_path / "inputs.safetensors"), outputs=str(tmp_path / "out.safetensors")
    )
    result = run_client(fake_hub, tmp_path, ROUND_TRIP_CLIENT, json.dumps(args), token=WRITE_TOKEN)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    found = load_file(tmp_path / "out.safetensors")

    def same(name, reference):
        return all(torch.equal(found[f"{name}.{k}"], reference[k]) for k in reference)

    assert same("main", expected["main"]) and same("main_by_commit", expected["main"])
    assert same("main_merged", expected["main_merged"]) and same("merged_repo", expected["main_merged"])
    assert set(report["merged_files"]) == {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"}
    # Both the adapter repo and the backbone it names went to the requested cache.
    assert {"models--org--tracker", "models--tiny-models--dinov2-32"} <= {
        p.name for p in (tmp_path / "cache").iterdir()
    }
    assert same("v2", expected["v2"]) and same("offline_v2", expected["v2"])
    assert same("switched_v2", expected["v2"]) and same("switched_main", expected["main"])
    assert not same("updated", expected["main"])

    # Exactly the allow-listed files reached the Hub (never checkpoints, optimizer states or the backbone copy).
    assert set(fake_hub.files("org/tracker", "v2")) == ADAPTER_FILES | {".gitattributes"}
    assert set(report["v2_files"]) == ADAPTER_FILES
    files = fake_hub.files("org/tracker", report["main_commit"])
    assert set(files) == ADAPTER_FILES | {".gitattributes"}
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == BACKBONE_ID
    # After model.push_to_hub the card is still ours and config.json is still there.
    latest = fake_hub.files("org/tracker")
    card = ModelCard(latest["README.md"].decode())
    assert (card.data.library_name, card.data.base_model, card.data.model_name) == ("peft", BACKBONE_ID, "tracker")
    assert "config.json" in latest and latest["adapter_model.safetensors"] != files["adapter_model.safetensors"]
    assert fake_hub.commit_messages("org/tracker")[-1] == "update weights"

    tracks = report["tracks"]
    assert tracks["hub"] == tracks["local"] and len(tracks["hub"]) == 3
    assert tracks["hub_processor"] == "LoraTrackerImageProcessor"

    errors = report["errors"]
    assert (
        "OSError" in errors["missing_repo"] and "neither a local folder nor a Hub repository" in errors["missing_repo"]
    )
    assert "Revision 'v3' does not exist in 'org/tracker'" in errors["missing_revision"]
    assert "not in the local cache and the Hub cannot be reached" in errors["offline_not_cached"]
    assert errors["push_offline"].startswith("HubPublishError: Could not reach the Hub to upload org/tracker")


PRIVATE_CLIENT = r"""
import json, sys
from lorat_hf.adapters import load_tracker_model
from lorat_hf.hub import push_tracker_to_hub

folder, backbone_id, token, read_token = sys.argv[1:5]
outcome = {}
def attempt(name, call):
    try:
        outcome[name] = "ok: " + str(call())
    except Exception as error:
        outcome[name] = f"{type(error).__name__}: {error}"

attempt("push_without_token", lambda: push_tracker_to_hub(folder, "org/private", private=True))
attempt("push_read_only", lambda: push_tracker_to_hub(folder, "org/private", private=True, token=read_token))
attempt("push", lambda: push_tracker_to_hub(folder, "org/private", private=True, token=token).files)
attempt("load_without_token", lambda: load_tracker_model("org/private"))
attempt("load_with_token", lambda: type(load_tracker_model("org/private", token=token)).__name__)
print(json.dumps(outcome))
"""


def test_private_repos_need_a_token(tmp_path, backbone_folder, fake_hub):
    # The backbone repo is private too: the token must reach both downloads.
    fake_hub.add_folder(BACKBONE_ID, backbone_folder, private=True)
    folder = save_adapter_folder(make_adapter(backbone_folder, seed=31, backbone_id=BACKBONE_ID), tmp_path / "final")
    result = run_client(fake_hub, tmp_path, PRIVATE_CLIENT, str(folder), BACKBONE_ID, WRITE_TOKEN, READ_TOKEN)
    assert result.returncode == 0, result.stderr[-4000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["push_without_token"].startswith("HubPublishError")
    assert "not logged in (401)" in outcome["push_without_token"] and "hf auth login" in outcome["push_without_token"]
    assert outcome["push_read_only"].startswith("HubPublishError") and "403" in outcome["push_read_only"]
    assert outcome["push"].startswith("ok")
    assert outcome["load_without_token"].startswith("OSError") and "HF_TOKEN" in outcome["load_without_token"]
    assert outcome["load_with_token"] == "ok: PeftModel"
    assert fake_hub.repos["org/private"].private
    assert set(fake_hub.files("org/private")) == ADAPTER_FILES | {".gitattributes"}
