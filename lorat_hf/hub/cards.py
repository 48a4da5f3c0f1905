"""Model cards of trackers: rendered from the packaged template, with details, training summary and results."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import torch
from huggingface_hub import ModelCard, ModelCardData
from peft import PeftConfig, get_peft_model

from ..adapters import count_parameters, get_peft_config, tie_swiglu_lora_a_
from ..configuration_lora_tracker import LoraTrackerConfig
from ..configuration_loratv2 import Loratv2Config
from ..modeling_lora_tracker import LoraTrackerModel
from .common import ModelCardError, _is_hub_id
from .results import METRIC_NAMES, TrackingResult, _as_results

REQUIRED_TAGS = ("lorat-hf", "lora", "single-object-tracking", "dinov2")
DEFAULT_LICENSE = "apache-2.0"
PAPER_URL = "https://arxiv.org/abs/2403.05231"
CODE_URL = "https://github.com/LitingLin/LoRAT"
CITATION = """@inproceedings{lin2024lorat,
  title     = {Tracking Meets LoRA: Faster Training, Larger Model, Stronger Performance},
  author    = {Lin, Liting and Fan, Heng and Zhang, Zhipeng and Wang, Yaowei and Xu, Yong and Ling, Haibin},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2024}
}"""
LORATV2_PAPER_URL = "https://openreview.net/forum?id=q06YjUj0FB"
LORATV2_CITATION = """@inproceedings{lin2025loratv2,
  title     = {LoRATv2: Enabling Low-Cost Temporal Modeling in One-Stream Trackers},
  author    = {Lin, Liting and others},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2025}
}"""
LICENSE_TEXT = (
    "These weights are released under Apache-2.0, like the LoRAT code and the DINOv2 weights. The tracking "
    "benchmarks used for training (LaSOT, GOT-10k, TrackingNet, COCO) have their own terms of use: check them before "
    "any commercial use."
)


def count_tracker_parameters(
    config: LoraTrackerConfig | Loratv2Config, peft_config: PeftConfig | Mapping[str, Any] | None = None
) -> tuple[int, int]:
    """`(total, trainable)` parameters of the tracker with its adapter, counted on the meta device (no memory).

    `peft_config` is the adapter's config (object or `adapter_config.json` dict); None uses the tracker config's
    LoRA settings. Totals follow `adapters.count_parameters`, so they compare with the official LoRAT figures. A
    LoRATv2 tracker is counted with its stream adapters as the config describes them (`peft_config` is not used).
    """
    if isinstance(config, Loratv2Config):
        from ..adapters_loratv2 import add_stream_adapters
        from ..modeling_loratv2 import Loratv2Model

        with torch.device("meta"):
            return count_parameters(add_stream_adapters(Loratv2Model(config)))
    if peft_config is None:
        peft_config = get_peft_config(config)
    elif isinstance(peft_config, Mapping):
        values = {k: v for k, v in peft_config.items() if k != "auto_mapping"}
        peft_config = PeftConfig.from_peft_type(**{**values, "inference_mode": False})  # saved configs are frozen
    with torch.device("meta"):
        model = get_peft_model(LoraTrackerModel(config), peft_config)
    tie_swiglu_lora_a_(model)
    return count_parameters(model)


def _backbone_description(config: LoraTrackerConfig) -> str:
    dinov2 = config.dinov2_config
    mlp = "SwiGLU MLP" if dinov2.use_swiglu_ffn else "GELU MLP"
    return (
        f"ViT/{config.patch_size}, width {dinov2.hidden_size}, {dinov2.num_hidden_layers} layers, "
        f"{dinov2.num_attention_heads} heads, {mlp}"
    )


def _adapter_description(config: LoraTrackerConfig, peft_config: Mapping[str, Any] | None) -> str:
    layers = config.dinov2_config.num_hidden_layers
    if peft_config is None:
        return (
            f"merged: LoRA (r = {config.lora_r}, alpha = {config.lora_alpha:g}) folded into the linear layers of all "
            f"{layers} layers; token-type embedding and head stored in full"
        )
    peft_type = str(peft_config.get("peft_type", "LORA")).upper()
    targets = ", ".join(config.lora_linear_names)
    saved = "token-type embedding and head stored in full"
    if peft_type == "IA3":
        return f"peft (IA3) on {targets} of all {layers} layers; {saved}"
    method = "DoRA" if peft_config.get("use_dora") else "rsLoRA" if peft_config.get("use_rslora") else "LoRA"
    dropout = peft_config.get("lora_dropout", 0.0) or 0.0
    return (
        f"peft {method}, r = {peft_config.get('r')}, alpha = {float(peft_config.get('lora_alpha', 0)):g}, dropout "
        f"{dropout:g}, on {targets} of all {layers} layers; {saved}"
    )


def _format_count(value: int) -> str:
    return f"{value:,} ({value / 1e6:.1f} M)"


def _loratv2_details_rows(
    config: Any, base_model: str, num_parameters: tuple[int, int], adapter: bool
) -> list[tuple[str, str]]:
    """Model details of a LoRATv2 card: streams, regions, experts, streaming inference."""
    backbone = config.dinov2_config
    (tw, th), (tgw, tgh) = config.template_size_wh, config.template_grid_wh
    regions = "; ".join(
        f"region {i}: {w} × {h} px, {gw} × {gh} tokens, context factor {factor:.1f}"
        for i, ((w, h), (gw, gh), factor) in enumerate(
            zip(config.search_sizes_wh, config.search_grids_wh, config.search_area_factors, strict=True)
        )
    )
    total, trainable = num_parameters
    streams = ", ".join(f"`{stream}`" for stream in config.stream_names)
    weights = (
        f"one peft LoRA adapter per stream ({streams}), r = {config.lora_r}, alpha = {config.lora_alpha:g}, on every "
        f"linear layer of that stream's expert in all {backbone.num_hidden_layers} layers; each stream's token type "
        "and head stored in full"
        if adapter
        else f"merged: each stream's LoRA (r = {config.lora_r}, alpha = {config.lora_alpha:g}) folded into its own "
        "copy of the linear layers"
    )
    tracked = config.num_search_regions - 1
    inference = (
        "KV cache: the template runs once per target, each frame runs only its search tokens"
        + (
            f"; region {tracked} is tracked, region 0 holds the dynamic reference frame, refreshed after a frame "
            f"whose confidence exceeds {config.reference_update_threshold:g}"
            if config.num_search_regions > 1
            else ""
        )
        + f"; Hann window penalty {config.window_penalty:g}"
    )
    return [
        ("Variant", f"LoRATv2-{config.variant}" if config.variant else "custom"),
        (
            "Backbone",
            f"[{base_model}](https://huggingface.co/{base_model}), frozen (ViT/{config.patch_size}, width "
            f"{backbone.hidden_size}, {backbone.num_hidden_layers} layers, {backbone.num_attention_heads} heads, "
            f"{backbone.num_register_tokens} registers)",
        ),
        ("Weights", weights),
        ("Template crop", f"{tw} × {th} px, {tgw} × {tgh} tokens, context factor {config.template_area_factor:.1f}"),
        ("Search regions", regions),
        ("Inference", inference),
        ("Parameters", f"{_format_count(total)} in total, {_format_count(trainable)} trained"),
    ]


def _details_rows(
    config: LoraTrackerConfig,
    base_model: str,
    peft_config: Mapping[str, Any] | None,
    num_parameters: tuple[int, int],
    adapter: bool,
) -> list[tuple[str, str]]:
    (tw, th), (sw, sh) = config.template_size_wh, config.search_size_wh
    (tgw, tgh), (sgw, sgh) = config.template_grid_wh, config.search_grid_wh
    total, trainable = num_parameters
    trained = "trained" if adapter else "trained, now merged"
    return [
        ("Variant", f"LoRAT-{config.variant}" if config.variant else "custom"),
        ("Backbone", f"[{base_model}](https://huggingface.co/{base_model}), frozen ({_backbone_description(config)})"),
        ("Weights", _adapter_description(config, peft_config if adapter else None)),
        ("Template crop", f"{tw} × {th} px, {tgw} × {tgh} tokens, context factor {config.template_area_factor:.1f}"),
        (
            "Search crop",
            f"{sw} × {sh} px, {sgw} × {sgh} tokens and response map, context factor {config.search_area_factor:.1f}",
        ),
        (
            "Inference",
            f"fixed template; Hann window penalty {config.window_penalty:g}; previous box grown to at least "
            f"{config.min_object_size:g} px before cropping",
        ),
        ("Parameters", f"{_format_count(total)} in total, {_format_count(trainable)} {trained}"),
    ]


# train_config.json values shown in the card's summary: (label, key suffixes), the first key found wins; a suffix
# matches a whole dotted path component chain (`"peft.r"` matches `"model.peft.r"`). The full file follows the summary.
_TRAINING_SUMMARY_KEYS: list[tuple[str, tuple[str, ...]]] = [
    ("Variant", ("variant",)),
    ("Backbone", ("backbone_name_or_path",)),
    ("Training data", ("train_datasets", "datasets", "dataset_names", "data.dataset")),
    ("Fine-tuning method", ("peft_method", "peft.method")),
    ("LoRA rank", ("lora_r", "peft.r")),
    ("LoRA alpha", ("lora_alpha", "peft.alpha", "peft.lora_alpha")),
    ("Epochs", ("num_train_epochs",)),
    ("Pairs per epoch", ("samples_per_epoch",)),
    ("Steps", ("max_train_steps", "max_steps", "num_train_steps")),
    ("Global batch size", ("global_batch_size", "total_batch_size", "train_batch_size", "batch_size")),
    ("Learning rate", ("learning_rate", "optim.lr", "optimizer.lr")),
    ("Weight decay", ("weight_decay",)),
    ("LR schedule", ("lr_scheduler", "lr_scheduler_type")),
    ("Warm-up steps", ("lr_warmup_steps", "warmup_steps")),
    ("Mixed precision", ("mixed_precision",)),
    ("Processes", ("num_processes",)),
    ("Gradient accumulation", ("gradient_accumulation_steps",)),
    ("Seed", ("seed",)),
]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def training_rows_from_train_config(train_config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Summary rows `(label, value)` of a `train_config.json` (nested groups allowed): the usual hyper-parameters."""
    flat = {key: value for key, value in _flatten(train_config).items() if value not in (None, "", [])}
    rows = []
    for label, suffixes in _TRAINING_SUMMARY_KEYS:
        found = next(
            (flat[key] for suffix in suffixes for key in flat if key == suffix or key.endswith("." + suffix)), None
        )
        if found is not None:
            rows.append((label, ", ".join(map(str, found)) if isinstance(found, (list, tuple)) else str(found)))
    return rows


