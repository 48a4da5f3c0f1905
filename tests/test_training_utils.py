"""lorat_hf.training: arguments, optimisation, precision, checkpoints, progress bookkeeping, validation loss."""

from __future__ import annotations

import json
import math
import random
import textwrap

import numpy as np
import pytest
import torch
from conftest import tiny_config

from lorat_hf import LoraTrackerModel, add_adapters, load_tracker_model
from lorat_hf.image_processing_lora_tracker import LoraTrackerImageProcessor
from lorat_hf.training import (
    PeftArguments,
    TrainingProgress,
    TrainingSetupError,
    WarmupCosineSchedule,
    build_parameter_groups,
    cast_for_mixed_precision_,
    export_trained_model,
    isolated_rng,
    latest_checkpoint,
    list_checkpoints,
    load_trainable_weights,
    mark_checkpoint_complete,
    parse_train_args,
    plan_batches,
    read_checkpoint_marker,
    resolve_checkpoint,
    rotate_checkpoints,
    save_trainable_weights,
    warmup_cosine_lr,
    weight_dtype_for,
    write_json_atomic,
)
from lorat_hf.training.checkpointing import checkpoint_dir


def _inputs(batch=2, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return dict(
        template_pixel_values=torch.randn(batch, 3, 56, 56, generator=generator),
        search_pixel_values=torch.randn(batch, 3, 112, 112, generator=generator),
        template_token_type_ids=torch.randint(0, 2, (batch, 4, 4), generator=generator),
    )


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


# ----------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------


def test_recipe_base_inheritance_and_command_line_precedence(tmp_path):
    _write(
        tmp_path / "base.yaml",
        """
        model: {variant: L-224}
        training: {learning_rate: 2.0e-4, num_train_epochs: 50, output_dir: base-run}
        data: {dataset_roots: {lasot: /data/LaSOT}}
        """,
    )
    child = _write(
        tmp_path / "child.yaml",
        """
        base: base.yaml
        training: {num_train_epochs: 7}
        peft: {lora_r: 16, lora_target_modules: qv}
        """,
    )
    config = parse_train_args(["--config", child, "--learning_rate", "3e-5", "--dataset_roots", '{"got10k": "/g"}'])
    assert config.model.variant == "L-224"  # inherited
    assert config.training.num_train_epochs == 7  # child overrides base
    assert config.training.learning_rate == 3e-5  # command line overrides both
    assert config.training.output_dir == "base-run"
    assert config.peft.lora_r == 16 and config.peft.target_module_names() == ["q_proj", "v_proj"]
    assert config.data.dataset_roots == {"got10k": "/g"}
    assert config.config_file == child
    assert json.loads(json.dumps(config.to_dict()))["training"]["learning_rate"] == 3e-5


@pytest.mark.parametrize(
    "recipe, message",
    [
        ("training: {learnig_rate: 1.0}", "did you mean 'learning_rate'"),
        ("training: {lora_r: 8}", "belongs in the 'peft' section"),
        ("trainig: {seed: 1}", "unknown section 'trainig'"),
        ("training: {mixed_precision: fp32}", "mixed_precision='fp32' is not valid"),
        ("peft: {layer_decay: 0.7}", "full_finetune only"),
        ("model: {dinov2_overrides: {hidden_size: 32}}", "--random_backbone"),
        ("model: {variant: B-512}", "not an official LoRAT variant"),
        ("hub: {push_to_hub: true}", "--hub_model_id"),
        ("data: {train_datasets: [a, b], train_dataset_weights: [1.0]}", "one weight per dataset"),
        ("base: missing.yaml", "does not exist"),
    ],
)
def test_bad_recipes_fail_with_a_message_naming_the_problem(tmp_path, recipe, message):
    path = _write(tmp_path / "bad.yaml", recipe)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        parse_train_args(["--config", path])


def test_target_module_presets_and_lists():
    assert PeftArguments(lora_target_modules="all").target_module_names() is None
    assert PeftArguments(lora_target_modules="q_proj, fc1").target_module_names() == ["q_proj", "fc1"]
    with pytest.raises(ValueError, match="empty"):
        PeftArguments(lora_target_modules=" , ")


# ----------------------------------------------------------------------------------------------------------------
# Optimisation
# ----------------------------------------------------------------------------------------------------------------


def _groups_by_name(groups):
    return {name: group for group in groups for name in group["param_names"]}


def test_lora_parameter_groups_follow_the_official_weight_decay_rule():
    model = add_adapters(LoraTrackerModel(tiny_config()))
    groups = build_parameter_groups(model, learning_rate=1e-4, weight_decay=0.1)
    by_name = _groups_by_name(groups)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(by_name) == trainable  # every trainable parameter exactly once, nothing frozen
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    for name, group in by_name.items():
        assert group["lr"] == 1e-4
        parameter = model.get_parameter(name)
        if "token_type_embeddings" in name or parameter.squeeze().ndim <= 1:
            assert group["weight_decay"] == 0.0, name
        else:
            assert group["weight_decay"] == 0.1, name
    # the (1, D) final score weight is 1-D once squeezed: no decay, as in the official rule
    assert (
        by_name["base_model.model.tracker_head.modules_to_save.default.score_mlp.layers.2.weight"]["weight_decay"]
        == 0.0
    )
    assert by_name["base_model.model.encoder.layer.0.attention.q_proj.lora_A.default.weight"]["weight_decay"] == 0.1


def test_full_finetune_layer_decay_scales_lr_by_depth():
    model = LoraTrackerModel(tiny_config())  # 2 layers
    model.requires_grad_(True)
    by_name = _groups_by_name(build_parameter_groups(model, 1e-3, 0.1, layer_decay=0.5))
    assert math.isclose(by_name["embeddings.patch_embeddings.projection.weight"]["lr"], 1e-3 * 0.5**3)
    assert math.isclose(by_name["encoder.layer.0.attention.q_proj.weight"]["lr"], 1e-3 * 0.5**2)
    assert math.isclose(by_name["encoder.layer.1.mlp.fc1.weight"]["lr"], 1e-3 * 0.5)
    for top in ("tracker_head.box_mlp.layers.0.weight", "layernorm.weight", "embeddings.position_embeddings"):
        assert by_name[top]["lr"] == 1e-3
    assert by_name["encoder.layer.0.norm1.weight"]["weight_decay"] == 0.0
    assert by_name["embeddings.position_embeddings"]["weight_decay"] == 0.0
    assert by_name["embeddings.patch_embeddings.projection.weight"]["weight_decay"] == 0.1


def test_no_trainable_parameters_is_an_error():
    model = LoraTrackerModel(tiny_config()).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_parameter_groups(model, 1e-4)


def test_warmup_cosine_schedule_values():
    base, warm, total, start, floor = 1e-4, 10, 100, 1e-7, 1e-6
    lr = [warmup_cosine_lr(step, base, warm, total, start, floor) for step in range(warm + total + 5)]
    assert lr[0] == start
    assert lr[5] == pytest.approx(start + 5 * (base - start) / warm)
    assert lr[warm] == pytest.approx(base)
    assert lr[warm + total // 2] == pytest.approx((base + floor) / 2)
    assert all(a >= b for a, b in zip(lr[warm:], lr[warm + 1 :], strict=False))
    assert lr[warm + total - 1] > floor and lr[-1] == floor


def test_schedule_applies_each_groups_own_peak_and_resumes_from_its_state():
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]

    def make():
        optimizer = torch.optim.AdamW([{"params": [params[0]], "lr": 1e-3}, {"params": [params[1]], "lr": 1e-4}])
        return optimizer, WarmupCosineSchedule(optimizer, warmup_steps=4, total_steps=20, warmup_lr=0.0, min_lr=0.0)

    optimizer, schedule = make()
    for _ in range(4):
        optimizer.step()
        schedule.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-3, 1e-4])
    optimizer.step()
    schedule.step()
    state = schedule.state_dict()
    expected = []
    for _ in range(6):
        optimizer.step()
        schedule.step()
        expected.append([g["lr"] for g in optimizer.param_groups])
    optimizer, resumed = make()
    resumed.load_state_dict(state)
    got = []
    for _ in range(6):
        optimizer.step()
        resumed.step()
        got.append([g["lr"] for g in optimizer.param_groups])
    assert got == expected


