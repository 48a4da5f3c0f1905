"""Training arguments: five dataclasses parsed by `transformers.HfArgumentParser` from a YAML recipe + CLI overrides.

A recipe is a YAML file with one section per group::

    model:    {variant: B-224}
    peft:     {peft_method: lora, lora_r: 64}
    data:     {train_datasets: [lasot:train, got10k:vot_train], dataset_roots: {lasot: /data/LaSOT, ...}}
    training: {output_dir: outputs/B-224, num_train_epochs: 170}
    hub:      {push_to_hub: false}

A top-level `base: other.yaml` (relative to the recipe) is read first and the recipe's fields override it. Every field
is also a flat command-line flag (`--learning_rate 5e-5`, `--full_finetune`), and the command line wins over the
recipe. Field names are unique across the groups. Dict-valued fields accept JSON on the command line
(`--dataset_roots '{"lasot": "/data/LaSOT"}'`). There is deliberately no token argument: log in with `hf auth login`
or set `HF_TOKEN`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import yaml
from transformers import HfArgumentParser

from ..configuration_lora_tracker import VARIANTS
from ..configuration_loratv2 import LORATV2_VARIANTS

MODEL_TYPES = {"lorat": VARIANTS, "loratv2": LORATV2_VARIANTS}  # model family -> its official variants
PEFT_METHODS = ("lora", "dora", "rslora", "ia3")
MIXED_PRECISION_CHOICES = ("no", "fp16", "bf16")
REPORT_TO_CHOICES = ("tensorboard", "wandb", "all", "none")
# `lora_target_modules` shortcuts: the official set (every Linear of every layer) and the classic q/v-only LoRA.
TARGET_MODULE_PRESETS = {"all": None, "qv": ["q_proj", "v_proj"], "qkvo": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {', '.join(map(str, choices))}.")


def _json_dict(name: str, value: dict | str | None) -> dict:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name} must be a mapping (JSON on the command line), got {value!r}: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a mapping, got {type(value).__name__}.")
    return value


@dataclass
class ModelArguments:
    """Which tracker to build."""

    model_type: str = field(
        default="lorat",
        metadata={"help": "Model family: lorat (LoRAT, ECCV 2024) or loratv2 (the streaming LoRATv2, NeurIPS 2025)."},
    )
    variant: str = field(
        default="B-224",
        metadata={"help": f"Official preset: LoRAT {', '.join(VARIANTS)}; LoRATv2 {', '.join(LORATV2_VARIANTS)}."},
    )
    backbone_name_or_path: str | None = field(
        default=None,
        metadata={"help": "DINOv2 weights (Hub id or local folder). Default: the variant's official DINOv2."},
    )
    random_backbone: bool = field(
        default=False,
        metadata={
            "help": "Build the DINOv2 backbone with RANDOM weights instead of downloading it (smoke tests, the tiny "
            "CPU recipe, benchmarks). It is saved to <output_dir>/backbone so that adapters can name it."
        },
    )
    dinov2_overrides: dict | str | None = field(
        default=None,
        metadata={"help": "DINOv2 config fields to override (only with --random_backbone), e.g. a tiny width."},
    )
    initializer_range: float | None = field(
        default=None,
        metadata={
            "help": "Std of the trunc-normal init of the tracker's new parts (head, token-type embedding); default the "
            "official 0.02. Small random backbones train far faster with ~1/sqrt(width) here and in dinov2_overrides."
        },
    )
    template_size: int | None = field(default=None, metadata={"help": "Template crop px (default: the variant's)."})
    search_size: int | None = field(default=None, metadata={"help": "Search crop px (default: the variant's)."})
    search_sizes: list[int] | None = field(
        default=None,
        metadata={"help": "LoRATv2: crop px of each search region, the tracked one last (default: the variant's)."},
    )
    phase1_model_path: str | None = field(
        default=None,
        metadata={
            "help": "LoRATv2 phase 2: the phase-1 run's exported folder (<output_dir>/final). Its template and first "
            "search-region streams are loaded and frozen; only the new region's stream trains."
        },
    )
    search_area_factor: float | None = field(
        default=None,
        metadata={
            "help": "Search crop context: its side is this factor x sqrt(w h) of the target box, in training crops "
            "and at inference (default: the variant's, 4.0 at 224 px, 5.0 at 378 px)."
        },
    )
    attn_implementation: str = field(
        default="sdpa", metadata={"help": "eager | sdpa | flash_attention_2 | flex_attention."}
    )

    def __post_init__(self):
        _check_choice("model_type", self.model_type, tuple(MODEL_TYPES))
        variants = MODEL_TYPES[self.model_type]
        if self.variant not in variants:
            family = "LoRAT" if self.model_type == "lorat" else "LoRATv2"
            raise ValueError(
                f"variant={self.variant!r} is not an official {family} variant; choose one of {', '.join(variants)}"
                + (" (or set model_type: loratv2)." if self.variant in LORATV2_VARIANTS else ".")
            )
        self._check_loratv2_fields()
        self.dinov2_overrides = _json_dict("dinov2_overrides", self.dinov2_overrides)
        if self.dinov2_overrides and not self.random_backbone:
            raise ValueError(
                "dinov2_overrides changes the backbone's shape, which only makes sense with --random_backbone "
                "(pretrained DINOv2 weights have a fixed shape)."
            )
        if self.initializer_range is not None and self.initializer_range <= 0:
            raise ValueError(f"initializer_range must be positive, got {self.initializer_range}.")
        if self.search_area_factor is not None and self.search_area_factor <= 1:
            raise ValueError(
                f"search_area_factor must be > 1 (the crop must hold the target with context), got {self.search_area_factor}."
            )
        if self.random_backbone and self.backbone_name_or_path:
            raise ValueError(
                "Pass either --backbone_name_or_path (pretrained weights) or --random_backbone, not both."
            )

    @property
    def is_loratv2(self) -> bool:
        return self.model_type == "loratv2"

    @property
    def is_phase_2(self) -> bool:
        """A LoRATv2 phase-2 run: it continues a phase-1 model with one more search region."""
        return self.is_loratv2 and self.variant.startswith("p2-")

    def _check_loratv2_fields(self) -> None:
        if not self.is_loratv2:
            for name in ("search_sizes", "phase1_model_path"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is a LoRATv2 option; set model_type: loratv2 to use it.")
            return
        if self.search_size is not None:
            raise ValueError("LoRATv2 has one crop size per search region: use search_sizes (e.g. [224, 378]).")
        if self.search_area_factor is not None:
            raise ValueError("search_area_factor is a LoRAT option; LoRATv2 variants fix each region's context.")
        if self.is_phase_2 and not self.phase1_model_path:
            raise ValueError(
                f"{self.variant} is a phase-2 variant: it starts from a phase-1 model. Set phase1_model_path to the "
                "phase-1 run's exported folder (e.g. outputs/loratv2-p1-B-224/final)."
            )
        if self.phase1_model_path and not self.is_phase_2:
            raise ValueError(f"phase1_model_path only applies to phase-2 variants (p2-*), not {self.variant}.")


@dataclass
class PeftArguments:
    """What trains: peft adapters (official: LoRA r=64 on every Linear) or the full fine-tuning baseline."""

    full_finetune: bool = field(
        default=False, metadata={"help": "Train every weight (the paper's baseline): no peft, layer-wise lr decay."}
    )
    peft_method: Literal["lora", "dora", "rslora", "ia3"] = field(default="lora", metadata={"help": "peft method."})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=64.0, metadata={"help": "LoRA alpha (scaling alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(
        default="all",
        metadata={
            "help": "all (official: q,k,v,o + MLP) | qv | qkvo | a comma list of Linear names (q_proj,fc1,...)."
        },
    )
    lora_init: Literal["official", "peft"] = field(
        default="official", metadata={"help": "official (A and B trunc-normal 0.02) or peft (B = 0)."}
    )
    layer_decay: float | None = field(
        default=None,
        metadata={
            "help": "Layer-wise lr decay for --full_finetune (official: 0.7 B, 0.8 L, 0.9 g); ignored for peft."
        },
    )

    def __post_init__(self):
        _check_choice("peft_method", self.peft_method, PEFT_METHODS)
        _check_choice("lora_init", self.lora_init, ("official", "peft"))
        if self.lora_r <= 0:
            raise ValueError(f"lora_r must be positive, got {self.lora_r}.")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}.")
        if self.layer_decay is not None and not self.full_finetune:
            raise ValueError("layer_decay applies to --full_finetune only (LoRA trains every layer at the same lr).")
        self.target_module_names()  # validates

    def target_module_names(self) -> list[str] | None:
        """The Linear names to adapt, or None for the official default (every Linear of every layer)."""
        spec = self.lora_target_modules.strip()
        if spec in TARGET_MODULE_PRESETS:
            return TARGET_MODULE_PRESETS[spec]
        names = [name.strip() for name in spec.split(",") if name.strip()]
        if not names:
            raise ValueError("lora_target_modules is empty; use 'all', 'qv', 'qkvo' or a comma list of Linear names.")
        return names


@dataclass
class DataArguments:
    """Training pairs, validation pairs and the tracking evaluation."""

    train_datasets: list[str] = field(
        default_factory=lambda: ["lasot:train", "trackingnet:train", "coco:train", "got10k:vot_train"],
        metadata={"help": "name:split entries (official mix: LaSOT, TrackingNet, COCO 2017, GOT-10k minus VOT)."},
    )
    train_dataset_weights: list[float] | None = field(
        default=None, metadata={"help": "Sampling weight per training dataset (default: equal, as officially)."}
    )
    dataset_roots: dict | str | None = field(
        default=None,
        metadata={"help": "Dataset name -> root folder, e.g. {lasot: /data/LaSOT, got10k: /data/GOT-10k}."},
    )
    sequence_cache_dir: str | None = field(default=None, metadata={"help": "Where parsed sequence lists are cached."})
    samples_per_epoch: int = field(default=131072, metadata={"help": "Training pairs per epoch (official: 131072)."})
    max_frame_gap: int = field(default=100, metadata={"help": "Max frames between template and search."})
    val_datasets: list[str] = field(
        default_factory=lambda: ["got10k:val"], metadata={"help": "name:split entries for the validation loss."}
    )
    val_pairs: int = field(default=4096, metadata={"help": "Fixed validation pairs (the same pairs every time)."})
    tracking_eval_dataset: str | None = field(
        default="got10k:val", metadata={"help": "name:split for the periodic tracking evaluation (success AUC)."}
    )
    tracking_eval_sequences: int = field(
        default=0, metadata={"help": "Sequences tracked at each tracking evaluation (0 disables it)."}
    )
    synthetic_data_dir: str | None = field(
        default=None,
        metadata={"help": "Where the 'synthetic' dataset is generated (default <output_dir>/synthetic_data)."},
    )
    synthetic_seed: int = field(default=0, metadata={"help": "Seed of the synthetic videos (independent of --seed)."})
    synthetic_sequences: int = field(default=48, metadata={"help": "Synthetic training sequences to generate."})
    synthetic_val_sequences: int = field(default=8, metadata={"help": "Synthetic validation sequences to generate."})
    synthetic_frame_size: list[int] = field(default_factory=lambda: [320, 240], metadata={"help": "Synthetic W H."})
    synthetic_sequence_length: int = field(default=60, metadata={"help": "Frames per synthetic sequence."})
    augment: bool = field(default=True, metadata={"help": "Official augmentations (flip, colour jitter, 3-augment)."})
    exact_crops: bool = field(default=False, metadata={"help": "Decode full frames for bit-exact crops (slower)."})
    dataloader_num_workers: int = field(default=8, metadata={"help": "DataLoader worker processes per rank."})

    def __post_init__(self):
        self.dataset_roots = _json_dict("dataset_roots", self.dataset_roots)
        for entry in [*self.train_datasets, *self.val_datasets]:
            parse_dataset_entry(entry)
        if not self.train_datasets:
            raise ValueError("train_datasets is empty: name at least one name:split entry.")
        if self.train_dataset_weights is not None:
            if len(self.train_dataset_weights) != len(self.train_datasets):
                raise ValueError(
                    f"train_dataset_weights has {len(self.train_dataset_weights)} values for "
                    f"{len(self.train_datasets)} train_datasets; give one weight per dataset."
                )
            if any(w < 0 for w in self.train_dataset_weights) or sum(self.train_dataset_weights) <= 0:
                raise ValueError(
                    f"train_dataset_weights must be >= 0 with a positive sum, got {self.train_dataset_weights}."
                )
        if self.tracking_eval_dataset:
            parse_dataset_entry(self.tracking_eval_dataset)
        if len(self.synthetic_frame_size) != 2:
            raise ValueError(f"synthetic_frame_size is [width, height], got {self.synthetic_frame_size}.")
        for name in ("samples_per_epoch", "max_frame_gap"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        for name in ("val_pairs", "tracking_eval_sequences", "dataloader_num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")


def parse_dataset_entry(entry: str) -> tuple[str, str | None]:
    """`"lasot:train"` -> `("lasot", "train")`; `"generic"` -> `("generic", None)`."""
    name, _, split = entry.partition(":")
    if not name.strip():
        raise ValueError(f"Dataset entry {entry!r} has no name; write name:split, e.g. lasot:train.")
    return name.strip(), (split.strip() or None)


@dataclass
class TrainArguments:
    """Optimisation, precision, schedule, logging, checkpoints. Defaults are the official LoRAT recipe."""

    output_dir: str = field(default="outputs/lorat", metadata={"help": "Run folder (checkpoints, logs, final/)."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow starting a NEW run in a folder that already holds a run."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of weights init, data order and pair sampling."})
    num_train_epochs: int = field(default=170, metadata={"help": "Epochs; with samples_per_epoch, sets the schedule."})
    global_batch_size: int = field(default=128, metadata={"help": "Pairs per optimizer step over all processes."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW peak lr."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay (0 for 1-D and embeddings)."})
    adam_beta1: float = field(default=0.9)
    adam_beta2: float = field(default=0.999)
    adam_epsilon: float = field(default=1e-8)
    max_grad_norm: float | None = field(
        default=1.0, metadata={"help": "Gradient clipping (official: 1.0 LoRA, 0.1 full fine-tuning); 0/None = off."}
    )
    warmup_epochs: float = field(default=2.0, metadata={"help": "Linear warmup length in epochs (per iteration)."})
    warmup_lr: float = field(default=1e-7, metadata={"help": "lr at step 0."})
    min_lr: float = field(default=1e-6, metadata={"help": "Cosine floor."})
    max_train_steps: int | None = field(
        default=None,
        metadata={
            "help": "Stop after this many optimizer steps in total (resumed steps included). The lr schedule still "
            "spans num_train_epochs, so a run split into several jobs matches one uninterrupted run."
        },
    )
    mixed_precision: str | None = field(
        default=None,
        metadata={
            "help": "no | fp16 | bf16. Default: what `accelerate launch`/its config says (recorded in train_config.json)."
        },
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute activations in backward."})
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the model (official: on)."})
    allow_tf32: bool = field(default=True, metadata={"help": "TF32 matmuls on Ampere+ GPUs."})
    logging_steps: int = field(default=10, metadata={"help": "Log train metrics every N optimizer steps."})
    report_to: str = field(default="tensorboard", metadata={"help": "tensorboard | wandb | all | none."})
    tracker_project_name: str = field(default="lorat", metadata={"help": "Experiment name for the trackers."})
    checkpointing_steps: int = field(
        default=1024, metadata={"help": "Save a resumable checkpoint (+ a loadable adapter export) every N steps."}
    )
    checkpoints_total_limit: int | None = field(default=3, metadata={"help": "Keep at most this many checkpoints."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' or a checkpoint folder; continues exactly where it stopped."}
    )
    validation_steps: int = field(default=1024, metadata={"help": "Validation loss every N steps (0 = off)."})
    tracking_eval_steps: int = field(default=10240, metadata={"help": "Tracking evaluation every N steps (0 = off)."})
    log_sample_ids: bool = field(
        default=False,
        metadata={"help": "Write the sample indices each rank trains on to <output_dir>/sample_ids/ (debug)."},
    )

    def __post_init__(self):
        if self.mixed_precision is not None:
            _check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION_CHOICES)
        _check_choice("report_to", self.report_to, REPORT_TO_CHOICES)
        for name in (
            "num_train_epochs",
            "global_batch_size",
            "gradient_accumulation_steps",
            "checkpointing_steps",
            "logging_steps",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.max_train_steps is not None and self.max_train_steps <= 0:
            raise ValueError(f"max_train_steps must be positive, got {self.max_train_steps}.")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit <= 0:
            raise ValueError(
                f"checkpoints_total_limit must be positive (or None for no limit), got {self.checkpoints_total_limit}."
            )
        if self.warmup_epochs < 0 or self.learning_rate <= 0:
            raise ValueError("warmup_epochs must be >= 0 and learning_rate > 0.")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            self.max_grad_norm = None


@dataclass
class HubArguments:
    """Publishing the final adapter (a freshly assembled folder; credentials from `hf auth login` / HF_TOKEN)."""

    push_to_hub: bool = field(default=False, metadata={"help": "Upload final/ to the Hub at the end."})
    hub_model_id: str | None = field(default=None, metadata={"help": "ORG/NAME of the model repo."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the repo as private."})

    def __post_init__(self):
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id ORG/NAME.")
        if self.hub_model_id is not None and self.hub_model_id.count("/") != 1:
            raise ValueError(f"hub_model_id must look like ORG/NAME, got {self.hub_model_id!r}.")


ARGUMENT_GROUPS: dict[str, type] = {
    "model": ModelArguments,
    "peft": PeftArguments,
    "data": DataArguments,
    "training": TrainArguments,
    "hub": HubArguments,
}


@dataclass
class TrainConfig:
    """All argument groups of one run."""

    model: ModelArguments
    peft: PeftArguments
    data: DataArguments
    training: TrainArguments
    hub: HubArguments
    config_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (`{"model": {...}, ..., "config_file": ...}`)."""
        values = {group: asdict(getattr(self, group)) for group in ARGUMENT_GROUPS}
        values["config_file"] = self.config_file
        return values


