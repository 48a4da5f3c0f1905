"""Local tracker folders: what a folder holds, whether it can be published, and the backbone's Hub id it names."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..adapters import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    MODULES_TO_SAVE,
    TRACKER_CONFIG_NAME,
    check_adapter_matches,
)
from ..configuration_lora_tracker import BACKBONES, LoraTrackerConfig
from ..configuration_loratv2 import LORATV2_BACKBONES, Loratv2Config
from .common import (
    CARD_NAME,
    EVAL_RESULTS_NAME,
    MERGED_INDEX_NAME,
    MERGED_WEIGHTS_NAME,
    PREPROCESSOR_CONFIG_NAME,
    TRAIN_CONFIG_NAME,
    TrackerFolderError,
    _is_hub_id,
    _read_json,
)
from .results import _as_results

_SHARD_PATTERN = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
_CREDENTIAL_KEY = re.compile(r"(^|[_.-])(token|api_key|apikey|password|secret)$", re.IGNORECASE)


@dataclass
class TrackerFolder:
    """What `inspect_tracker_folder` found in a folder.

    Attributes:
        path: the folder.
        kind: `"adapter"` (peft files) or `"merged"` (`model.safetensors`).
        config: the tracker config from `config.json` (a `LoraTrackerConfig` or, for LoRATv2, a `Loratv2Config`).
        adapter_config: `adapter_config.json` as a dict (LoRAT adapters only).
        weight_files: weight (and index) files to publish, relative POSIX paths.
        has_preprocessor_config: whether `preprocessor_config.json` is present.
        train_config: `train_config.json`, when present.
        eval_results: parsed `eval_results.json` (a report or a list of reports), when present.
        plots: PNG files at the folder's top level.
        left_out: other files and folders, never published (checkpoints, optimizer states, logs, `backbone/`...).
        stream_adapter_configs: LoRATv2 adapters: `{stream: <stream>/adapter_config.json as a dict}`.
    """

    path: Path
    kind: str
    config: LoraTrackerConfig | Loratv2Config
    adapter_config: dict[str, Any] | None
    weight_files: list[str]
    has_preprocessor_config: bool
    train_config: dict[str, Any] | None
    eval_results: Any
    plots: list[str]
    left_out: list[str] = field(default_factory=list)
    stream_adapter_configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def is_loratv2(self) -> bool:
        return self.config.model_type == Loratv2Config.model_type


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
    config = _read_tracker_config(path, names)
    stream_configs: dict[str, dict[str, Any]] = {}
    if isinstance(config, Loratv2Config):
        kind, weight_files, stream_configs, problems = _inspect_loratv2_weights(path, names, config)
        adapter_config = None
    else:
        kind, weight_files, adapter_config, problems = _inspect_weights(path, names, config)
    has_preprocessor = PREPROCESSOR_CONFIG_NAME in names
    if has_preprocessor:
        problems.extend(
            _preprocessor_problems(_read_json(path / PREPROCESSOR_CONFIG_NAME, "preprocessor config"), config)
        )
    train_config, train_config_problems = _read_train_config(path, names)
    eval_results, eval_results_problems = _read_eval_results(path, names)
    problems.extend([*train_config_problems, *eval_results_problems])
    if problems:
        raise TrackerFolderError(f"{path} cannot be published:\n  - " + "\n  - ".join(problems))

    plots = sorted(n for n in names if n.lower().endswith(".png") and (path / n).is_file())
    published = {TRACKER_CONFIG_NAME, PREPROCESSOR_CONFIG_NAME, TRAIN_CONFIG_NAME, EVAL_RESULTS_NAME, CARD_NAME}
    published.update(weight_files, plots, [ADAPTER_CONFIG_NAME] if kind == "adapter" else [])
    left_out = sorted(n + ("/" if (path / n).is_dir() else "") for n in names - published - set(stream_configs))
    for stream in stream_configs:
        kept = {ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME}
        left_out.extend(sorted(f"{stream}/{p.name}" for p in (path / stream).iterdir() if p.name not in kept))
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
        stream_adapter_configs=stream_configs,
    )


def _read_tracker_config(path: Path, names: set[str]) -> LoraTrackerConfig | Loratv2Config:
    """The tracker config of a folder; `TrackerFolderError` when it is missing or not a LoRAT / LoRATv2 config."""
    if TRACKER_CONFIG_NAME not in names:
        raise TrackerFolderError(
            f"{path} has no {TRACKER_CONFIG_NAME} (the tracker config). An adapter folder holds {ADAPTER_CONFIG_NAME}, "
            f"{ADAPTER_WEIGHTS_NAME} and {TRACKER_CONFIG_NAME} (save it with lorat_hf.adapters.save_adapter_folder)."
        )
    raw_config = _read_json(path / TRACKER_CONFIG_NAME, "tracker config")
    config_class = LoraTrackerConfig
    if isinstance(raw_config, dict) and raw_config.get("model_type") == Loratv2Config.model_type:
        config_class = Loratv2Config
    elif not isinstance(raw_config, dict) or raw_config.get("model_type") != LoraTrackerConfig.model_type:
        found = raw_config.get("model_type") if isinstance(raw_config, dict) else type(raw_config).__name__
        raise TrackerFolderError(
            f"{path / TRACKER_CONFIG_NAME} is not a lorat_hf tracker config (model_type {found!r}, expected "
            f"{LoraTrackerConfig.model_type!r} or {Loratv2Config.model_type!r})."
        )
    try:
        return config_class.from_json_file(str(path / TRACKER_CONFIG_NAME))
    except Exception as error:
        raise TrackerFolderError(
            f"{path / TRACKER_CONFIG_NAME} cannot be read as a tracker config: {error}"
        ) from error


def _inspect_weights(
    path: Path, names: set[str], config: LoraTrackerConfig
) -> tuple[str, list[str], dict[str, Any] | None, list[str]]:
    """`(kind, weight files, adapter config, problems)` of a folder's weights: an adapter or a merged model."""
    adapter_files = [n for n in (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME) if n in names]
    merged_files = _merged_weight_names(names)
    if adapter_files and merged_files:
        _refuse_both_kinds(path, f"adapter files {adapter_files}", merged_files)
    if adapter_files:
        adapter_config, problems = _inspect_adapter_files(
            path, names, lambda values: _adapter_config_problems(values, config, path / ADAPTER_CONFIG_NAME)
        )
        return "adapter", [ADAPTER_WEIGHTS_NAME], adapter_config, problems
    if merged_files:
        weight_files, problems = _inspect_merged_weights(path, names, merged_files)
        return "merged", weight_files, None, problems
    raise TrackerFolderError(
        f"{path} holds no weights: expected {ADAPTER_CONFIG_NAME} + {ADAPTER_WEIGHTS_NAME} (adapter) or "
        f"{MERGED_WEIGHTS_NAME} (merged model). Found: {sorted(names)}."
    )