# ----------------------------------------------------------------------------------------------------------------
# Precision
# ----------------------------------------------------------------------------------------------------------------


def test_weight_dtype_mapping():
    assert weight_dtype_for("bf16") is torch.bfloat16 and weight_dtype_for("fp16") is torch.float16
    assert weight_dtype_for(None) is torch.float32 and weight_dtype_for("no") is torch.float32
    with pytest.raises(ValueError, match="mixed_precision"):
        weight_dtype_for("int8")


def test_frozen_weights_low_dtype_trainable_fp32_train_under_autocast():
    model = add_adapters(LoraTrackerModel(tiny_config()))
    counts = cast_for_mixed_precision_(model, torch.bfloat16)
    assert counts["frozen"] > counts["trainable"] > 0
    for name, parameter in model.named_parameters():
        low = not parameter.requires_grad and parameter.ndim >= 2  # frozen matrices; norms/biases stay fp32
        assert parameter.dtype == (torch.bfloat16 if low else torch.float32), name
    assert model.get_base_model().encoder.layer[0].attention.q_proj.base_layer.weight.dtype == torch.bfloat16
    labels = torch.tensor([[0.3, 0.3, 0.6, 0.7], [0.1, 0.2, 0.5, 0.4]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(**_inputs(), labels=labels)
    output.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------------


def _fake_checkpoint(root, step, complete=True):
    folder = checkpoint_dir(root, step)
    folder.mkdir(parents=True)
    (folder / "optimizer.bin").write_bytes(b"x" * (10 + step))
    (folder / "sub").mkdir()
    (folder / "sub" / "weights.safetensors").write_bytes(b"y" * 7)
    if complete:
        mark_checkpoint_complete(folder, step)
    return folder


def test_latest_ignores_checkpoints_without_a_valid_marker(tmp_path):
    root = tmp_path / "checkpoints"
    assert latest_checkpoint(root) is None and resolve_checkpoint("latest", root) is None
    _fake_checkpoint(root, 100)
    good = _fake_checkpoint(root, 200)
    _fake_checkpoint(root, 300, complete=False)  # killed before the marker
    truncated = _fake_checkpoint(root, 400)
    (truncated / "optimizer.bin").write_bytes(b"x")  # a file shorter than recorded
    assert read_checkpoint_marker(good)["global_step"] == 200
    assert read_checkpoint_marker(truncated) is None
    assert [(info.path.name, info.complete) for info in list_checkpoints(root)] == [
        ("checkpoint-100", True),
        ("checkpoint-200", True),
        ("checkpoint-300", False),
        ("checkpoint-400", False),
    ]
    assert latest_checkpoint(root) == good
    assert resolve_checkpoint("latest", root) == good
    assert resolve_checkpoint(str(good), root) == good
    with pytest.raises(TrainingSetupError, match="incomplete"):
        resolve_checkpoint(str(root / "checkpoint-300"), root)
    with pytest.raises(TrainingSetupError, match="does not exist"):
        resolve_checkpoint(str(root / "checkpoint-999"), root)


def test_the_step_comes_from_the_marker_not_the_folder_name(tmp_path):
    root = tmp_path / "checkpoints"
    renamed = _fake_checkpoint(root, 50)
    renamed.rename(root / "checkpoint-final-copy")
    _fake_checkpoint(root, 20)
    assert latest_checkpoint(root).name == "checkpoint-final-copy"


def test_rotation_keeps_the_newest_complete_checkpoints_and_drops_stale_partial_ones(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30, 40):
        _fake_checkpoint(root, step)
    _fake_checkpoint(root, 35, complete=False)
    removed = rotate_checkpoints(root, total_limit=2)
    assert sorted(p.name for p in removed) == ["checkpoint-10", "checkpoint-20", "checkpoint-35"]
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-30", "checkpoint-40"]
    assert rotate_checkpoints(root, total_limit=None) == []


def test_write_json_atomic_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_atomic_writes_give_ordinary_permissions_and_keep_a_replaced_files(tmp_path):
    """Temporary files and folders are private (0600/0700); what is moved into place must not stay so, or an export
    on a shared machine could not be read by the other users."""
    import os

    from lorat_hf.file_utils import staged_directory, write_text_atomic

    umask = os.umask(0)
    os.umask(umask)
    new = write_text_atomic(tmp_path / "new.txt", "x")
    assert new.stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(new, 0o640)
    write_text_atomic(new, "y")
    assert new.stat().st_mode & 0o777 == 0o640
    with staged_directory(tmp_path / "export") as folder:
        write_text_atomic(folder / "config.json", "{}")
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o777 & ~umask


def test_trainable_weights_round_trip_and_refuse_another_configuration(tmp_path):
    torch.manual_seed(0)
    trained = add_adapters(LoraTrackerModel(tiny_config()))
    path = save_trainable_weights(trained, tmp_path / "trainable.safetensors")
    torch.manual_seed(1)
    fresh = add_adapters(LoraTrackerModel(tiny_config()))
    load_trainable_weights(fresh, path)
    for (name, a), (_, b) in zip(trained.named_parameters(), fresh.named_parameters(), strict=True):
        if a.requires_grad:
            assert torch.equal(a, b), name
    other_rank = add_adapters(LoraTrackerModel(tiny_config(lora_r=8)))
    with pytest.raises(ValueError, match="shape|does not match"):
        load_trainable_weights(other_rank, path)
    full = LoraTrackerModel(tiny_config()).requires_grad_(True)
    with pytest.raises(ValueError, match="another peft method"):
        load_trainable_weights(full, path)


@pytest.mark.parametrize("full_finetune", [False, True], ids=["adapter", "full"])
def test_exports_load_back_to_the_same_outputs(tmp_path, full_finetune):
    torch.manual_seed(0)
    config = tiny_config()
    model = LoraTrackerModel(config)
    if full_finetune:
        model.requires_grad_(True)
        with torch.no_grad():
            model.encoder.layer[0].mlp.fc1.weight.mul_(1.5)
    else:
        # an adapter needs its backbone on disk: export the tracker's own DINOv2 weights as a backbone folder
        from transformers import Dinov2Model

        backbone = Dinov2Model(config.dinov2_config)
        backbone.save_pretrained(tmp_path / "backbone")
        model = LoraTrackerModel.from_backbone(str(tmp_path / "backbone"), config=config)
        model = add_adapters(model)
    model.eval()
    processor = LoraTrackerImageProcessor.from_tracker_config(config)
    target = tmp_path / "final"
    target.mkdir()
    (target / "stale.txt").write_text("from an older export")
    export_trained_model(model, target, processor, {"arguments": {"seed": 3}})
    assert not (target / "stale.txt").exists()  # replaced as a whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary folders left
    expected = {"config.json", "preprocessor_config.json", "train_config.json"}
    expected |= {"model.safetensors"} if full_finetune else {"adapter_config.json", "adapter_model.safetensors"}
    assert expected <= {p.name for p in target.iterdir()}
    if not full_finetune:
        assert (target / "adapter_model.safetensors").stat().st_size < (
            tmp_path / "backbone" / "model.safetensors"
        ).stat().st_size
    reloaded = load_tracker_model(target)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**_inputs()).score_map, model(**_inputs()).score_map, rtol=0, atol=1e-6)
    assert LoraTrackerImageProcessor.from_pretrained(target).search_size == processor.search_size