def _result_rows(results: list[TrackingResult]) -> tuple[list[str], list[dict[str, Any]]]:
    metric_types = [m for m in METRIC_NAMES if any(m in r.metrics for r in results)]
    rows = []
    for result in results:
        source = f"[{result.source_name}]({result.source_url})" if result.source_url else result.source_name
        if result.protocol:
            source += f", protocol `{result.protocol}`"
        if result.num_sequences:
            source += f", {result.num_sequences} sequences"
        if not result.confirmed:
            source += ", **unconfirmed**"
        values = [f"{result.metrics[m]:.1f}" if m in result.metrics else "–" for m in metric_types]
        rows.append({"dataset": result.dataset, "split": result.split, "cells": values, "source": source})
    return [METRIC_NAMES[m] for m in metric_types], rows


def _template_text() -> str:
    return resources.files("lorat_hf").joinpath("templates/model_card.md").read_text(encoding="utf-8")


def build_model_card(
    config: LoraTrackerConfig,
    *,
    model_name: str,
    base_model: str,
    repo_id: str | None = None,
    adapter: bool = True,
    peft_config: PeftConfig | Mapping[str, Any] | None = None,
    num_parameters: tuple[int, int] | None = None,
    training: Sequence[tuple[str, str]] | None = None,
    train_config: Mapping[str, Any] | None = None,
    eval_results: Sequence[TrackingResult | Mapping[str, Any] | str | os.PathLike] = (),
    result_notes: Sequence[str] = (),
    datasets: Sequence[str] | None = None,
    license: str = DEFAULT_LICENSE,
    description: str | None = None,
    conversion: str | None = None,
    plots: Sequence[str] = (),
    tags: Sequence[str] = (),
) -> ModelCard:
    """The model card of a tracker, rendered from the packaged template (`lorat_hf/templates/model_card.md`).

    Args:
        config: the tracker config (variant, sizes, LoRA settings).
        model_name: card title and `model-index` name, e.g. `"lorat-b224"`.
        base_model: Hub id of the frozen DINOv2, e.g. `"facebook/dinov2-base"`.
        repo_id: Hub repo the card is for, used in the usage snippets (defaults to `model_name`).
        adapter: True for a peft adapter repo (`library_name: peft`, `base_model_relation: adapter`), False for a
            merged model (`library_name: transformers`, `base_model_relation: finetune`).
        peft_config: the adapter's peft config (object or `adapter_config.json` dict); defaults to the tracker
            config's LoRA settings.
        num_parameters: `(total, trainable)`; counted on the meta device when omitted.
        training: summary rows `(label, value)` of the training recipe; derived from `train_config` when omitted.
        train_config: the published `train_config.json`, shown in full in a collapsed block.
        eval_results: `TrackingResult`s, lorat-eval report dicts, or paths to report JSON files.
        result_notes: extra bullet points under the results table.
        datasets: Hub dataset ids of the training data for the card metadata (e.g. `["l-lt/LaSOT"]`).
        license: license id of the weights.
        description: the opening paragraph.
        conversion: Markdown of a "Conversion from the official release" section.
        plots: image paths relative to the repo root, embedded under the results.
        tags: extra tags (the required ones are always present).
    """
    loratv2 = getattr(config, "model_type", None) == "loratv2"
    details = _details(config, base_model, adapter, peft_config, num_parameters)
    if training is None and train_config is not None:
        training = training_rows_from_train_config(train_config)
    results = _as_results(eval_results)
    metric_names, result_rows = _result_rows(results)
    model_ref = repo_id or model_name
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model,
        base_model_relation="adapter" if adapter else "finetune",
        library_name="peft" if adapter else "transformers",
        license=license,
        tags=list(dict.fromkeys([*REQUIRED_TAGS, *(["loratv2"] if loratv2 else []), *tags])),
        datasets=list(datasets) if datasets else None,
        eval_results=[e for r in results for e in r.to_eval_results()] or None,
    )
    if description is None:
        description = _default_description(config, base_model, adapter)
    return ModelCard.from_template(
        card_data,
        template_str=_template_text(),
        model_name=model_name,
        model_ref=model_ref,
        base_model=base_model,
        adapter=adapter,
        description=description.strip(),
        loratv2=loratv2,
        details=details,
        training=list(training or []),
        train_config_json=json.dumps(train_config, indent=2, sort_keys=True) if train_config else None,
        conversion=conversion.strip() if conversion else None,
        results=result_rows,
        metric_names=metric_names,
        has_unconfirmed=any(not r.confirmed for r in results),
        result_notes=list(result_notes),
        plots=list(plots),
        license_text=LICENSE_TEXT if license == DEFAULT_LICENSE else f"License: `{license}`.",
        citation=LORATV2_CITATION if loratv2 else CITATION,
        paper_url=LORATV2_PAPER_URL if loratv2 else PAPER_URL,
        code_url=CODE_URL,
    )