def load_recipe(path: str | os.PathLike, _seen: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Read a grouped YAML recipe. A top-level `base: other.yaml` (relative to the file) is loaded first and this
    file's sections are merged over it, field by field."""
    path = os.path.abspath(path)
    if path in _seen:
        raise ValueError(f"Recipe {path} includes itself through 'base:' ({' -> '.join(_seen + (path,))}).")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Recipe {path!r} does not exist (see examples/configs/).")
    with open(path, encoding="utf-8") as handle:
        recipe = yaml.safe_load(handle) or {}
    if not isinstance(recipe, dict):
        raise ValueError(
            f"{path}: a recipe is a mapping of groups ({', '.join(ARGUMENT_GROUPS)}), got {type(recipe).__name__}."
        )
    merged: dict[str, dict[str, Any]] = {}
    base = recipe.pop("base", None)
    if base is not None:
        merged = load_recipe(os.path.join(os.path.dirname(path), base), _seen + (path,))
    for group, entries in recipe.items():
        if group not in ARGUMENT_GROUPS:
            hint = difflib.get_close_matches(str(group), ARGUMENT_GROUPS, n=1)
            raise ValueError(
                f"{path}: unknown section {group!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; sections are {', '.join(ARGUMENT_GROUPS)} (and 'base')."
            )
        entries = entries or {}
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: section {group!r} must be a mapping of field: value.")
        known = {f.name for f in fields(ARGUMENT_GROUPS[group])}
        for key in entries:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                other = [name for name, cls in ARGUMENT_GROUPS.items() if key in {f.name for f in fields(cls)}]
                raise ValueError(
                    f"{path}: {group}.{key} is not a known field"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + (f"; it belongs in the {other[0]!r} section" if other else "")
                    + "."
                )
        merged.setdefault(group, {}).update(entries)
    return merged


def parse_train_args(argv: list[str] | None = None) -> TrainConfig:
    """Parse `--config recipe.yaml` plus flat `--field value` overrides (the command line wins).

    Raises `ValueError` naming the problem for unknown recipe keys and invalid values; unknown command-line flags exit
    with argparse's usage message.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, remaining = pre.parse_known_args(argv)

    parser = HfArgumentParser(tuple(ARGUMENT_GROUPS.values()))
    parser.add_argument("--config", default=None, help="YAML recipe with model/peft/data/training/hub sections.")
    if known.config is not None:
        recipe = load_recipe(known.config)
        parser.set_defaults(**{key: value for entries in recipe.values() for key, value in entries.items()})
    # `--config` is re-added so that it shows in --help; it comes back as the extra namespace, dropped here.
    *groups, _ = parser.parse_args_into_dataclasses(args=remaining + ["--config", known.config or ""])
    return TrainConfig(*groups, config_file=known.config)


__all__ = [
    "ModelArguments",
    "PeftArguments",
    "DataArguments",
    "TrainArguments",
    "HubArguments",
    "TrainConfig",
    "ARGUMENT_GROUPS",
    "parse_train_args",
    "parse_dataset_entry",
    "load_recipe",
]