def _merged_weight_names(names: set[str]) -> list[str]:
    """The merged-model weight files among a folder's `names`: `model.safetensors`, its index, its shards."""
    shards = sorted(n for n in names if _SHARD_PATTERN.match(n))
    return [n for n in (MERGED_WEIGHTS_NAME, MERGED_INDEX_NAME) if n in names] + shards


def _refuse_both_kinds(path: Path, adapters: str, merged_files: list[str]) -> NoReturn:
    raise TrackerFolderError(
        f"{path} holds both {adapters} and merged weights {merged_files}; publish one kind per folder (copy the one "
        "you want into a new folder)."
    )


def _inspect_adapter_files(
    path: Path, names: set[str], config_problems: Callable[[Any], list[str]], prefix: str = ""
) -> tuple[Any, list[str]]:
    """`(adapter config, problems)` of one peft adapter's files in `path`; `config_problems` checks its config and
    `prefix` (a stream's `<stream>/`) starts the file names in the problems."""
    problems = [
        f"missing {prefix}{name} (an adapter folder needs {ADAPTER_CONFIG_NAME} and {ADAPTER_WEIGHTS_NAME})"
        for name in (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME)
        if name not in names
    ]
    adapter_config = None
    if ADAPTER_CONFIG_NAME in names:
        adapter_config = _read_json(path / ADAPTER_CONFIG_NAME, "adapter config")
        problems.extend(config_problems(adapter_config))
    if ADAPTER_WEIGHTS_NAME in names:
        problem = _safetensors_problem(path / ADAPTER_WEIGHTS_NAME)
        problems.extend([prefix + problem] if problem else [])
    return adapter_config, problems