def _details(
    config: LoraTrackerConfig,
    base_model: str,
    adapter: bool,
    peft_config: PeftConfig | Mapping[str, Any] | None,
    num_parameters: tuple[int, int] | None,
) -> list[tuple[str, str]]:
    """The card's model details rows; a LoRAT tracker's parameters are counted on the meta device when not given."""
    if getattr(config, "model_type", None) == "loratv2":
        if num_parameters is None:
            raise ValueError(
                "Pass num_parameters=(total, trainable) for a LoRATv2 card (count_tracker_parameters(config))."
            )
        return _loratv2_details_rows(config, base_model, num_parameters, adapter)
    if isinstance(peft_config, PeftConfig):
        peft_config = peft_config.to_dict()
    if peft_config is None and adapter:
        peft_config = get_peft_config(config).to_dict()
    if num_parameters is None:
        num_parameters = count_tracker_parameters(config, peft_config)
    return _details_rows(config, base_model, peft_config, num_parameters, adapter)


def _default_description(config: LoraTrackerConfig, base_model: str, adapter: bool) -> str:
    loratv2 = getattr(config, "model_type", None) == "loratv2"
    kind = ("stream LoRA adapters" if loratv2 else "LoRA adapter") if adapter else "merged checkpoint"
    variant = f" (variant {config.variant})" if config.variant else ""
    family = "LoRATv2" if loratv2 else "LoRAT"
    return f"A {family} single-object tracker{variant}: a {kind} for the frozen DINOv2 `{base_model}`."


