"""Resumable checkpoints, their completeness marker and rotation, and loadable trainable-only exports.

Layout of a run folder::

    <output_dir>/
        train_config.json                     effective configuration (arguments + accelerate state + versions)
        checkpoints/checkpoint-<step>/
            trainable_model.safetensors       trainable weights only (LoRA, head, token types; not the frozen DINOv2)
            optimizer.bin, scaler.pt, random_states_<rank>.pkl, custom_checkpoint_<i>.pkl   (accelerate)
            training_state.json               global step, epoch, position in the epoch
            adapter/                          loadable export: adapter_config.json, adapter_model.safetensors,
                                              config.json, preprocessor_config.json, train_config.json
            checkpoint_complete.json          written LAST: the step and every file with its size
        final/                                the same loadable export at the end of training

A checkpoint counts only when `checkpoint_complete.json` exists and every file it lists has the listed size, so a run
killed while saving never leaves a checkpoint that `latest` would pick. The step is read from the marker, never
parsed from the folder name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..file_utils import staged_directory, write_json_atomic
from .errors import TrainingSetupError

logger = logging.getLogger(__name__)

CHECKPOINTS_DIRNAME = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_MARKER_NAME = "checkpoint_complete.json"
TRAINING_STATE_NAME = "training_state.json"
TRAINABLE_WEIGHTS_NAME = "trainable_model.safetensors"
TRAIN_CONFIG_NAME = "train_config.json"
EXPORT_DIRNAME = "adapter"
FINAL_DIRNAME = "final"


# ----------------------------------------------------------------------------------------------------------------
# Completeness marker, listing, resolution, rotation
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint folder; `step` comes from its marker (None when incomplete)."""

    path: Path
    step: int | None

    @property
    def complete(self) -> bool:
        return self.step is not None


def checkpoint_dir(checkpoints_dir: str | os.PathLike, step: int) -> Path:
    """`<checkpoints_dir>/checkpoint-<step>` (the name is for humans; the marker holds the step)."""
    return Path(checkpoints_dir) / f"{CHECKPOINT_PREFIX}{int(step)}"


def _file_sizes(folder: Path) -> dict[str, int]:
    return {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != COMPLETE_MARKER_NAME
    }


def mark_checkpoint_complete(folder: str | os.PathLike, global_step: int, **extra: Any) -> Path:
    """Write the completeness marker (call it LAST, on the main process, after every rank finished writing)."""
    folder = Path(folder)
    marker = {"global_step": int(global_step), "files": _file_sizes(folder), **extra}
    return write_json_atomic(folder / COMPLETE_MARKER_NAME, marker)


def read_checkpoint_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The marker of a complete checkpoint, or None when it is missing, unreadable or a listed file is missing or
    has another size (a partial copy or an interrupted write)."""
    folder = Path(folder)
    try:
        with open(folder / COMPLETE_MARKER_NAME, encoding="utf-8") as handle:
            marker = json.load(handle)
        step = int(marker["global_step"])
        files = dict(marker["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for name, size in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    marker["global_step"] = step
    return marker


def list_checkpoints(checkpoints_dir: str | os.PathLike) -> list[CheckpointInfo]:
    """Every `checkpoint-*` folder: complete ones sorted by step, then incomplete ones (step None) by name."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    infos = []
    for folder in root.iterdir():
        if folder.is_dir() and folder.name.startswith(CHECKPOINT_PREFIX):
            marker = read_checkpoint_marker(folder)
            infos.append(CheckpointInfo(folder, marker["global_step"] if marker else None))
    return sorted(infos, key=lambda info: (not info.complete, info.step or 0, info.path.name))