def _inspect_merged_weights(path: Path, names: set[str], merged_files: list[str]) -> tuple[list[str], list[str]]:
    """`(weight files to publish, problems)` of a merged model: one file, or shards listed by their index."""
    problems = []
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
    return weight_files, problems


def _inspect_loratv2_weights(
    path: Path, names: set[str], config: Loratv2Config
) -> tuple[str, list[str], dict[str, dict[str, Any]], list[str]]:
    """`(kind, weight files, {stream: adapter config}, problems)` of a LoRATv2 folder: one peft adapter per stream
    (`<stream>/adapter_config.json`, `<stream>/adapter_model.safetensors`) or merged weights."""
    streams = [s for s in config.stream_names if s in names and (path / s).is_dir()]
    merged_files = _merged_weight_names(names)
    if streams and merged_files:
        _refuse_both_kinds(path, f"stream adapters {streams}", merged_files)
    if merged_files:
        weight_files, problems = _inspect_merged_weights(path, names, merged_files)
        return "merged", weight_files, {}, problems
    if not streams:
        raise TrackerFolderError(
            f"{path} holds no weights: expected one peft adapter per stream ({', '.join(config.stream_names)}: "
            f"<stream>/{ADAPTER_CONFIG_NAME} + <stream>/{ADAPTER_WEIGHTS_NAME}) or {MERGED_WEIGHTS_NAME} (merged "
            f"model). Found: {sorted(names)}."
        )
    problems = [
        f"missing the adapter of stream {stream!r} ({stream}/{ADAPTER_CONFIG_NAME} and {stream}/{ADAPTER_WEIGHTS_NAME})"
        for stream in config.stream_names
        if stream not in streams
    ]
    stream_configs: dict[str, dict[str, Any]] = {}
    for stream in streams:
        where = f"{stream}/{ADAPTER_CONFIG_NAME}"
        adapter_config, stream_problems = _inspect_adapter_files(
            path / stream,
            {p.name for p in (path / stream).iterdir()},
            lambda values, where=where: _stream_adapter_config_problems(values, config, where),
            prefix=f"{stream}/",
        )
        problems.extend(stream_problems)
        if isinstance(adapter_config, dict):
            stream_configs[stream] = adapter_config
    weight_files = [f"{stream}/{ADAPTER_WEIGHTS_NAME}" for stream in streams]
    return "adapter", weight_files, stream_configs, problems


def _stream_adapter_config_problems(adapter_config: Any, config: Loratv2Config, where: str) -> list[str]:
    if not isinstance(adapter_config, dict):
        return [f"{where} must hold a JSON object"]
    problems = []
    if adapter_config.get("peft_type") != "LORA":
        problems.append(f"{where} has peft_type {adapter_config.get('peft_type')!r}; LoRATv2 streams use LORA")
    if adapter_config.get("r") != config.lora_r:
        problems.append(
            f"{where} has r={adapter_config.get('r')!r} but config.json says lora_r={config.lora_r}: the folder mixes "
            "files from different runs"
        )
    return problems


