"""What the training loop needs from a model family, looked up by the recipe's `model_type`.

The loop (`lorat_hf.training.loop`) is the same for every family; a `TrainingFamily` provides the parts that differ:
the model config and model built from the recipe, the image processor, the training-sample dataset, the batch ->
forward/loss step, and the export of a trained model. LoRAT's is `LoraTrackerTraining`; register another with
`register_training_family`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .arguments import ModelArguments, PeftArguments


class TrainingFamily:
    """The family-specific parts of training. Subclass it for a new model family."""

    model_type: str

    def model_config(self, model_args: ModelArguments, peft_args: PeftArguments):
        """The model config a recipe describes."""
        raise NotImplementedError

    def default_backbone(self, model_config) -> str | None:
        """The pretrained backbone (Hub id or folder) the config names."""
        return getattr(model_config, "backbone_name_or_path", None)

    def uses_random_backbone(self, model_args: ModelArguments) -> bool:
        """Whether the run builds (and saves) a random backbone instead of loading a pretrained one."""
        return model_args.random_backbone

    def write_random_backbone(self, folder: str | os.PathLike, model_config, seed: int) -> Path:
        """Save a randomly initialised backbone at `folder` (main process only; reused when present)."""
        raise NotImplementedError

    def build_model(
        self, model_config, model_args: ModelArguments, peft_args: PeftArguments, backbone: str | os.PathLike | None
    ) -> nn.Module:
        """The model to train (adapters on a frozen model, or a fully trainable one)."""
        raise NotImplementedError

    def image_processor(self, model_config):
        """The image processor matching the model config (crops for the dataset, saved with every export)."""
        raise NotImplementedError

    def training_dataset(self, model_config, tables: list, image_processor, **kwargs: Any) -> torch.utils.data.Dataset:
        """The training / validation sample dataset over sequence tables (`TrackingPairDataset` keyword arguments)."""
        raise NotImplementedError

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        """One batch -> an output with `loss` and `loss_dict` (`cls_loss`, `reg_loss`)."""
        return model(**batch)

    def export(self, model: nn.Module, folder: Path, image_processor, run_config: dict, state_dict=None) -> Path:
        """A loadable folder of the trained model (called on the main process)."""
        from .checkpointing import export_trained_model

        return export_trained_model(model, folder, image_processor, run_config, state_dict)


class LoraTrackerTraining(TrainingFamily):
    """LoRAT: `LoraTrackerConfig` from the variant preset, `TrackingPairDataset` pairs, `LoraTrackerModel.forward`.

    The builders (`lorat_hf.training.builders`) and `lorat_hf.data.pairs.training_dataset_for` dispatch on the recipe /
    model config themselves, so LoRATv2 (`Loratv2Training`) reuses these methods and changes only what differs.
    """

    model_type = "lorat"

    def model_config(self, model_args: ModelArguments, peft_args: PeftArguments):
        from .builders import read_phase1_config, tracker_config_from_args

        # LoRATv2 phase 2 continues a phase-1 export: its backbone, geometry and frozen streams
        phase1_config = read_phase1_config(model_args.phase1_model_path) if model_args.is_phase_2 else None
        return tracker_config_from_args(model_args, peft_args, phase1_config)

    def write_random_backbone(self, folder: str | os.PathLike, model_config, seed: int) -> Path:
        from .builders import ensure_random_backbone

        return ensure_random_backbone(folder, model_config.dinov2_config, seed)

    def build_model(
        self, model_config, model_args: ModelArguments, peft_args: PeftArguments, backbone: str | os.PathLike | None
    ) -> nn.Module:
        from .builders import build_tracker

        return build_tracker(model_config, peft_args, backbone, model_args.phase1_model_path)

    def image_processor(self, model_config):
        from ..image_processing_lora_tracker import LoraTrackerImageProcessor

        return LoraTrackerImageProcessor.from_tracker_config(model_config)

    def training_dataset(self, model_config, tables: list, image_processor, **kwargs: Any) -> torch.utils.data.Dataset:
        from ..data.pairs import training_dataset_for

        return training_dataset_for(model_config, tables, image_processor, **kwargs)


class Loratv2Training(LoraTrackerTraining):
    """LoRATv2: one LoRA expert per stream, tuplets of search regions; phase 2 starts from a phase-1 export (whose
    backbone it reuses: no random backbone is written then)."""

    model_type = "loratv2"

    def uses_random_backbone(self, model_args: ModelArguments) -> bool:
        return model_args.random_backbone and not model_args.is_phase_2


_FAMILIES: dict[str, TrainingFamily] = {"lorat": LoraTrackerTraining(), "loratv2": Loratv2Training()}


def register_training_family(family: TrainingFamily) -> None:
    """Make recipes with `model_type: <family.model_type>` train with `family`."""
    _FAMILIES[family.model_type] = family


def training_family(model_type: str) -> TrainingFamily:
    """The registered family of a recipe's `model_type` (a clear error for an unknown one)."""
    try:
        return _FAMILIES[model_type]
    except KeyError:
        raise ValueError(
            f"model_type={model_type!r} has no training support; choose one of {sorted(_FAMILIES)}."
        ) from None


__all__ = ["TrainingFamily", "LoraTrackerTraining", "Loratv2Training", "register_training_family", "training_family"]
