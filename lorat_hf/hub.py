"""Publishing trackers on the Hugging Face Hub: model cards, upload folders, push, and multi-adapter loading.

Publishing goes through three steps, each usable alone:

1. `inspect_tracker_folder(folder)` checks an adapter folder (`adapter_config.json`, `adapter_model.safetensors`,
   tracker `config.json`) or a merged model folder (`model.safetensors`, `config.json`) and reports every problem at
   once.
2. `assemble_upload_folder(folder, output_dir, ...)` builds a fresh folder from an allow-list: weights, configs,
   `preprocessor_config.json` (generated from the tracker config when absent), `train_config.json`, evaluation
   reports and plots, and a model card written last (after peft's own card). Checkpoints, optimizer states, logs and
   `backbone/` copies are never copied.
3. `push_tracker_to_hub(folder_or_model, repo_id, ...)` assembles into a temporary folder and uploads only that.

Adapter repos name their frozen DINOv2 by Hub id (`base_model`, and `base_model_name_or_path` in
`adapter_config.json`), so `LoraTracker.from_pretrained(repo_id)` downloads both.

peft's `save_pretrained` writes its own `README.md` (library `peft`, base model from `_name_or_path`, which is empty
for a tracker built from a config), so the card is always built here, after the peft files are written. Calling
`push_to_hub` on the `PeftModel` itself goes through transformers: it uploads the peft files plus the card already in
the repo, or a generic transformers card when the repo has none, and never the tracker `config.json`. A repo first
published with `push_tracker_to_hub` therefore keeps its card and config when it is updated that way, but a new repo
created by `model.push_to_hub` cannot be loaded: publish with `push_tracker_to_hub(model, repo_id)` instead.

Loading goes through `lorat_hf.adapters.load_tracker_model`; `load_additional_adapter` adds more adapters over the
same backbone for `model.set_adapter(name)` switching.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id
from peft import PeftConfig, PeftModel, get_peft_model

from .adapters import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    MODULES_TO_SAVE,
    TRACKER_CONFIG_NAME,
    _resolve_file,
    _split_hub_kwargs,
    check_adapter_matches,
    count_parameters,
    get_peft_config,
    resolve_adapter_folder,
    save_adapter_folder,
    tie_swiglu_lora_a_,
)
from .configuration_lora_tracker import BACKBONES, LoraTrackerConfig
from .file_utils import staged_directory
from .modeling_lora_tracker import LoraTrackerModel, check_backbone_matches

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"
TRAIN_CONFIG_NAME = "train_config.json"
EVAL_RESULTS_NAME = "eval_results.json"
MERGED_WEIGHTS_NAME = "model.safetensors"
MERGED_INDEX_NAME = "model.safetensors.index.json"
EVAL_DIR = "eval"

REQUIRED_TAGS = ("lorat-hf", "lora", "single-object-tracking", "dinov2")
DEFAULT_LICENSE = "apache-2.0"
TASK_TYPE, TASK_NAME = "video-object-tracking", "Single Object Tracking"
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

# What an assembled folder may hold (also passed to `upload_folder` as `allow_patterns`).
UPLOAD_PATTERNS = [
    CARD_NAME,
    TRACKER_CONFIG_NAME,
    PREPROCESSOR_CONFIG_NAME,
    TRAIN_CONFIG_NAME,
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    MERGED_WEIGHTS_NAME,
    MERGED_INDEX_NAME,
    "model-*-of-*.safetensors",
    EVAL_RESULTS_NAME,
    "*.png",
    f"{EVAL_DIR}/*.json",
    f"{EVAL_DIR}/*.png",
]
# Files a previous push may have left that this push replaces: removed from the branch when not re-uploaded, so that
# switching a repo between adapter and merged weights never leaves both. Other files in the repo are not touched.
MANAGED_REMOTE_PATTERNS = [
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    MERGED_WEIGHTS_NAME,
    MERGED_INDEX_NAME,
    "model-*-of-*.safetensors",
    PREPROCESSOR_CONFIG_NAME,
    TRAIN_CONFIG_NAME,
    EVAL_RESULTS_NAME,
    f"{EVAL_DIR}/*",
]
_SHARD_PATTERN = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
_CREDENTIAL_KEY = re.compile(r"(^|[_.-])(token|api_key|apikey|password|secret)$", re.IGNORECASE)

# Benchmarks: normalised name -> (display name, model-index dataset type: the Hub dataset id where one is known).
BENCHMARKS: dict[str, tuple[str, str]] = {
    "lasot": ("LaSOT", "l-lt/LaSOT"),
    "lasotext": ("LaSOT_ext", "l-lt/LaSOT-ext"),
    "lasotextension": ("LaSOT_ext", "l-lt/LaSOT-ext"),
    "got10k": ("GOT-10k", "got-10k"),
    "trackingnet": ("TrackingNet", "trackingnet"),
    "tnl2k": ("TNL2K", "tnl2k"),
    "vasttrack": ("VastTrack", "vasttrack"),
    "uav123": ("UAV123", "uav123"),
    "nfs": ("NfS", "nfs"),
    "otb": ("OTB100", "otb100"),
    "otb100": ("OTB100", "otb100"),
}
# model-index metric types (all in percent) and their display names, in table order.
METRIC_NAMES: dict[str, str] = {
    "success_auc": "Success (AUC)",
    "normalized_precision": "Normalized precision",
    "precision": "Precision",
    "average_overlap": "Average overlap",
    "success_rate_50": "Success rate @0.5",
    "success_rate_75": "Success rate @0.75",
}
_REPORT_METRIC_ALIASES = {"success": "success_auc", "auc": "success_auc", "ao": "average_overlap"}
# lorat-eval reports the GOT-10k protocol in fractions, as the GOT-10k toolkit does; cards use percent throughout.
_FRACTION_PROTOCOLS = {"got10k"}


class TrackerFolderError(ValueError):
    """A folder that cannot be published as it is (missing or inconsistent files)."""


class ModelCardError(ValueError):
    """A model card with missing or wrong metadata."""


class HubPublishError(RuntimeError):
    """The Hub refused or failed an upload (authentication, permissions, network)."""


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# ----------------------------------------------------------------------------------------------------------------
# Evaluation results
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TrackingResult:
    """Scores of a tracker on one benchmark, in percent, as shown in a card and its `model-index`.

    Args:
        dataset: display name, e.g. `"LaSOT"`.
        dataset_type: model-index dataset type, the Hub dataset id where one exists (`"l-lt/LaSOT"`).
        metrics: metric type (a key of `METRIC_NAMES`) -> value in percent.
        split: benchmark split.
        protocol: evaluation protocol (e.g. `"lasot"`, `"got10k"`), shown in the card.
        num_sequences: sequences evaluated, when known.
        source_name, source_url: where the numbers come from (`lorat-eval`, a paper).
        confirmed: False for numbers not checked against their primary source: shown and flagged in the card,
            kept out of the machine-readable `model-index`.
    """

    dataset: str
    dataset_type: str
    metrics: dict[str, float]
    split: str = "test"
    protocol: str | None = None
    num_sequences: int | None = None
    source_name: str = "lorat-eval"
    source_url: str | None = None
    confirmed: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(METRIC_NAMES))
        if unknown:
            raise ValueError(f"Unknown metric types {unknown} for {self.dataset}; use {list(METRIC_NAMES)}.")
        for name, value in self.metrics.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{self.dataset} {name} must be a finite number, got {value!r}.")

    @classmethod
    def for_benchmark(cls, benchmark: str, metrics: Mapping[str, float], **kwargs: Any) -> TrackingResult:
        """A result for a known benchmark name (`"LaSOT"`, `"lasot_ext"`, `"GOT-10k"`, ...)."""
        display, dataset_type = benchmark_names(benchmark)
        return cls(dataset=display, dataset_type=dataset_type, metrics=dict(metrics), **kwargs)

    @classmethod
    def from_report(
        cls,
        report: Mapping[str, Any] | str | os.PathLike,
        source_name: str = "lorat-eval",
        source_url: str | None = None,
    ) -> TrackingResult:
        """Read a `lorat-eval` report: `{"protocol", "dataset", "num_sequences", "metrics": {...}, ...}`.

        Known metrics are kept (`success` of TrackingNet becomes `success_auc`); GOT-10k fractions become percent.
        """
        where = "The evaluation report"
        if not isinstance(report, Mapping):
            where = str(report)
            report = _read_json(report, "evaluation report")
            if not isinstance(report, Mapping):
                raise ValueError(f"{where} must hold one JSON object (a lorat-eval report).")
        missing = [key for key in ("dataset", "metrics") if key not in report]
        if missing or not isinstance(report.get("metrics"), Mapping):
            raise ValueError(
                f"{where} is not a lorat-eval report: missing {missing or ['metrics (an object)']}; expected "
                '{"protocol", "dataset", "num_sequences", "metrics": {"success_auc", "precision", ...}}.'
            )
        protocol = report.get("protocol")
        scale = 100.0 if _normalise(str(protocol or "")) in _FRACTION_PROTOCOLS else 1.0
        metrics: dict[str, float] = {}
        for key, value in report["metrics"].items():
            metric = _REPORT_METRIC_ALIASES.get(key, key)
            if metric not in METRIC_NAMES or metric in metrics or value is None:
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}: metric {key!r} is {value!r}, not a finite number.")
            metrics[metric] = float(value) * scale
        if not metrics:
            raise ValueError(
                f"{where} has none of the metrics {list(METRIC_NAMES)} (found {list(report['metrics'])})."
            )
        display, dataset_type = benchmark_names(str(report["dataset"]))
        return cls(
            dataset=display,
            dataset_type=dataset_type,
            metrics=metrics,
            split=str(report.get("split") or "test"),
            protocol=str(protocol) if protocol is not None else None,
            num_sequences=report.get("num_sequences"),
            source_name=source_name,
            source_url=source_url,
        )

    def to_eval_results(self) -> list[EvalResult]:
        """One `EvalResult` per metric (values rounded to 0.01 %); empty for unconfirmed results.

        The source goes into the metadata only with a URL (the Hub requires both); the card's table always names it.
        """
        if not self.confirmed:
            return []
        return [
            EvalResult(
                task_type=TASK_TYPE,
                task_name=TASK_NAME,
                dataset_type=self.dataset_type,
                dataset_name=self.dataset,
                dataset_split=self.split,
                metric_type=metric,
                metric_name=METRIC_NAMES[metric],
                metric_value=round(float(value), 2),
                # model-index sources need a URL; without one the source is named in the card's table only
                source_name=self.source_name if self.source_url else None,
                source_url=self.source_url,
            )
            for metric, value in self.metrics.items()
        ]


def benchmark_names(name: str) -> tuple[str, str]:
    """`(display name, model-index dataset type)` of a benchmark; unknown names are kept as they are."""
    return BENCHMARKS.get(_normalise(name), (name, _normalise(name) or name))


def _as_results(items: Sequence[TrackingResult | Mapping[str, Any] | str | os.PathLike]) -> list[TrackingResult]:
    results = []
    for item in items:
        if isinstance(item, TrackingResult):
            results.append(item)
        elif isinstance(item, (str, os.PathLike)):
            loaded = _read_json(item, "evaluation report")
            reports = loaded if isinstance(loaded, list) else [loaded]
            results.extend(TrackingResult.from_report(r) for r in reports)
        else:
            results.append(TrackingResult.from_report(item))
    return results


# ----------------------------------------------------------------------------------------------------------------
# Model cards
# ----------------------------------------------------------------------------------------------------------------


def count_tracker_parameters(
    config: LoraTrackerConfig, peft_config: PeftConfig | Mapping[str, Any] | None = None
) -> tuple[int, int]:
    """`(total, trainable)` parameters of the tracker with its adapter, counted on the meta device (no memory).

    `peft_config` is the adapter's config (object or `adapter_config.json` dict); None uses the tracker config's
    LoRA settings. Totals follow `adapters.count_parameters`, so they compare with the official LoRAT figures.
    """
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
    if isinstance(peft_config, PeftConfig):
        peft_config = peft_config.to_dict()
    if peft_config is None and adapter and not loratv2:
        peft_config = get_peft_config(config).to_dict()
    if num_parameters is None:
        if loratv2:
            raise ValueError("Pass num_parameters=(total, trainable) for a LoRATv2 card.")
        num_parameters = count_tracker_parameters(config, peft_config)
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
        tags=list(dict.fromkeys([*REQUIRED_TAGS, *tags])),
        datasets=list(datasets) if datasets else None,
        eval_results=[e for r in results for e in r.to_eval_results()] or None,
    )
    if description is None:
        kind = ("stream LoRA adapters" if loratv2 else "LoRA adapter") if adapter else "merged checkpoint"
        variant = f" (variant {config.variant})" if config.variant else ""
        family = "LoRATv2" if loratv2 else "LoRAT"
        description = f"A {family} single-object tracker{variant}: a {kind} for the frozen DINOv2 `{base_model}`."
    return ModelCard.from_template(
        card_data,
        template_str=_template_text(),
        model_name=model_name,
        model_ref=model_ref,
        base_model=base_model,
        adapter=adapter,
        description=description.strip(),
        loratv2=loratv2,
        details=(
            _loratv2_details_rows(config, base_model, num_parameters, adapter)
            if loratv2
            else _details_rows(config, base_model, peft_config, num_parameters, adapter)
        ),
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


# ----------------------------------------------------------------------------------------------------------------
# Folders
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TrackerFolder:
    """What `inspect_tracker_folder` found in a folder.

    Attributes:
        path: the folder.
        kind: `"adapter"` (peft files) or `"merged"` (`model.safetensors`).
        config: the tracker config from `config.json`.
        adapter_config: `adapter_config.json` as a dict (adapters only).
        weight_files: weight (and index) files to publish.
        has_preprocessor_config: whether `preprocessor_config.json` is present.
        train_config: `train_config.json`, when present.
        eval_results: parsed `eval_results.json` (a report or a list of reports), when present.
        plots: PNG files at the folder's top level.
        left_out: other files and folders, never published (checkpoints, optimizer states, logs, `backbone/`...).
    """

    path: Path
    kind: str
    config: LoraTrackerConfig
    adapter_config: dict[str, Any] | None
    weight_files: list[str]
    has_preprocessor_config: bool
    train_config: dict[str, Any] | None
    eval_results: Any
    plots: list[str]
    left_out: list[str] = field(default_factory=list)


def _read_json(path: str | os.PathLike, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"No {what} at {str(path)!r}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrackerFolderError(f"{path} is not valid JSON ({error}); the {what} must be a JSON file.") from None


def _is_hub_id(value: str | None) -> bool:
    """A `namespace/name` Hub repo id (not a path)."""
    if not value or value.count("/") != 1 or value.startswith((".", "/", "~")) or os.path.isabs(value):
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def _find_credentials(value: Any, prefix: str = "") -> list[str]:
    found = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{prefix}{key}"
            if isinstance(item, str) and item and _CREDENTIAL_KEY.search(str(key)):
                found.append(name)
            found.extend(_find_credentials(item, f"{name}."))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_find_credentials(item, f"{prefix}{index}."))
    return found


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            if not list(handle.keys()):
                return f"{path.name} holds no tensors"
    except Exception as error:  # safetensors raises its own error types
        return f"{path.name} is not a readable safetensors file ({error})"
    return None


def inspect_tracker_folder(folder: str | os.PathLike) -> TrackerFolder:
    """Check that `folder` is a publishable tracker and describe it; raises `TrackerFolderError` listing all problems.

    An adapter folder needs `adapter_config.json`, `adapter_model.safetensors` and the tracker `config.json`; a
    merged folder needs `model.safetensors` (or shards with their index) and `config.json`.
    """
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(
            f"{str(path)!r} is not a folder. Pass the folder written by training or lorat_hf.convert."
        )
    names = {p.name for p in path.iterdir()}
    problems: list[str] = []

    if TRACKER_CONFIG_NAME not in names:
        raise TrackerFolderError(
            f"{path} has no {TRACKER_CONFIG_NAME} (the tracker config). An adapter folder holds {ADAPTER_CONFIG_NAME}, "
            f"{ADAPTER_WEIGHTS_NAME} and {TRACKER_CONFIG_NAME} (save it with lorat_hf.adapters.save_adapter_folder)."
        )
    raw_config = _read_json(path / TRACKER_CONFIG_NAME, "tracker config")
    if isinstance(raw_config, dict) and raw_config.get("model_type") == "loratv2":
        raise TrackerFolderError(
            f"{path} is a LoRATv2 folder, which lorat-push does not publish yet. Upload it as it is with "
            "huggingface_hub (`hf upload <repo-id> <folder>`): `config.json`, the backbone it names and one peft "
            "adapter per stream subfolder (or `model.safetensors`) are all `LoraTracker.from_pretrained` needs."
        )
    if not isinstance(raw_config, dict) or raw_config.get("model_type") != LoraTrackerConfig.model_type:
        found = raw_config.get("model_type") if isinstance(raw_config, dict) else type(raw_config).__name__
        raise TrackerFolderError(
            f"{path / TRACKER_CONFIG_NAME} is not a lorat_hf tracker config (model_type {found!r}, expected "
            f"{LoraTrackerConfig.model_type!r})."
        )
    try:
        config = LoraTrackerConfig.from_json_file(str(path / TRACKER_CONFIG_NAME))
    except Exception as error:
        raise TrackerFolderError(
            f"{path / TRACKER_CONFIG_NAME} cannot be read as a tracker config: {error}"
        ) from error

    adapter_files = [n for n in (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME) if n in names]
    shards = sorted(n for n in names if _SHARD_PATTERN.match(n))
    merged_files = [n for n in (MERGED_WEIGHTS_NAME, MERGED_INDEX_NAME) if n in names] + shards
    adapter_config = None
    if adapter_files and merged_files:
        raise TrackerFolderError(
            f"{path} holds both adapter files {adapter_files} and merged weights {merged_files}; publish one kind per "
            "folder (copy the one you want into a new folder)."
        )
    if adapter_files:
        kind, weight_files = "adapter", [ADAPTER_WEIGHTS_NAME]
        for name in (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME):
            if name not in names:
                problems.append(
                    f"missing {name} (an adapter folder needs {ADAPTER_CONFIG_NAME} and {ADAPTER_WEIGHTS_NAME})"
                )
        if ADAPTER_CONFIG_NAME in names:
            adapter_config = _read_json(path / ADAPTER_CONFIG_NAME, "adapter config")
            problems.extend(_adapter_config_problems(adapter_config, config, path / ADAPTER_CONFIG_NAME))
        if ADAPTER_WEIGHTS_NAME in names:
            problem = _safetensors_problem(path / ADAPTER_WEIGHTS_NAME)
            problems.extend([problem] if problem else [])
    elif merged_files:
        kind = "merged"
        weight_files = merged_files
        if MERGED_INDEX_NAME in names:
            index = _read_json(path / MERGED_INDEX_NAME, "weight index")
            listed = sorted(set((index.get("weight_map") or {}).values())) if isinstance(index, dict) else []
            absent = [n for n in listed if n not in names]
            if not listed or absent:
                problems.append(f"{MERGED_INDEX_NAME} lists missing shards {absent or '(none listed)'}")
            weight_files = [MERGED_INDEX_NAME, *listed]
        for name in weight_files:
            if name.endswith(".safetensors") and name in names:
                problem = _safetensors_problem(path / name)
                problems.extend([problem] if problem else [])
    else:
        raise TrackerFolderError(
            f"{path} holds no weights: expected {ADAPTER_CONFIG_NAME} + {ADAPTER_WEIGHTS_NAME} (adapter) or "
            f"{MERGED_WEIGHTS_NAME} (merged model). Found: {sorted(names)}."
        )

    has_preprocessor = PREPROCESSOR_CONFIG_NAME in names
    if has_preprocessor:
        problems.extend(
            _preprocessor_problems(_read_json(path / PREPROCESSOR_CONFIG_NAME, "preprocessor config"), config)
        )
    train_config = None
    if TRAIN_CONFIG_NAME in names:
        train_config = _read_json(path / TRAIN_CONFIG_NAME, "training config")
        if not isinstance(train_config, dict):
            problems.append(f"{TRAIN_CONFIG_NAME} must hold a JSON object")
            train_config = None
        else:
            secrets = _find_credentials(train_config)
            if secrets:
                problems.append(
                    f"{TRAIN_CONFIG_NAME} holds credential-like fields {secrets}: remove them before publishing"
                )
    eval_results = None
    if EVAL_RESULTS_NAME in names:
        eval_results = _read_json(path / EVAL_RESULTS_NAME, "evaluation results")
        try:
            _as_results(eval_results if isinstance(eval_results, list) else [eval_results])
        except ValueError as error:
            problems.append(f"{EVAL_RESULTS_NAME}: {error}")
    if problems:
        raise TrackerFolderError(f"{path} cannot be published:\n  - " + "\n  - ".join(problems))

    plots = sorted(n for n in names if n.lower().endswith(".png") and (path / n).is_file())
    published = {TRACKER_CONFIG_NAME, PREPROCESSOR_CONFIG_NAME, TRAIN_CONFIG_NAME, EVAL_RESULTS_NAME, CARD_NAME}
    published.update(weight_files, plots, [ADAPTER_CONFIG_NAME] if kind == "adapter" else [])
    left_out = sorted(n + ("/" if (path / n).is_dir() else "") for n in names - published)
    return TrackerFolder(
        path=path,
        kind=kind,
        config=config,
        adapter_config=adapter_config,
        weight_files=weight_files,
        has_preprocessor_config=has_preprocessor,
        train_config=train_config,
        eval_results=eval_results,
        plots=plots,
        left_out=left_out,
    )


def _adapter_config_problems(adapter_config: Any, config: LoraTrackerConfig, where: Path) -> list[str]:
    if not isinstance(adapter_config, dict):
        return [f"{where.name} must hold a JSON object"]
    problems = []
    peft_type = adapter_config.get("peft_type")
    if peft_type not in ("LORA", "IA3"):
        problems.append(
            f"{where.name} has peft_type {peft_type!r}; lorat_hf trackers use LORA (incl. DoRA/rsLoRA) or IA3"
        )
    saved = adapter_config.get("modules_to_save") or []
    missing = [name for name in MODULES_TO_SAVE if name not in saved]
    if missing:
        problems.append(
            f"{where.name} does not save {missing} (modules_to_save={saved}): without the trained token-type "
            "embedding and head the adapter cannot track; build adapters with lorat_hf.adapters.add_adapters"
        )
    try:
        check_adapter_matches(str(where), config)
    except ValueError as error:
        problems.append(str(error))
    return problems


def _preprocessor_problems(values: Any, config: LoraTrackerConfig) -> list[str]:
    if not isinstance(values, dict):
        return [f"{PREPROCESSOR_CONFIG_NAME} must hold a JSON object"]

    def wh(size: Any) -> tuple[int, int] | None:
        if isinstance(size, int):
            return (size, size)
        return tuple(int(v) for v in size) if isinstance(size, list) and len(size) == 2 else None

    problems = []
    for name, expected in (("template_size", config.template_size_wh), ("search_size", config.search_size_wh)):
        found = wh(values.get(name))
        if found != tuple(expected):
            problems.append(
                f"{PREPROCESSOR_CONFIG_NAME} has {name} {values.get(name)!r} but config.json has {list(expected)}"
            )
    return problems


def resolve_base_model(info: TrackerFolder, base_model: str | None = None) -> str:
    """The Hub id of the frozen DINOv2 an upload names, checked against `config.json` and `adapter_config.json`.

    `base_model` (e.g. `"facebook/dinov2-base"`) is needed when the folder only names a local backbone path.
    Raises `TrackerFolderError` on contradictions and when no Hub id is known.
    """
    from_config = info.config.backbone_name_or_path
    from_adapter = (info.adapter_config or {}).get("base_model_name_or_path")
    named = [(ADAPTER_CONFIG_NAME, from_adapter), (TRACKER_CONFIG_NAME, from_config)]
    hub_ids = [
        (source, value)
        for source, value in named
        if _is_hub_id(value) and not (info.path / value).is_dir() and not os.path.isdir(value)
    ]
    if base_model is not None:
        if not _is_hub_id(base_model):
            raise TrackerFolderError(f"base_model {base_model!r} must be a Hub repo id such as facebook/dinov2-base.")
        for source, value in hub_ids:
            if value != base_model:
                raise TrackerFolderError(
                    f"--base-model {base_model} contradicts {source}, which names the backbone {value}; the adapter "
                    "was trained on that backbone. Drop --base-model, or fix the folder if it is wrong."
                )
        resolved = base_model
    else:
        distinct = sorted({value for _, value in hub_ids})
        if len(distinct) > 1:
            raise TrackerFolderError(
                f"The adapter's base model does not match the tracker config: {ADAPTER_CONFIG_NAME} names "
                f"{from_adapter!r} but {TRACKER_CONFIG_NAME} names {from_config!r}. The folder mixes files from "
                "different runs, or one of them was edited."
            )
        if not distinct:
            raise TrackerFolderError(
                f"No Hub id is known for the DINOv2 backbone ({TRACKER_CONFIG_NAME} names {from_config!r}, "
                f"{ADAPTER_CONFIG_NAME} names {from_adapter!r}): users could not download it. Pass --base-model "
                "facebook/dinov2-base (base_model=... in Python) with the Hub DINOv2 the weights were built on."
            )
        resolved = distinct[0]
    _check_known_backbone(resolved, info.config)
    return resolved


def _check_known_backbone(hub_id: str, config: LoraTrackerConfig) -> None:
    """Raise when `hub_id` is an official DINOv2 whose shape differs from the tracker config's backbone."""
    spec = next((s for s in BACKBONES.values() if s.checkpoint == hub_id), None)
    if spec is None:
        return
    dinov2 = config.dinov2_config
    found = (dinov2.hidden_size, dinov2.num_hidden_layers, dinov2.num_attention_heads, dinov2.use_swiglu_ffn)
    expected = (spec.hidden_size, spec.num_hidden_layers, spec.num_attention_heads, spec.use_swiglu_ffn)
    if found != expected:
        raise TrackerFolderError(
            f"The base model {hub_id} (width {expected[0]}, {expected[1]} layers, {expected[2]} heads) does not match "
            f"config.json's backbone (width {found[0]}, {found[1]} layers, {found[2]} heads)."
        )