def _read_train_config(path: Path, names: set[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """`(train_config.json or None, problems)`: it must be an object without credential-like fields."""
    if TRAIN_CONFIG_NAME not in names:
        return None, []
    train_config = _read_json(path / TRAIN_CONFIG_NAME, "training config")
    if not isinstance(train_config, dict):
        return None, [f"{TRAIN_CONFIG_NAME} must hold a JSON object"]
    secrets = _find_credentials(train_config)
    if secrets:
        return train_config, [
            f"{TRAIN_CONFIG_NAME} holds credential-like fields {secrets}: remove them before publishing"
        ]
    return train_config, []


def _read_eval_results(path: Path, names: set[str]) -> tuple[Any, list[str]]:
    """`(eval_results.json or None, problems)`: it must hold lorat-eval reports."""
    if EVAL_RESULTS_NAME not in names:
        return None, []
    eval_results = _read_json(path / EVAL_RESULTS_NAME, "evaluation results")
    try:
        _as_results(eval_results if isinstance(eval_results, list) else [eval_results])
    except ValueError as error:
        return eval_results, [f"{EVAL_RESULTS_NAME}: {error}"]
    return eval_results, []


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
                f"{ADAPTER_CONFIG_NAME} names {from_adapter!r}): users could not download it. "
                + _base_model_suggestion(info.config)
            )
        resolved = distinct[0]
    _check_known_backbone(resolved, info.config)
    return resolved


def _backbone_shape(config: LoraTrackerConfig | Loratv2Config) -> tuple[int, int, int, bool]:
    dinov2 = config.dinov2_config
    return (dinov2.hidden_size, dinov2.num_hidden_layers, dinov2.num_attention_heads, dinov2.use_swiglu_ffn)


def _official_backbones(config: LoraTrackerConfig | Loratv2Config) -> dict[str, tuple[int, int, int, bool]]:
    """`{Hub id: (width, layers, heads, SwiGLU)}` of the official DINOv2 checkpoints of the config's model family."""
    if isinstance(config, Loratv2Config):
        return {
            s.checkpoint: (s.hidden_size, s.num_hidden_layers, s.num_attention_heads, False)
            for s in LORATV2_BACKBONES.values()
        }
    return {
        s.checkpoint: (s.hidden_size, s.num_hidden_layers, s.num_attention_heads, s.use_swiglu_ffn)
        for s in BACKBONES.values()
    }


def _base_model_suggestion(config: LoraTrackerConfig | Loratv2Config) -> str:
    """What to pass as --base-model: the official DINOv2 of the backbone's shape, or how to name a backbone trained
    from scratch (no official checkpoint has its shape)."""
    shape = _backbone_shape(config)
    for checkpoint, official_shape in _official_backbones(config).items():
        if official_shape == shape:
            return (
                f"Pass --base-model {checkpoint} (base_model=... in Python) if the weights were built on it: it "
                "is the official DINOv2 of this backbone's shape."
            )
    return (
        f"The backbone (width {shape[0]}, {shape[1]} layers, {shape[2]} heads) has the shape of no official DINOv2: "
        "it was trained from a random initialisation. Publish that backbone as a Hub repo of its own (a training "
        "run's backbone/ folder) and pass its id with --base-model (base_model=... in Python)."
    )


def _check_known_backbone(hub_id: str, config: LoraTrackerConfig | Loratv2Config) -> None:
    """Raise when `hub_id` is an official DINOv2 whose shape differs from the tracker config's backbone."""
    expected = _official_backbones(config).get(hub_id)
    if expected is None:
        return
    found = _backbone_shape(config)
    if found != expected:
        raise TrackerFolderError(
            f"The base model {hub_id} (width {expected[0]}, {expected[1]} layers, {expected[2]} heads) does not match "
            f"config.json's backbone (width {found[0]}, {found[1]} layers, {found[2]} heads)."
        )


__all__ = ["TrackerFolder", "inspect_tracker_folder", "resolve_base_model"]