# ----------------------------------------------------------------------------------------------------------------
# Progress bookkeeping
# ----------------------------------------------------------------------------------------------------------------


def test_batch_plan_splits_the_global_batch_exactly():
    plan = plan_batches(128, num_processes=8, gradient_accumulation_steps=2, samples_per_epoch=131072)
    assert (plan.per_device_batch_size, plan.steps_per_epoch, plan.samples_per_epoch) == (8, 1024, 131072)
    assert plan_batches(8, 1, 1, samples_per_epoch=30).samples_per_epoch == 24  # whole steps only
    with pytest.raises(ValueError, match="not divisible"):
        plan_batches(128, num_processes=3, gradient_accumulation_steps=1, samples_per_epoch=1024)
    with pytest.raises(ValueError, match="smaller than one global batch"):
        plan_batches(128, 1, 1, samples_per_epoch=100)


def test_progress_rolls_over_epochs():
    progress = TrainingProgress()
    for _ in range(7):
        progress.advance(steps_per_epoch=3)
    assert progress.to_dict() == {"global_step": 7, "epoch": 2, "step_in_epoch": 1}
    assert TrainingProgress.from_dict(progress.to_dict()) == progress


def test_isolated_rng_leaves_every_stream_untouched():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with isolated_rng():
        random.random(), np.random.rand(3), torch.rand(5)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_validation_loss_is_the_mean_over_batches_and_keeps_training_mode():
    from accelerate import Accelerator

    from lorat_hf.training import evaluate_loss

    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = add_adapters(LoraTrackerModel(tiny_config()))
    labels = torch.tensor([[0.3, 0.3, 0.6, 0.7], [0.1, 0.2, 0.5, 0.4]])
    batches = [dict(_inputs(seed=s), labels=labels) for s in (1, 2)]
    model.train()
    torch.manual_seed(5)
    metrics = evaluate_loss(model, [dict(b) for b in batches], accelerator)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(1))  # no RNG consumed
    assert model.training
    model.eval()
    with torch.no_grad():
        losses = [model(**b).loss.item() for b in batches]
    assert metrics["val_loss"] == pytest.approx(sum(losses) / 2, rel=1e-6)
    assert metrics["val_loss"] == pytest.approx(metrics["val_cls_loss"] + metrics["val_reg_loss"], rel=1e-6)


