"""The run folder of a training run: refusing to overwrite another run, the effective configuration
(`train_config.json`), the experiment-tracker hyper-parameters and the metrics log (`logs/train_metrics.jsonl`)."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
from accelerate import Accelerator
from accelerate.logging import get_logger

from .. import __version__
from ..adapters import count_parameters
from ..file_utils import write_text_atomic
from .arguments import TrainConfig
from .builders import BACKBONE_DIRNAME
from .checkpointing import CHECKPOINTS_DIRNAME, FINAL_DIRNAME, TRAIN_CONFIG_NAME
from .errors import TrainingSetupError
from .precision import parameter_dtypes

logger = get_logger(__name__, log_level="INFO")

METRICS_FILE = "train_metrics.jsonl"
RUN_ARTIFACTS = (CHECKPOINTS_DIRNAME, FINAL_DIRNAME, TRAIN_CONFIG_NAME, BACKBONE_DIRNAME, "logs", "sample_ids")


def check_output_dir(output_dir: Path, resuming: bool, overwrite: bool, accelerator: Accelerator) -> None:
    """Refuse to start a new run on top of another one unless `--overwrite_output_dir` (then clear our artifacts).

    `resuming`: `--resume_from_checkpoint` was given; with no complete checkpoint the run restarts from step 0 here.
    """
    existing = [name for name in RUN_ARTIFACTS if (output_dir / name).exists()]
    if not existing or resuming:
        return
    if not overwrite:
        raise TrainingSetupError(
            f"{output_dir} already holds a training run ({', '.join(existing)}). Continue it with "
            "--resume_from_checkpoint latest (from step 0 if it stopped before its first checkpoint), choose another "
            "--output_dir, or pass --overwrite_output_dir to replace its checkpoints, final/ export and logs."
        )
    if accelerator.is_main_process:
        import shutil

        logger.warning(f"--overwrite_output_dir: removing {', '.join(existing)} from {output_dir}")
        for name in existing:
            path = output_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    accelerator.wait_for_everyone()


def check_trackers(report_to: str) -> None:
    """accelerate silently drops a tracker whose package is missing: say so instead."""
    import importlib.util

    wanted = {"all": ("tensorboard", "wandb"), "none": ()}.get(report_to, (report_to,))
    for name in wanted:
        if importlib.util.find_spec(name) is None:
            raise TrainingSetupError(
                f"--report_to {report_to} needs the {name} package: pip install {name} (or pass --report_to none)."
            )


def check_gradient_accumulation(accelerator: Accelerator, requested: int) -> None:
    """Refuse a run whose accumulation was silently changed by the environment or a DeepSpeed config: the global
    batch (and so the official recipe) would no longer be what the recipe says."""
    effective = accelerator.gradient_accumulation_steps
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None and isinstance(plugin.deepspeed_config.get("gradient_accumulation_steps"), int):
        effective = plugin.deepspeed_config["gradient_accumulation_steps"]
    if effective != requested:
        raise TrainingSetupError(
            f"The recipe asks for gradient_accumulation_steps={requested} but accelerate uses {effective} (set by "
            "ACCELERATE_GRADIENT_ACCUMULATION_STEPS or the DeepSpeed config). Make them equal: the global batch is "
            "split over processes x accumulation steps."
        )


def effective_config(config: TrainConfig, accelerator: Accelerator, plan, schedule: dict, model) -> dict[str, Any]:
    """train_config.json: the arguments plus what actually ran (accelerate state, batch split, schedule, versions)."""
    import accelerate
    import peft

    total, trainable = count_parameters(model)
    state = accelerator.state
    return {
        "arguments": config.to_dict(),
        "accelerate": {
            "distributed_type": str(state.distributed_type),
            "num_processes": state.num_processes,
            "processes_per_machine": int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes)),
            "mixed_precision": str(state.mixed_precision),
            "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
            "device": str(accelerator.device),
            "dynamo_backend": str(state.dynamo_plugin.backend) if state.dynamo_plugin else None,
        },
        "batch_plan": plan.to_dict(),
        "schedule": schedule,
        "model": {
            "total_parameters": total,
            "trainable_parameters": trainable,
            "parameter_dtypes": parameter_dtypes(model),
        },
        "versions": {
            "lorat_hf": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "accelerate": accelerate.__version__,
            "datasets": datasets.__version__,
            "python": platform.python_version(),
        },
        "command": sys.argv,
    }


def tracker_hparams(config: TrainConfig) -> dict[str, Any]:
    """Flat scalar hyper-parameters for the experiment trackers (TensorBoard accepts scalars and strings only)."""
    flat = {}
    for group, values in config.to_dict().items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[f"{group}/{key}"] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
    return flat


def append_metrics(output_dir: Path, record: dict[str, Any]) -> None:
    with open(output_dir / "logs" / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def truncate_metrics(output_dir: Path, last_step: int) -> None:
    """On resume, drop metric lines written after the checkpoint by the interrupted run."""
    path = output_dir / "logs" / METRICS_FILE
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and json.loads(line)["step"] <= last_step
    ]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


__all__ = [
    "METRICS_FILE",
    "RUN_ARTIFACTS",
    "check_output_dir",
    "check_trackers",
    "check_gradient_accumulation",
    "effective_config",
    "tracker_hparams",
    "append_metrics",
    "truncate_metrics",
]
