"""examples/train.py end to end through `accelerate launch`: DDP on 2 CPU processes, exact resume, checkpoints,
exports, the recipes and accelerate configs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import run_in_process_group
from data_factories import make_generic
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "examples" / "train.py"
CONFIGS = REPO / "examples" / "configs"
ACCELERATE_CONFIGS = REPO / "examples" / "accelerate_configs"
ACCELERATE = Path(sys.executable).parent / "accelerate"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offline_env(**overrides: str) -> dict[str, str]:
    """This environment without accelerate's settings, offline, one OpenMP thread, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.update(overrides)
    return env


def synthetic_run_args(output: Path, cache: Path, train_sequences: int, val_sequences: int, *extra: str) -> list[str]:
    """The tiny synthetic recipe writing to `output`, generating its own sequences into the cache `cache`."""
    return [
        *("--config", str(CONFIGS / "tiny-synthetic.yaml"), "--output_dir", str(output)),
        *("--sequence_cache_dir", str(cache)),
        *("--synthetic_sequences", str(train_sequences), "--synthetic_val_sequences", str(val_sequences)),
        *extra,
    ]


def launch(
    args: list[str], processes: int = 1, timeout: int = 420, env_overrides: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run examples/train.py under `accelerate launch` (gloo DDP for 2 processes) and require success.

    The launcher runs in its own process group, killed as a whole on timeout (no orphaned ranks left behind): a hang
    is a test failure.
    """
    env = offline_env(PYTHONUNBUFFERED="1", **(env_overrides or {}))
    if processes > 1:
        env["ACCELERATE_USE_CPU"] = "true"  # with --multi_gpu: real DDP over gloo (--cpu alone starts ONE process)
        launcher = ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", str(_free_port())]
    else:
        launcher = ["--num_processes", "1", "--cpu"]
    command = [str(ACCELERATE), "launch", *launcher, str(TRAIN_SCRIPT), *args]
    result = run_in_process_group(command, cwd=REPO, env=env, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-6000:]}"
    return result


@pytest.fixture(scope="module")
def generic_data(tmp_path_factory):
    """Tiny generic-layout sequences (train and val splits) and a private sequence cache."""
    root = tmp_path_factory.mktemp("generic")
    make_generic(root / "train", names=[f"seq{i}" for i in range(5)], num_frames=10, size_wh=(96, 72), extension="jpg")
    make_generic(root / "val", names=["val0", "val1"], num_frames=6, size_wh=(96, 72), extension="jpg")
    return root


def tiny_args(data_root: Path, output_dir: Path, *extra: str) -> list[str]:
    """The tiny synthetic recipe pointed at the generic test sequences, 2 steps per epoch, 4 epochs."""
    return [
        "--config",
        str(CONFIGS / "tiny-synthetic.yaml"),
        "--output_dir",
        str(output_dir),
        "--train_datasets",
        "generic:train",
        "--val_datasets",
        "generic:val",
        "--dataset_roots",
        json.dumps({"generic": str(data_root)}),
        "--sequence_cache_dir",
        str(data_root / "cache"),
        "--tracking_eval_sequences",
        "0",
        "--samples_per_epoch",
        "16",
        "--global_batch_size",
        "8",
        "--num_train_epochs",
        "4",
        "--warmup_epochs",
        "1",
        "--val_pairs",
        "8",
        "--validation_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--checkpoints_total_limit",
        "2",
        "--logging_steps",
        "1",
        "--dataloader_num_workers",
        "0",
        "--report_to",
        "none",
        *extra,
    ]


def read_metrics(output_dir: Path) -> list[dict]:
    lines = (output_dir / "logs" / "train_metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "pairs_per_second"} for line in lines]


def test_ddp_ranks_split_the_data_and_an_interrupted_run_resumes_exactly(generic_data, tmp_path):
    full, split = tmp_path / "uninterrupted", tmp_path / "interrupted"
    launch(tiny_args(generic_data, full, "--log_sample_ids"), processes=2)

    # Two ranks saw disjoint halves of every global batch, the whole epoch between them, and ended identical.
    ranks = [
        [json.loads(line) for line in (full / "sample_ids" / f"rank-{r}.jsonl").read_text().splitlines()]
        for r in (0, 1)
    ]
    batches = [[tuple(s) for entry in rank[:-1] for s in entry["samples"]] for rank in ranks]
    assert len(batches[0]) == len(batches[1]) == 8 * 4  # 8 steps x 4 pairs per rank
    assert not set(batches[0]) & set(batches[1])
    for epoch in range(4):
        seen = sorted(index for epoch_, index in batches[0] + batches[1] if epoch_ == epoch)
        assert seen == list(range(16))
    assert ranks[0][-1]["weights_sha256"] == ranks[1][-1]["weights_sha256"]
    run_config = json.loads((full / "train_config.json").read_text())
    assert run_config["accelerate"]["distributed_type"] == "DistributedType.MULTI_CPU"
    assert run_config["batch_plan"] == {
        "global_batch_size": 8,
        "num_processes": 2,
        "gradient_accumulation_steps": 1,
        "per_device_batch_size": 4,
        "steps_per_epoch": 2,
        "samples_per_epoch": 16,
    }
    assert sorted(p.name for p in (full / "checkpoints").iterdir()) == ["checkpoint-6", "checkpoint-8"]  # rotation

    # Stop after 3 steps (mid-epoch), plant an incomplete later checkpoint, resume from "latest".
    launch(tiny_args(generic_data, split, "--max_train_steps", "3"), processes=2)
    planted = split / "checkpoints" / "checkpoint-7"
    shutil.copytree(split / "checkpoints" / "checkpoint-3", planted)
    (planted / "checkpoint_complete.json").unlink()
    resumed = launch(tiny_args(generic_data, split, "--resume_from_checkpoint", "latest"), processes=2)
    assert "Ignoring incomplete checkpoints" in resumed.stderr and "checkpoint-7" in resumed.stderr
    assert "Resumed from" in resumed.stderr and "checkpoint-3 at step 3" in resumed.stderr
    assert not planted.exists()  # stale partial checkpoint rotated away

    assert read_metrics(split) == read_metrics(full)  # every loss, lr, grad norm and validation loss, exactly
    final_full = load_file(full / "final" / "adapter_model.safetensors")
    final_split = load_file(split / "final" / "adapter_model.safetensors")
    assert final_full.keys() == final_split.keys()
    for key in final_full:
        assert torch.equal(final_full[key], final_split[key]), key


def test_the_first_run_generates_its_data_and_trains_with_dataloader_workers(tmp_path):
    """The new user's first run: empty output folder, synthetic videos generated by the training process itself, two
    DataLoader worker processes. Generating 320x240 frames starts OpenCV's thread pool in the training process; with
    many cores (8 here, set through OpenCV's own variable) a worker forked from it crashed or deadlocked in its init."""
    output = tmp_path / "first-run"
    result = launch(
        synthetic_run_args(
            output,
            tmp_path / "cache",
            2,
            1,
            "--synthetic_sequence_length",
            "6",
            "--samples_per_epoch",
            "16",
            "--global_batch_size",
            "8",
            "--num_train_epochs",
            "1",
            "--val_pairs",
            "8",
            "--validation_steps",
            "2",
            "--tracking_eval_sequences",
            "0",
            "--checkpointing_steps",
            "2",
            "--dataloader_num_workers",
            "2",
            "--report_to",
            "none",
        ),
        timeout=360,
        env_overrides={"OPENCV_FOR_THREADS_NUM": "8", "OMP_NUM_THREADS": "8"},
    )
    assert "Writing synthetic generic sequences" in result.stderr  # the data really was generated by this run
    assert len([p for p in (output / "synthetic_data" / "train").iterdir() if p.is_dir()]) == 2
    metrics = read_metrics(output)
    assert [m["step"] for m in metrics if "loss" in m] == [2]
    assert any("val_loss" in m for m in metrics)  # the validation loader's workers too
    assert (output / "final" / "adapter_model.safetensors").is_file()


def test_a_new_run_refuses_a_folder_holding_another_run(tmp_path):
    from accelerate import PartialState

    from lorat_hf.training import TrainingSetupError, run_folder

    PartialState(cpu=True)  # the run folder checks log through accelerate's logger
    accelerator = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)
    (tmp_path / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (tmp_path / "train_config.json").write_text("{}")
    (tmp_path / "my_notes.txt").write_text("keep me")
    with pytest.raises(TrainingSetupError, match="--resume_from_checkpoint latest"):
        run_folder.check_output_dir(tmp_path, resuming=False, overwrite=False, accelerator=accelerator)
    run_folder.check_output_dir(tmp_path, resuming=True, overwrite=False, accelerator=accelerator)  # resuming is fine
    run_folder.check_output_dir(tmp_path, resuming=False, overwrite=True, accelerator=accelerator)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_notes.txt"]  # only the run's own artifacts removed


def run_train_script(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    """`python examples/train.py ...` (one process, no launcher): its own output and exit status, unwrapped."""
    env = offline_env(ACCELERATE_USE_CPU="true")
    return run_in_process_group([sys.executable, str(TRAIN_SCRIPT), *args], cwd=REPO, env=env, timeout=timeout)


def test_a_run_stopped_before_its_first_checkpoint_restarts_with_latest_and_refusals_are_one_line(
    generic_data, tmp_path
):
    """The refusal's advice (`--resume_from_checkpoint latest`) must work when there is no checkpoint to resume."""
    output = tmp_path / "stopped-early"
    (output / "logs").mkdir(parents=True)
    (output / "train_config.json").write_text("{}")
    (output / "logs" / "train_metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 99.0}) + "\n")
    (output / "checkpoints" / "checkpoint-2").mkdir(parents=True)  # killed while writing its first checkpoint

    refused = run_train_script(tiny_args(generic_data, output, "--max_train_steps", "2"))
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    error_lines = [line for line in refused.stderr.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1 and error_lines[0].startswith("train.py: error: ")
    assert "already holds a training run" in error_lines[0] and "--resume_from_checkpoint latest" in error_lines[0]

    resumed = run_train_script(
        tiny_args(generic_data, output, "--max_train_steps", "2", "--resume_from_checkpoint", "latest")
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "starting from step 0" in resumed.stderr
    assert [m["step"] for m in read_metrics(output) if "loss" in m] == [1, 2]  # the stale line is gone
    assert all(m["loss"] != 99.0 for m in read_metrics(output) if "loss" in m)
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["checkpoint-2"]
    assert (output / "checkpoints" / "checkpoint-2" / "checkpoint_complete.json").is_file()


# ----------------------------------------------------------------------------------------------------------------
# Recipes and accelerate configs
# ----------------------------------------------------------------------------------------------------------------

RECIPES = sorted(p.name for p in CONFIGS.glob("*.yaml"))
# recipes on synthetic videos with a small random backbone (no official variant behind them)
SYNTHETIC_RECIPES = ("tiny-synthetic.yaml", "demo-tracker.yaml")


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_parses_and_builds_its_model_on_the_meta_device(recipe):
    from lorat_hf import count_parameters
    from lorat_hf.training import build_tracker, parse_train_args, tracker_config_from_args

    config = parse_train_args(["--config", str(CONFIGS / recipe)])
    tracker_config = tracker_config_from_args(config.model, config.peft)
    with torch.device("meta"):
        model = build_tracker(tracker_config, config.peft)
    total, trainable = count_parameters(model)
    assert 0 < trainable <= total
    if config.peft.full_finetune:
        assert trainable == total
        if recipe.startswith("baseline-"):  # the paper's full fine-tuning baselines
            assert config.peft.layer_decay is not None and config.training.max_grad_norm == 0.1
    else:
        assert trainable < total  # the DINOv2 weights stay frozen
        if recipe not in SYNTHETIC_RECIPES:
            assert trainable < total / 4
    if config.model.search_area_factor is not None:  # a recipe's crop context reaches the model and its processor
        assert tracker_config.search_area_factor == config.model.search_area_factor
    if recipe == "B-224.yaml":  # the official numbers (lorat-spec 3)
        assert (total, trainable) == (98_708_741, 12_985_349)
        assert (config.training.global_batch_size, config.training.num_train_epochs) == (128, 170)
        assert config.data.train_datasets == ["lasot:train", "trackingnet:train", "coco:train", "got10k:vot_train"]
    if recipe == "g-378.yaml":
        assert (total, trainable) == (1_215_727_621, 80_234_501)
    if recipe.startswith("got10k-"):
        assert config.data.train_datasets == ["got10k:train"] and config.training.num_train_epochs == 100
    if recipe != "_official.yaml" and recipe not in SYNTHETIC_RECIPES:
        assert config.model.variant in recipe


@pytest.mark.parametrize("name", sorted(p.name for p in ACCELERATE_CONFIGS.glob("*.yaml")))
def test_accelerate_configs_load_with_accelerate(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = ACCELERATE_CONFIGS / name
    config = load_config_from_file(str(path))
    assert config.num_processes >= 1 and 128 % config.num_processes == 0
    assert yaml.safe_load(path.read_text())  # and it is plain YAML
    assert path.read_text().startswith("#")  # every config says when to use it


def test_make_train_demo_command_trains_the_tiny_recipe_to_a_loadable_tracker(tmp_path):
    """`accelerate launch --num_processes 1 --cpu examples/train.py --config tiny-synthetic.yaml` (shortened)."""
    output = tmp_path / "tiny"
    launch(
        synthetic_run_args(
            output,
            tmp_path / "cache",
            3,
            2,
            "--synthetic_frame_size",
            "128",
            "96",
            "--synthetic_sequence_length",
            "12",
            "--samples_per_epoch",
            "32",
            "--global_batch_size",
            "8",
            "--num_train_epochs",
            "3",
            "--learning_rate",
            "5e-3",
            "--warmup_epochs",
            "0.5",  # a few steps must be enough to see the loss fall
            "--val_pairs",
            "8",
            "--validation_steps",
            "12",
            "--tracking_eval_steps",
            "12",
            "--tracking_eval_sequences",
            "2",
            "--checkpointing_steps",
            "6",
            "--logging_steps",
            "1",
            "--dataloader_num_workers",
            "0",  # report_to stays the recipe's tensorboard
        )
    )
    assert list((output / "logs").rglob("events.out.tfevents.*"))  # the TensorBoard tracker wrote its events
    metrics = read_metrics(output)
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:2]) / 2  # the loss falls
    final = [m for m in metrics if m["step"] == 12]
    assert any("val_loss" in m for m in final)
    tracking = next(m for m in final if "track_success_auc" in m)
    assert tracking["track_num_sequences"] == 2 and 0 <= tracking["track_success_auc"] <= 100
    run_config = json.loads((output / "train_config.json").read_text())
    assert run_config["accelerate"]["distributed_type"] == "DistributedType.NO"
    assert run_config["arguments"]["model"]["random_backbone"] is True

    # final/ is a trainable-only adapter over the saved random backbone; it loads and tracks.
    from lorat_hf import load_tracker_model
    from lorat_hf.data.synthetic import SyntheticVideoConfig, generate_sequence
    from lorat_hf.tracking import LoraTracker

    exported = load_file(output / "final" / "adapter_model.safetensors")
    assert exported and all(  # trainable tensors only: no frozen DINOv2 weight is exported
        ".lora_" in key or "tracker_head" in key or "token_type_embeddings" in key for key in exported
    )
    model = load_tracker_model(output / "final")
    assert model.peft_config["default"].r == 64
    tracker = LoraTracker.from_pretrained(output / "final")
    video = generate_sequence(SyntheticVideoConfig(frame_size=(128, 96), num_frames=3), seed=123)
    tracker.init(video.frames[0], video.boxes_xyxy[0], box_format="xyxy")
    box, score = tracker.track(video.frames[1])
    assert box.shape == (4,) and 0.0 <= score <= 1.0
    checkpoints = sorted(p.name for p in (output / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-12", "checkpoint-6"]
    assert load_tracker_model(output / "checkpoints" / "checkpoint-6" / "adapter") is not None


def test_lorat_train_command_runs_the_same_loop_as_the_example_script(generic_data, tmp_path):
    """The installed `lorat-train` (one process, no launcher) gives the losses of `accelerate launch
    examples/train.py`, and an unknown model family is refused before anything is built."""
    args = ["--num_train_epochs", "1", "--validation_steps", "2"]
    launch(tiny_args(generic_data, tmp_path / "script", *args))
    env = offline_env(ACCELERATE_USE_CPU="true")
    command = [str(Path(sys.executable).parent / "lorat-train"), *tiny_args(generic_data, tmp_path / "command", *args)]
    result = run_in_process_group(command, cwd=tmp_path, env=env, timeout=420)
    assert result.returncode == 0, result.stderr[-6000:]
    script, installed = read_metrics(tmp_path / "script"), read_metrics(tmp_path / "command")
    assert [m["step"] for m in installed] == [1, 2, 2] and "val_loss" in installed[-1]
    assert installed == script
    assert (tmp_path / "command" / "final" / "adapter_model.safetensors").is_file()

    refused = run_in_process_group(
        [command[0], "--config", str(CONFIGS / "tiny-synthetic.yaml"), "--model_type", "lorat_v9"],
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "lorat-train: error: model_type='lorat_v9' is not valid" in refused.stderr
    assert not (tmp_path / "outputs").exists()
