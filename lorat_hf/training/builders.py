"""Building the model a recipe describes: tracker config, (random or pretrained) backbone, peft or full fine-tuning.

The model family is a dispatch point: `model_type: loratv2` builds a `Loratv2Model` with one LoRA adapter per stream
(`lorat_hf.adapters_loratv2`); its phase 2 starts from the phase-1 run's exported folder, whose streams are loaded
frozen, and trains only the new search region's stream."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, PreTrainedConfig

from ..adapters import add_adapters
from ..adapters_loratv2 import add_stream_adapters, load_stream_adapters, stream_adapter_folders
from ..configuration_lora_tracker import LoraTrackerConfig
from ..configuration_loratv2 import Loratv2Config
from ..file_utils import staged_directory
from ..modeling_lora_tracker import LoraTrackerModel
from ..modeling_loratv2 import Loratv2Model
from .arguments import ModelArguments, PeftArguments

logger = logging.getLogger(__name__)

BACKBONE_DIRNAME = "backbone"


def tracker_config_from_args(
    model_args: ModelArguments, peft_args: PeftArguments, phase1_config: Loratv2Config | None = None
) -> LoraTrackerConfig | Loratv2Config:
    """The tracker config of a recipe: the variant preset, sizes, DINOv2 overrides and the LoRA fields.

    LoRATv2 phase 2 extends `phase1_config` (the phase-1 folder's config, see `read_phase1_config`) when given: same
    backbone, template and first region, plus the variant's new region; without it, the variant preset.
    """
    if model_args.is_loratv2:
        return _loratv2_config_from_args(model_args, peft_args, phase1_config)
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


def _check_loratv2_peft(peft_args: PeftArguments) -> None:
    if peft_args.full_finetune or peft_args.peft_method != "lora" or peft_args.target_module_names() is not None:
        raise ValueError(
            "LoRATv2 trains one LoRA expert per stream on every Linear layer: use peft_method lora with "
            "lora_target_modules all (full_finetune, dora, rslora, ia3 and partial targets are LoRAT options)."
        )


def _loratv2_config_from_args(
    model_args: ModelArguments, peft_args: PeftArguments, phase1_config: Loratv2Config | None
) -> Loratv2Config:
    _check_loratv2_peft(peft_args)
    lora = dict(
        lora_r=peft_args.lora_r,
        lora_alpha=peft_args.lora_alpha,
        lora_dropout=peft_args.lora_dropout,
        lora_init=peft_args.lora_init,
    )
    if model_args.initializer_range is not None:
        lora["initializer_range"] = model_args.initializer_range
    preset = Loratv2Config.from_variant(model_args.variant)
    if phase1_config is not None:
        config = _phase2_config(model_args, preset, phase1_config, lora)
    else:
        overrides: dict = dict(lora)
        if model_args.template_size is not None:
            overrides["template_size"] = model_args.template_size
        if model_args.search_sizes is not None:
            overrides["search_sizes"] = list(model_args.search_sizes)
        if model_args.backbone_name_or_path is not None:
            overrides["backbone_name_or_path"] = model_args.backbone_name_or_path
        config = Loratv2Config.from_variant(
            model_args.variant, dinov2_overrides=dict(model_args.dinov2_overrides or {}), **overrides
        )
    config._attn_implementation = model_args.attn_implementation
    config.dinov2_config._attn_implementation = model_args.attn_implementation
    if model_args.random_backbone and phase1_config is None:
        config.backbone_name_or_path = None
    return config


def _phase2_config(
    model_args: ModelArguments, preset: Loratv2Config, phase1: Loratv2Config, lora: dict
) -> Loratv2Config:
    """Phase 1's geometry and backbone plus the variant's new (tracked) region; only that region's stream trains."""
    if phase1.num_search_regions != preset.num_search_regions - 1:
        raise ValueError(
            f"{model_args.variant} adds one search region to a phase-1 model, but the phase-1 folder "
            f"{model_args.phase1_model_path} has {phase1.num_search_regions} search regions."
        )
    new_size = preset.search_sizes[-1] if model_args.search_sizes is None else model_args.search_sizes[-1]
    if model_args.search_sizes is not None and [
        list(s) if isinstance(s, (list, tuple)) else s for s in model_args.search_sizes[:-1]
    ] != list(phase1.search_sizes):
        raise ValueError(
            f"search_sizes {model_args.search_sizes} must start with the phase-1 model's {phase1.search_sizes}: "
            "phase 2 keeps its regions and adds one."
        )
    for name, value in lora.items():
        if name != "initializer_range" and getattr(phase1, name) != value:
            raise ValueError(
                f"{name}={value} differs from the phase-1 model's {getattr(phase1, name)}: every stream of one "
                "LoRATv2 model shares the LoRA settings. Use the phase-1 values."
            )
    return Loratv2Config(
        dinov2_config=phase1.dinov2_config.to_dict(),
        backbone_name_or_path=model_args.backbone_name_or_path or phase1.backbone_name_or_path,
        variant=model_args.variant,
        template_size=phase1.template_size,
        template_area_factor=phase1.template_area_factor,
        search_sizes=[*phase1.search_sizes, new_size],
        search_area_factors=[*phase1.search_area_factors, preset.search_area_factors[-1]],
        trainable_streams=[preset.stream_names[-1]],
        head_num_layers=phase1.head_num_layers,
        head_hidden_size=phase1.head_hidden_size,
        window_penalty=preset.window_penalty,
        min_object_size=phase1.min_object_size,
        reference_update_threshold=preset.reference_update_threshold,
        **lora,
    )


def read_phase1_config(path: str | os.PathLike) -> Loratv2Config:
    """The config of a LoRATv2 phase-1 export (`<run>/final`), with a clear error for anything else."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"phase1_model_path {str(path)!r} holds no exported model (config.json); train phase 1 first "
            "(e.g. examples/configs/loratv2/p1-B-224.yaml) and point at its <output_dir>/final folder."
        )
    config = AutoConfig.from_pretrained(str(folder))
    if not isinstance(config, Loratv2Config) or config.num_search_regions != 1:
        raise ValueError(f"{path} is not a LoRATv2 phase-1 model (one search region); phase 2 starts from one.")
    if sorted(stream_adapter_folders(folder)) != sorted(config.stream_names):
        raise ValueError(
            f"{path} lacks stream adapters ({config.stream_names}); phase 2 needs the exported adapter folder of a "
            "phase-1 run (not a merged model)."
        )
    return config


def ensure_random_backbone(folder: str | os.PathLike, dinov2_config: PreTrainedConfig, seed: int) -> Path:
    """A randomly initialised DINOv2 (with registers for a LoRATv2 config) saved at `folder` (created once, atomically;
    reused when present).

    Saving it lets adapter exports name their backbone (`config.backbone_name_or_path`) so that they load.
    Call on the main process only (then `wait_for_everyone`).
    """
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    with staged_directory(folder) as staging:
        generator_state = torch.get_rng_state()
        torch.manual_seed(seed)
        backbone = AutoModel.from_config(dinov2_config)
        torch.set_rng_state(generator_state)
        backbone.save_pretrained(staging)
    logger.warning("Created a RANDOMLY initialised DINOv2 backbone at %s (no pretrained weights).", folder)
    return folder


def build_tracker(
    config: LoraTrackerConfig | Loratv2Config,
    peft_args: PeftArguments,
    backbone_name_or_path: str | os.PathLike | None = None,
    phase1_model_path: str | os.PathLike | None = None,
    **hub_kwargs,
) -> torch.nn.Module:
    """The model to train: a `PeftModel` (adapters on the frozen tracker) or, with `full_finetune`, the tracker with
    every parameter trainable (position table included, as in the official baseline).

    `backbone_name_or_path=None` builds every weight randomly (e.g. under `torch.device("meta")` to inspect a recipe).
    LoRATv2: one adapter per stream; with `phase1_model_path` (phase 2) the phase-1 streams are loaded from that
    folder, frozen, and only the new region's stream is added and trains.
    """
    if isinstance(config, Loratv2Config):
        return _build_loratv2(config, peft_args, backbone_name_or_path, phase1_model_path, **hub_kwargs)
    if backbone_name_or_path is None:
        model = LoraTrackerModel(config)
    else:
        model = LoraTrackerModel.from_backbone(str(backbone_name_or_path), config=config, **hub_kwargs)
        model.config._name_or_path = str(backbone_name_or_path)  # peft records it as base_model_name_or_path
    if peft_args.full_finetune:
        model.requires_grad_(True)
        return model
    return add_adapters(model, peft_args.peft_method)


def _build_loratv2(
    config: Loratv2Config,
    peft_args: PeftArguments,
    backbone_name_or_path: str | os.PathLike | None,
    phase1_model_path: str | os.PathLike | None,
    **hub_kwargs,
) -> torch.nn.Module:
    _check_loratv2_peft(peft_args)
    if backbone_name_or_path is None:
        model = Loratv2Model(config)
    else:
        model = Loratv2Model.from_backbone(str(backbone_name_or_path), config=config, **hub_kwargs)
        model.config._name_or_path = str(backbone_name_or_path)
    if phase1_model_path is None:
        return add_stream_adapters(model)
    folders = stream_adapter_folders(phase1_model_path)
    model = load_stream_adapters(model, folders, trainable_streams=[])
    new_streams = [stream for stream in config.stream_names if stream not in folders]
    return add_stream_adapters(model, streams=new_streams)


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each Dinov2 layer in backward (non-reentrant), on a `LoraTrackerModel` (unwrap peft first)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


__all__ = [
    "BACKBONE_DIRNAME",
    "tracker_config_from_args",
    "read_phase1_config",
    "ensure_random_backbone",
    "build_tracker",
    "enable_activation_checkpointing",
]