def test_tracking_evaluation_scores_every_sequence_and_restores_state(tmp_path):
    from data_factories import make_generic

    from lorat_hf.data.sequences import load_sequences
    from lorat_hf.training import evaluate_tracking

    make_generic(tmp_path / "seqs", names=("a", "b"), num_frames=4, size_wh=(96, 72))
    sequences = load_sequences("generic", tmp_path / "seqs", cache_dir=tmp_path / "cache")
    torch.manual_seed(0)
    model = add_adapters(LoraTrackerModel(tiny_config())).train()
    processor = LoraTrackerImageProcessor.from_tracker_config(model.config)
    torch.manual_seed(7)
    metrics = evaluate_tracking(model, processor, sequences)
    after = torch.rand(1)
    torch.manual_seed(7)
    assert torch.equal(after, torch.rand(1))  # no RNG consumed
    assert model.training
    assert metrics["track_num_sequences"] == 2
    assert set(metrics) == {
        "track_success_auc",
        "track_precision",
        "track_normalized_precision",
        "track_num_sequences",
    }
    assert all(0 <= metrics[key] <= 100 for key in metrics if key != "track_num_sequences")


def test_activation_checkpointing_keeps_the_loss_and_gradients():
    from lorat_hf.training.builders import enable_activation_checkpointing

    labels = torch.tensor([[0.3, 0.3, 0.6, 0.7], [0.1, 0.2, 0.5, 0.4]])
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = add_adapters(LoraTrackerModel(tiny_config())).train()
        if checkpointing:
            enable_activation_checkpointing(model.get_base_model())
            assert model.get_base_model().is_activation_checkpointing
        model(**_inputs(), labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-7)


def test_export_of_a_compiled_model_is_the_same_adapter_folder(tmp_path):
    from transformers import Dinov2Model

    config = tiny_config()
    Dinov2Model(config.dinov2_config).save_pretrained(tmp_path / "backbone")
    model = add_adapters(LoraTrackerModel.from_backbone(str(tmp_path / "backbone"), config=config))
    export_trained_model(torch.compile(model), tmp_path / "final")  # the wrapper is never run: no compilation
    names = {p.name for p in (tmp_path / "final").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json"} <= names
    assert "model.safetensors" not in names