def validate_model_card(card: ModelCard, adapter: bool | None = None, base_model: str | None = None) -> None:
    """Raise `ModelCardError` naming every missing or wrong metadata field of a tracker card (no network).

    Checks `model_name`, `license`, `base_model` (a Hub id, equal to `base_model` when given),
    `library_name`/`base_model_relation` (`peft`/`adapter` for adapters, `transformers`/`finetune` for merged
    models), the required tags, no `pipeline_tag` (the Hub has no tracking task), and complete `model-index` entries.
    """
    data = card.data
    problems = []
    if not data.get("model_name"):
        problems.append("model_name (the card's model-index name, e.g. 'lorat-b224')")
    if not data.get("license"):
        problems.append("license (e.g. 'apache-2.0')")
    card_base = data.get("base_model")
    if not card_base:
        problems.append("base_model (the Hub id of the DINOv2 backbone, e.g. 'facebook/dinov2-base')")
    elif not isinstance(card_base, str) or not _is_hub_id(card_base):
        problems.append(f"base_model must be one Hub repo id like 'facebook/dinov2-base', got {card_base!r}")
    elif base_model is not None and card_base != base_model:
        problems.append(f"base_model is {card_base!r} but the uploaded weights are built on {base_model!r}")
    expected = {True: ("peft", "adapter"), False: ("transformers", "finetune")}
    library, relation = data.get("library_name"), data.get("base_model_relation")
    allowed = [expected[adapter]] if adapter is not None else list(expected.values())
    if (library, relation) not in allowed:
        wanted = " or ".join(f"library_name={lib!r} with base_model_relation={rel!r}" for lib, rel in allowed)
        problems.append(f"library_name={library!r} / base_model_relation={relation!r}: expected {wanted}")
    missing_tags = [tag for tag in REQUIRED_TAGS if tag not in (data.get("tags") or [])]
    if missing_tags:
        problems.append(f"tags {missing_tags}")
    if data.get("pipeline_tag"):
        problems.append(
            f"pipeline_tag={data.get('pipeline_tag')!r} must not be set: the Hub has no tracking task (use tags)"
        )
    for result in data.eval_results or []:
        if result.metric_value is None or not math.isfinite(float(result.metric_value)):
            problems.append(
                f"model-index value of {result.dataset_name} {result.metric_type} ({result.metric_value!r})"
            )
    if problems:
        raise ModelCardError("The model card cannot be published; fix its metadata: " + "; ".join(problems) + ".")


__all__ = [
    "CITATION",
    "CODE_URL",
    "DEFAULT_LICENSE",
    "LICENSE_TEXT",
    "LORATV2_CITATION",
    "LORATV2_PAPER_URL",
    "PAPER_URL",
    "REQUIRED_TAGS",
    "build_model_card",
    "count_tracker_parameters",
    "training_rows_from_train_config",
    "validate_model_card",
]
