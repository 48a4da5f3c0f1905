"""Building the model a recipe describes: tracker config, (random or pretrained) backbone, peft or full fine-tuning."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import Dinov2Config, Dinov2Model

from ..adapters import add_adapters
from ..configuration_lora_tracker import LoraTrackerConfig
from ..file_utils import staged_directory
from ..modeling_lora_tracker import LoraTrackerModel
from .arguments import ModelArguments, PeftArguments

logger = logging.getLogger(__name__)

BACKBONE_DIRNAME = "backbone"


def tracker_config_from_args(model_args: ModelArguments, peft_args: PeftArguments) -> LoraTrackerConfig:
    """The `LoraTrackerConfig` of a recipe: the variant preset, sizes, DINOv2 overrides and the LoRA fields."""
    overrides: dict = {}
    if model_args.template_size is not None:
        overrides["template_size"] = model_args.template_size
    if model_args.search_size is not None:
        overrides["search_size"] = model_args.search_size
    if model_args.search_area_factor is not None:
        overrides["search_area_factor"] = model_args.search_area_factor
    if model_args.backbone_name_or_path is not None:
        overrides["backbone_name_or_path"] = model_args.backbone_name_or_path
    if model_args.initializer_range is not None:
        overrides["initializer_range"] = model_args.initializer_range
    config = LoraTrackerConfig.from_variant(
        model_args.variant,
        dinov2_overrides=dict(model_args.dinov2_overrides or {}),
        lora_r=peft_args.lora_r,
        lora_alpha=peft_args.lora_alpha,
        lora_dropout=peft_args.lora_dropout,
        use_rslora=peft_args.peft_method == "rslora",
        lora_target_modules=peft_args.target_module_names(),
        lora_init=peft_args.lora_init,
        **overrides,
    )
    config._attn_implementation = model_args.attn_implementation
    config.dinov2_config._attn_implementation = model_args.attn_implementation
    if model_args.random_backbone:
        config.backbone_name_or_path = None
    return config


def ensure_random_backbone(folder: str | os.PathLike, dinov2_config: Dinov2Config, seed: int) -> Path:
    """A randomly initialised DINOv2 saved at `folder` (created once, atomically; reused when present).

    Saving it lets adapter exports name their backbone (`config.backbone_name_or_path`) so that they load.
    Call on the main process only (then `wait_for_everyone`).
    """
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    with staged_directory(folder) as staging:
        generator_state = torch.get_rng_state()
        torch.manual_seed(seed)
        backbone = Dinov2Model(dinov2_config)
        torch.set_rng_state(generator_state)
        backbone.save_pretrained(staging)
    logger.warning("Created a RANDOMLY initialised DINOv2 backbone at %s (no pretrained weights).", folder)
    return folder


def build_tracker(
    config: LoraTrackerConfig,
    peft_args: PeftArguments,
    backbone_name_or_path: str | os.PathLike | None = None,
    **hub_kwargs,
) -> torch.nn.Module:
    """The model to train: a `PeftModel` (adapters on the frozen tracker) or, with `full_finetune`, the tracker with
    every parameter trainable (position table included, as in the official baseline).

    `backbone_name_or_path=None` builds every weight randomly (e.g. under `torch.device("meta")` to inspect a recipe).
    """
    if backbone_name_or_path is None:
        model = LoraTrackerModel(config)
    else:
        model = LoraTrackerModel.from_backbone(str(backbone_name_or_path), config=config, **hub_kwargs)
        model.config._name_or_path = str(backbone_name_or_path)  # peft records it as base_model_name_or_path
    if peft_args.full_finetune:
        model.requires_grad_(True)
        return model
    return add_adapters(model, peft_args.peft_method)


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each Dinov2 layer in backward (non-reentrant), on a `LoraTrackerModel` (unwrap peft first)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


__all__ = [
    "BACKBONE_DIRNAME",
    "tracker_config_from_args",
    "ensure_random_backbone",
    "build_tracker",
    "enable_activation_checkpointing",
]