def latest_checkpoint(checkpoints_dir: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    complete = [info for info in list_checkpoints(checkpoints_dir) if info.complete]
    return complete[-1].path if complete else None


def resolve_checkpoint(spec: str, checkpoints_dir: str | os.PathLike) -> Path | None:
    """`"latest"` -> the newest complete checkpoint (None when there is none); a path -> that checkpoint.

    Raises `TrainingSetupError` for a missing or incomplete folder.
    """
    if spec == "latest":
        found = latest_checkpoint(checkpoints_dir)
        incomplete = [info.path.name for info in list_checkpoints(checkpoints_dir) if not info.complete]
        if incomplete:
            logger.warning("Ignoring incomplete checkpoints (interrupted while saving): %s", ", ".join(incomplete))
        return found
    folder = Path(spec)
    if not folder.is_dir():
        raise TrainingSetupError(
            f"Checkpoint {spec!r} does not exist. Pass 'latest' or a checkpoints/checkpoint-<step> folder."
        )
    if read_checkpoint_marker(folder) is None:
        raise TrainingSetupError(
            f"Checkpoint {spec!r} is incomplete: {COMPLETE_MARKER_NAME} is missing or does not match the files (the "
            "run was probably stopped while saving). Resume from 'latest' or an older checkpoint."
        )
    return folder


def prepare_checkpoint_dir(folder: str | os.PathLike) -> Path:
    """Clear a leftover folder with the same name (an interrupted save, or a step being redone after a resume)."""
    folder = Path(folder)
    if folder.exists():
        logger.warning("Replacing existing checkpoint folder %s", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def rotate_checkpoints(checkpoints_dir: str | os.PathLike, total_limit: int | None) -> list[Path]:
    """Keep the newest `total_limit` complete checkpoints; delete older ones and stale incomplete folders.

    Call on the main process after the newest checkpoint was marked complete. Returns the deleted folders.
    """
    infos = list_checkpoints(checkpoints_dir)
    complete = [info for info in infos if info.complete]
    doomed = [info.path for info in infos if not info.complete]
    if total_limit is not None and len(complete) > total_limit:
        doomed += [info.path for info in complete[: len(complete) - total_limit]]
    for folder in doomed:
        logger.info("Removing checkpoint %s", folder)
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


# ----------------------------------------------------------------------------------------------------------------
# Trainable-only weights (what accelerate's save/load hooks store instead of the whole model)
# ----------------------------------------------------------------------------------------------------------------


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """`{name: tensor}` of the parameters that require grad (shared parameters once), detached."""
    return {name: parameter.detach() for name, parameter in model.named_parameters() if parameter.requires_grad}


def save_trainable_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save the trainable parameters to a safetensors file (atomically)."""
    path = Path(path)
    tensors = {name: tensor.cpu().contiguous() for name, tensor in trainable_state_dict(model).items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, tmp, metadata={"format": "pt", "content": "trainable parameters only"})
    os.replace(tmp, path)
    return path


@torch.no_grad()
def load_trainable_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load `save_trainable_weights` output into `model` (dtype and device of the model's parameters are kept).

    Raises `ValueError` when the file's names differ from the model's trainable parameters (a checkpoint from another
    configuration: peft method, rank, target modules or full fine-tuning).
    """
    tensors = load_file(str(path))
    parameters = dict(model.named_parameters())
    expected = {name for name, parameter in parameters.items() if parameter.requires_grad}
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match the model's trainable parameters (missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}). The checkpoint was written by a run "
            "with another peft method, rank, target modules or fine-tuning mode."
        )
    for name, tensor in tensors.items():
        target = parameters[name]
        if target.shape != tensor.shape:
            raise ValueError(
                f"{path}: {name} has shape {tuple(tensor.shape)}, the model expects {tuple(target.shape)}."
            )
        target.copy_(tensor.to(device=target.device, dtype=target.dtype))


# ----------------------------------------------------------------------------------------------------------------
# Loadable exports
# ----------------------------------------------------------------------------------------------------------------


def export_trained_model(
    model: nn.Module,
    output_dir: str | os.PathLike,
    image_processor: Any | None = None,
    train_config: dict[str, Any] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a folder that `lorat_hf.adapters.load_tracker_model` loads, atomically (temp folder + rename).

    A `PeftModel` gives an adapter folder (`adapter_config.json`, `adapter_model.safetensors`, tracker `config.json`:
    trainable weights only); a plain `LoraTrackerModel` (full fine-tuning) gives a model folder (`config.json`,
    `model.safetensors`). Both get `preprocessor_config.json` and `train_config.json` when given. An existing
    `output_dir` is replaced only once the new folder is complete. Pass `state_dict` when the weights are sharded
    (FSDP, DeepSpeed ZeRO-3): the full state dict from `accelerator.get_state_dict(model)`, gathered on every rank.
    """
    from peft import PeftModel

    from ..adapters import save_adapter_folder

    model = getattr(model, "_orig_mod", model)  # a torch.compile wrapper saves like the module it wraps
    output_dir = Path(output_dir)
    with staged_directory(output_dir, overwrite=True) as staging:
        extra = {} if state_dict is None else {"state_dict": state_dict}
        if isinstance(model, PeftModel):
            save_adapter_folder(model, staging, **extra)
        else:
            model.save_pretrained(staging, **extra)
        if image_processor is not None:
            image_processor.save_pretrained(staging)
        if train_config is not None:
            write_json_atomic(staging / TRAIN_CONFIG_NAME, train_config)
    return output_dir


__all__ = [
    "CHECKPOINTS_DIRNAME",
    "COMPLETE_MARKER_NAME",
    "TRAINING_STATE_NAME",
    "TRAINABLE_WEIGHTS_NAME",
    "TRAIN_CONFIG_NAME",
    "EXPORT_DIRNAME",
    "FINAL_DIRNAME",
    "CheckpointInfo",
    "write_json_atomic",
    "checkpoint_dir",
    "mark_checkpoint_complete",
    "read_checkpoint_marker",
    "list_checkpoints",
    "latest_checkpoint",
    "resolve_checkpoint",
    "prepare_checkpoint_dir",
    "rotate_checkpoints",
    "trainable_state_dict",
    "save_trainable_weights",
    "load_trainable_weights",
    "export_trained_model",
]