@dataclass
class AssembledFolder:
    """A folder ready to upload: `files` (relative POSIX paths), the card, and what was left out."""

    path: Path
    kind: str
    base_model: str
    files: list[str]
    card: ModelCard
    left_out: list[str]


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link large read-only files when possible (same filesystem), otherwise copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _load_card(model_card: ModelCard | str | os.PathLike) -> ModelCard:
    if isinstance(model_card, ModelCard):
        return model_card
    if not os.path.isfile(model_card):
        raise FileNotFoundError(f"No model card at {str(model_card)!r}.")
    return ModelCard.load(model_card)


def assemble_upload_folder(
    folder: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    repo_id: str | None = None,
    base_model: str | None = None,
    model_card: ModelCard | str | os.PathLike | None = None,
    eval_reports: Sequence[str | os.PathLike] = (),
    plots: Sequence[str | os.PathLike] = (),
    license: str = DEFAULT_LICENSE,
    model_name: str | None = None,
) -> AssembledFolder:
    """Build a fresh, publishable copy of a tracker folder in `output_dir` (which must not exist or be empty).

    Only allow-listed files are copied (see `UPLOAD_PATTERNS`); `config.json` and `adapter_config.json` are rewritten
    to name the backbone's Hub id; `preprocessor_config.json` is generated from the tracker config when absent;
    `eval_reports` and `plots` go to `eval/`; the card (`model_card`, or one built with `build_model_card`) is
    validated and written last as `README.md`. The source folder is never modified.
    """
    info = inspect_tracker_folder(folder)
    hub_id = resolve_base_model(info, base_model)
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise FileExistsError(f"{output_dir} exists and is not an empty folder; choose a new output folder.")
    extra_names = [Path(p).name for p in [*eval_reports, *plots]]
    duplicates = sorted({n for n in extra_names if extra_names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Several evaluation files are named {duplicates}; rename them (they all go to {EVAL_DIR}/).")
    for plot in plots:
        if not str(plot).lower().endswith(".png") or not os.path.isfile(plot):
            raise FileNotFoundError(f"Plot {str(plot)!r} is not an existing .png file.")
    reports: list[Any] = []
    for source in ([info.eval_results] if info.eval_results is not None else []) + [
        _read_json(path, "evaluation report") for path in eval_reports
    ]:
        reports.extend(source if isinstance(source, list) else [source])
    _as_results(reports)  # every report must be a readable lorat-eval report, even under a given card
    card = _load_card(model_card) if model_card is not None else None

    with staged_directory(output_dir) as staging:
        for name in info.weight_files:
            _link_or_copy(info.path / name, staging / name)
        raw_config = _read_json(info.path / TRACKER_CONFIG_NAME, "tracker config")
        if raw_config.get("backbone_name_or_path") != hub_id:
            logger.info("config.json: backbone_name_or_path %r -> %r", raw_config.get("backbone_name_or_path"), hub_id)
            raw_config["backbone_name_or_path"] = hub_id
        _write_json(staging / TRACKER_CONFIG_NAME, raw_config)
        config = LoraTrackerConfig.from_json_file(str(staging / TRACKER_CONFIG_NAME))
        if info.adapter_config is not None:
            adapter_config = dict(info.adapter_config)
            if adapter_config.get("base_model_name_or_path") != hub_id:
                logger.info(
                    "adapter_config.json: base_model_name_or_path %r -> %r",
                    adapter_config.get("base_model_name_or_path"),
                    hub_id,
                )
                adapter_config["base_model_name_or_path"] = hub_id
            _write_json(staging / ADAPTER_CONFIG_NAME, adapter_config)
        if info.has_preprocessor_config:
            shutil.copy2(info.path / PREPROCESSOR_CONFIG_NAME, staging / PREPROCESSOR_CONFIG_NAME)
        else:
            from .image_processing_lora_tracker import LoraTrackerImageProcessor

            logger.info("No %s in %s: writing one from the tracker config.", PREPROCESSOR_CONFIG_NAME, info.path)
            LoraTrackerImageProcessor.from_tracker_config(config).save_pretrained(str(staging))
        for name in [TRAIN_CONFIG_NAME, EVAL_RESULTS_NAME, *info.plots]:
            if (info.path / name).is_file():
                shutil.copy2(info.path / name, staging / name)
        for extra in [*eval_reports, *plots]:
            (staging / EVAL_DIR).mkdir(exist_ok=True)
            shutil.copy2(extra, staging / EVAL_DIR / Path(extra).name)
        plot_paths = [*info.plots, *(f"{EVAL_DIR}/{Path(p).name}" for p in plots)]

        adapter = info.kind == "adapter"
        if card is None:
            card = build_model_card(
                config,
                model_name=model_name or (repo_id.split("/")[-1] if repo_id else info.path.resolve().name),
                base_model=hub_id,
                repo_id=repo_id,
                adapter=adapter,
                peft_config=info.adapter_config,
                train_config=info.train_config,
                eval_results=reports,
                datasets=_hub_datasets(info.train_config),
                license=license,
                plots=plot_paths,
            )
            if (info.path / CARD_NAME).is_file():
                logger.info("Replacing %s (peft's or an older card) with a generated card.", info.path / CARD_NAME)
        validate_model_card(card, adapter=adapter, base_model=hub_id)
        card.save(str(staging / CARD_NAME))

    files = sorted(p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file())
    if info.left_out:
        logger.info("Not published from %s: %s", info.path, ", ".join(info.left_out))
    return AssembledFolder(output_dir, info.kind, hub_id, files, card, info.left_out)


def _hub_datasets(train_config: Mapping[str, Any] | None) -> list[str] | None:
    """Hub dataset ids of the known benchmarks named in a training config (only those hosted on the Hub)."""
    if not train_config:
        return None
    names: list[str] = []
    for key, value in _flatten(train_config).items():
        if key.split(".")[-1] in ("train_datasets", "datasets", "dataset_names", "dataset"):
            names.extend(value if isinstance(value, list) else [value])
    ids = [benchmark_names(n.split(":")[0])[1] for n in names if isinstance(n, str)]  # "lasot:train" -> lasot
    return sorted({i for i in ids if "/" in i}) or None


# ----------------------------------------------------------------------------------------------------------------
# Push
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class PushResult:
    """What `push_tracker_to_hub` uploaded (or would upload, with `dry_run=True`)."""

    repo_id: str
    revision: str
    files: list[str]
    kind: str
    base_model: str
    card: ModelCard = field(repr=False)
    left_out: list[str] = field(repr=False)
    commit_url: str | None = None
    commit_oid: str | None = None
    dry_run: bool = False

    def __str__(self) -> str:
        action = "would upload" if self.dry_run else "uploaded"
        where = f" ({self.commit_url})" if self.commit_url else ""
        return f"{self.repo_id}@{self.revision}: {action} {len(self.files)} files{where}"


def _save_model(model: PeftModel | LoraTrackerModel, folder: Path) -> None:
    """Write a model object as an adapter folder (peft) or a merged model folder, with its preprocessor config."""
    from .image_processing_lora_tracker import LoraTrackerImageProcessor

    if isinstance(model, PeftModel):
        if len(model.peft_config) != 1:
            raise ValueError(
                f"The model holds adapters {list(model.peft_config)}; publish one at a time (remove the others with "
                "model.delete_adapter(name), or push the folder each adapter was loaded from)."
            )
        save_adapter_folder(model, folder)
        (name,) = model.peft_config
        nested = folder / name  # peft saves an adapter not named "default" in a sub-folder of that name
        if name != "default" and nested.is_dir():
            for path in nested.iterdir():
                os.replace(path, folder / path.name)
            nested.rmdir()
        config = model.get_base_model().config
    elif isinstance(model, LoraTrackerModel):
        model.save_pretrained(folder)
        config = model.config
    else:
        raise TypeError(f"Expected a folder, a PeftModel or a LoraTrackerModel, got {type(model).__name__}.")
    LoraTrackerImageProcessor.from_tracker_config(config).save_pretrained(str(folder))


def _is_transport_error(error: Exception) -> bool:
    """A network failure of the HTTP client huggingface_hub uses (httpx / httpx2 errors are not OSErrors)."""
    return type(error).__module__.split(".")[0] in ("httpx", "httpx2")


def _hub_error(error: Exception, repo_id: str) -> HubPublishError:
    status = getattr(getattr(error, "response", None), "status_code", None)
    namespace = repo_id.split("/")[0]
    if status == 401:
        message = (
            f"The Hub refused the upload to {repo_id}: you are not logged in (401). Run `hf auth login` or set "
            "HF_TOKEN to a token with write access."
        )
    elif status == 403:
        message = (
            f"Your token cannot write to {repo_id} (403 Forbidden): use a token with write access to the "
            f"'{namespace}' namespace."
        )
    elif status is not None:
        message = f"The Hub answered {status} while uploading to {repo_id}: {error}"
    else:
        message = f"Could not reach the Hub to upload {repo_id}: {error}"
    return HubPublishError(message)


def push_tracker_to_hub(
    folder: str | os.PathLike | PeftModel | LoraTrackerModel,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    *,
    base_model: str | None = None,
    model_card: ModelCard | str | os.PathLike | None = None,
    eval_reports: Sequence[str | os.PathLike] = (),
    plots: Sequence[str | os.PathLike] = (),
    license: str = DEFAULT_LICENSE,
    dry_run: bool = False,
) -> PushResult:
    """Publish a tracker: validate, assemble a fresh folder (allow-list + model card), upload it as one commit.

    Args:
        folder: an adapter folder (e.g. training's `final/` or a `lorat_hf.convert` output), a merged model folder,
            or a `PeftModel` / merged `LoraTrackerModel` (saved to a temporary folder first).
        repo_id: `ORG/NAME`; created if missing (`private` applies only then).
        revision: branch to commit to (created from `main` if missing); default `main`.
        token: Hub token; by default the one from `hf auth login` or `HF_TOKEN`.
        commit_message: defaults to "Upload LoRAT tracker".
        base_model: Hub id of the DINOv2 backbone, needed when the folder names only a local path.
        model_card: a reviewed card (`ModelCard` or a README path) to publish instead of a generated one.
        eval_reports: lorat-eval report JSON files: uploaded to `eval/` and shown in the card.
        plots: PNG plots uploaded to `eval/` and embedded in the card.
        license: license id for a generated card.
        dry_run: validate and assemble only; nothing is sent to the Hub.

    Returns:
        A `PushResult` with the uploaded files and the commit URL.

    Raises:
        TrackerFolderError / ModelCardError (both `ValueError`) for a folder or card that cannot be published,
        `HubPublishError` when the Hub refuses or cannot be reached.
    """
    if not isinstance(repo_id, str) or not _is_hub_id(repo_id):
        raise ValueError(f"repo_id {repo_id!r} must be ORG/NAME (your user name or an organisation, then a name).")
    with tempfile.TemporaryDirectory(prefix="lorat-push-") as tmp:
        source = folder
        if not isinstance(folder, (str, os.PathLike)):
            source = Path(tmp) / "model"
            _save_model(folder, source)
        assembled = assemble_upload_folder(
            source,
            Path(tmp) / "upload",
            repo_id=repo_id,
            base_model=base_model,
            model_card=model_card,
            eval_reports=eval_reports,
            plots=plots,
            license=license,
        )
        result = PushResult(
            repo_id=repo_id,
            revision=revision or "main",
            files=assembled.files,
            kind=assembled.kind,
            base_model=assembled.base_model,
            card=assembled.card,
            left_out=assembled.left_out,
            dry_run=dry_run,
        )
        if dry_run:
            return result
        api = HfApi(token=token)
        try:
            try:
                assembled.card.validate()  # the Hub's own metadata check
            except ValueError as error:
                raise ModelCardError(f"The Hub rejected the model card metadata: {error}") from error
            api.create_repo(repo_id, private=private, exist_ok=True)
            if private and not api.repo_info(repo_id).private:
                logger.warning(
                    "%s already exists and is public: `private` only applies to new repositories. Change the "
                    "visibility in the repository settings if it must be private.",
                    repo_id,
                )
            if revision is not None:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            logger.info("Uploading %d files to %s (%s)", len(assembled.files), repo_id, result.revision)
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(assembled.path),
                commit_message=commit_message or "Upload LoRAT tracker",
                revision=revision,
                allow_patterns=UPLOAD_PATTERNS,
                delete_patterns=MANAGED_REMOTE_PATTERNS,
            )
        except HfHubHTTPError as error:
            raise _hub_error(error, repo_id) from error
        except ModelCardError:
            raise
        except Exception as error:
            if isinstance(error, OSError) or _is_transport_error(error):
                raise _hub_error(error, repo_id) from error
            raise
    result.commit_url, result.commit_oid = commit.commit_url, commit.oid
    return result


# ----------------------------------------------------------------------------------------------------------------
# Loading several adapters over one backbone
# ----------------------------------------------------------------------------------------------------------------


def load_additional_adapter(
    model: PeftModel, path_or_repo_id: str | os.PathLike, adapter_name: str, **hub_kwargs: Any
) -> PeftModel:
    """Load another tracker adapter into a model from `load_tracker_model(..., merge=False)`, sharing its backbone.

    The new adapter brings its own LoRA weights and its own copies of the token-type embedding and head; switch with
    `model.set_adapter(adapter_name)` (outputs then equal those of that adapter loaded alone).

    Args:
        model: a `PeftModel` over a `LoraTrackerModel` (not merged).
        path_or_repo_id: adapter folder or Hub repo id.
        adapter_name: a name not yet used in `model.peft_config`.
        hub_kwargs: `revision`, `cache_dir`, `token`, `local_files_only` for the adapter repo.
    """
    if not isinstance(model, PeftModel):
        raise TypeError(
            "load_additional_adapter needs the PeftModel from load_tracker_model(..., merge=False); a merged model "
            "has no adapters to switch."
        )
    if adapter_name in model.peft_config:
        raise ValueError(
            f"An adapter named {adapter_name!r} is already loaded ({list(model.peft_config)}); choose another name."
        )
    path = str(path_or_repo_id)
    download_kwargs = _split_hub_kwargs(hub_kwargs)
    if hub_kwargs:
        raise TypeError(f"Unexpected arguments {sorted(hub_kwargs)}; only Hub arguments are accepted.")
    config_file = _resolve_file(path, TRACKER_CONFIG_NAME, download_kwargs)
    adapter_config_file = _resolve_file(path, ADAPTER_CONFIG_NAME, download_kwargs)
    if config_file is None or adapter_config_file is None:
        missing = [
            n for n, f in ((TRACKER_CONFIG_NAME, config_file), (ADAPTER_CONFIG_NAME, adapter_config_file)) if f is None
        ]
        raise OSError(f"{path!r} is not a tracker adapter: it has no {' or '.join(missing)}.")
    config = LoraTrackerConfig.from_json_file(config_file)
    loaded = model.get_base_model().config
    check_backbone_matches(loaded.dinov2_config, config.dinov2_config, source=path)
    if (loaded.template_size_wh, loaded.search_size_wh) != (config.template_size_wh, config.search_size_wh):
        raise ValueError(
            f"{path} uses template/search crops {config.template_size_wh}/{config.search_size_wh} px but the loaded "
            f"model uses {loaded.template_size_wh}/{loaded.search_size_wh} px; load it on its own instead."
        )
    ours, theirs = loaded.backbone_name_or_path, config.backbone_name_or_path
    if _is_hub_id(ours) and _is_hub_id(theirs) and ours != theirs:
        raise ValueError(
            f"{path} was trained on the backbone {theirs} but the loaded model holds {ours}; adapters can only share "
            "the backbone they were trained on."
        )
    check_adapter_matches(adapter_config_file, config)
    model.load_adapter(resolve_adapter_folder(path, adapter_config_file, download_kwargs), adapter_name=adapter_name)
    tie_swiglu_lora_a_(model, adapter_name)
    model.eval()
    return model


__all__ = [
    "AssembledFolder",
    "HubPublishError",
    "ModelCardError",
    "PushResult",
    "TrackerFolder",
    "TrackerFolderError",
    "TrackingResult",
    "assemble_upload_folder",
    "benchmark_names",
    "build_model_card",
    "count_tracker_parameters",
    "inspect_tracker_folder",
    "load_additional_adapter",
    "push_tracker_to_hub",
    "resolve_base_model",
    "training_rows_from_train_config",
    "validate_model_card",
]
