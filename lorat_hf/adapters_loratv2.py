"""peft integration of LoRATv2: one named LoRA adapter per stream (`template`, `search_0`, `search_1`, ...).

Every stream has its own copy of each block's Linear layers (`encoder.layer.L.experts.<stream index>`), so routing by
token chunk is done by the model's structure and peft needs no routing of its own: adapter `search_0` targets only the
expert-1 Linears, adapter `template` only the expert-0 ones. All adapters are active at once; each layer applies the
single adapter it holds. peft therefore saves, loads and merges each stream on its own, with its own files, and
`merge_and_unload()` yields one merged weight per stream, so streaming inference pays no LoRA cost.

Each adapter also owns its stream's non-LoRA trainables (`modules_to_save`): the template token types for `template`,
the region's token-type embedding and head for `search_<i>`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from .adapters import official_lora_init_
from .configuration_loratv2 import TEMPLATE_STREAM, Loratv2Config
from .modeling_loratv2 import Loratv2Model, expert_linear_names

logger = logging.getLogger(__name__)

# peft writes each non-"default" adapter into a subfolder named after it: `<folder>/<stream>/adapter_*`.
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"


def stream_target_modules(config: Loratv2Config, stream: str) -> str:
    """Regex (peft full-match) selecting the Linear layers of `stream`'s expert in every layer, nothing else."""
    index = config.stream_names.index(stream)
    names = "|".join(name.replace(".", r"\.") for name in expert_linear_names(config))
    return rf"encoder\.layer\.\d+\.experts\.{index}\.(?:{names})"


def stream_modules_to_save(config: Loratv2Config, stream: str) -> list[str]:
    """The non-LoRA modules a stream trains (peft matches them by name suffix)."""
    if stream == TEMPLATE_STREAM:
        return ["template_token_type_embeddings"]
    region = config.stream_names.index(stream) - 1
    return [f"search_token_type_embeddings.{region}", f"heads.{region}"]


def get_stream_lora_config(config: Loratv2Config, stream: str, **overrides: Any) -> LoraConfig:
    """The `LoraConfig` of one stream: `config.lora_r` / `lora_alpha` / `lora_dropout` on that stream's expert."""
    if stream not in config.stream_names:
        raise ValueError(f"Unknown stream {stream!r}; this model has {config.stream_names}.")
    kwargs = dict(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=stream_target_modules(config, stream),
        modules_to_save=stream_modules_to_save(config, stream),
        init_lora_weights=config.lora_init == "peft",
    )
    kwargs.update(overrides)
    return LoraConfig(**kwargs)


def activate_streams(model: PeftModel, trainable_streams: list[str] | None = None) -> None:
    """Make every stream adapter of `model` active; only `trainable_streams` (default: none) require grad."""
    streams = list(model.peft_config)
    model.base_model.set_adapter(streams, inference_mode=True)
    trainable = set(trainable_streams or [])
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(_belongs_to(name, stream) for stream in trainable))


def _belongs_to(parameter_name: str, stream: str) -> bool:
    return (
        f".lora_A.{stream}." in parameter_name
        or f".lora_B.{stream}." in parameter_name
        or (f".modules_to_save.{stream}." in parameter_name)
    )


def add_stream_adapters(
    model: Loratv2Model | PeftModel, streams: list[str] | None = None, **overrides: Any
) -> PeftModel:
    """Add one LoRA adapter per stream (default: every stream without one) and activate them all.

    The trainable parameters are those of `config.trained_streams` (all streams in phase 1, the last one in phase 2);
    everything else, the backbone and positional table included, is frozen. With `lora_init="official"` A and B are
    both trunc-normal (std `initializer_range`) like the official code.
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    config = base.config
    existing = list(model.peft_config) if isinstance(model, PeftModel) else []
    streams = [s for s in (streams or config.stream_names) if s not in existing]
    peft_model = model
    for stream in streams:
        lora_config = get_stream_lora_config(config, stream, **overrides)
        if isinstance(peft_model, PeftModel):
            peft_model.add_adapter(stream, lora_config)
        else:
            peft_model = get_peft_model(peft_model, lora_config, adapter_name=stream)
        if config.lora_init == "official" and "init_lora_weights" not in overrides:
            official_lora_init_(peft_model, std=config.initializer_range, adapter_name=stream)
    activate_streams(peft_model, config.trained_streams)
    return peft_model


def save_stream_adapters(model: PeftModel, output_dir: str | os.PathLike, **save_kwargs: Any) -> Path:
    """Write each stream adapter (peft files in `<output_dir>/<stream>/`) and the LoRATv2 `config.json`."""
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir, **save_kwargs)
    model.get_base_model().config.save_pretrained(output_dir)
    return output_dir


def stream_adapter_folders(path: str | os.PathLike) -> dict[str, str]:
    """`{stream: folder}` of the stream adapters saved under a LoRATv2 adapter folder (empty for a merged folder)."""
    folders = {}
    root = Path(path)
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if (child / "adapter_config.json").is_file():
            folders[child.name] = str(child)
    return folders


def load_stream_adapters(
    base: Loratv2Model, folders: dict[str, str], merge: bool = False, trainable_streams: list[str] | None = None
) -> PeftModel | Loratv2Model:
    """Load the stream adapters `{stream: folder}` onto `base`; `merge=True` returns the merged `Loratv2Model`."""
    config = base.config
    unknown = sorted(set(folders) - set(config.stream_names))
    if unknown:
        raise ValueError(f"Adapter folders {unknown} name no stream of this model ({config.stream_names}).")
    for stream, folder in folders.items():
        with open(os.path.join(folder, "adapter_config.json"), encoding="utf-8") as handle:
            rank = json.load(handle).get("r")
        if rank not in (None, config.lora_r):
            raise ValueError(
                f"Adapter {stream!r} has r={rank} but the LoRATv2 config says lora_r={config.lora_r}; the folder "
                "mixes files from different runs."
            )
    model: PeftModel | None = None
    for stream, folder in folders.items():
        if model is None:
            model = PeftModel.from_pretrained(base, folder, adapter_name=stream)
        else:
            model.load_adapter(folder, adapter_name=stream)
    if model is None:
        return base
    activate_streams(model, trainable_streams)
    model.eval()
    return model.merge_and_unload() if merge else model


def load_loratv2_model(
    path: str,
    config: Loratv2Config,
    merge: bool = False,
    backbone_name_or_path: str | None = None,
    dtype: torch.dtype | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    hub_kwargs: dict[str, Any] | None = None,
) -> PeftModel | Loratv2Model:
    """Load a LoRATv2 folder or Hub repo: merged (`model.safetensors`) or backbone + one adapter per stream."""
    from .adapters import _resolve_file, resolve_backbone_path

    hub_kwargs = dict(hub_kwargs or {})
    folders = {}
    for stream in config.stream_names:
        adapter_config = _resolve_file(path, f"{stream}/{ADAPTER_CONFIG_NAME}", hub_kwargs)
        if adapter_config is None:
            continue
        weights = _resolve_file(path, f"{stream}/{ADAPTER_WEIGHTS_NAME}", hub_kwargs)
        if weights is None:
            raise OSError(f"{path!r} has {stream}/{ADAPTER_CONFIG_NAME} but no {stream}/{ADAPTER_WEIGHTS_NAME}.")
        folders[stream] = os.path.dirname(adapter_config)
    if not folders:
        model = Loratv2Model.from_pretrained(path, **hub_kwargs)
        return model.to(dtype) if dtype is not None else model
    missing = [s for s in config.stream_names if s not in folders]
    if missing:
        raise OSError(f"{path!r} has adapters for {sorted(folders)} but none for the streams {missing}.")
    backbone = resolve_backbone_path(config, path, backbone_name_or_path)
    shared = {k: v for k, v in hub_kwargs.items() if k in ("cache_dir", "token", "local_files_only", "proxies")}
    shared.update(backbone_kwargs or {})
    logger.info("Loading the DINOv2-with-registers backbone from %s", backbone)
    base = Loratv2Model.from_backbone(backbone, config=config, **shared)
    model = load_stream_adapters(base, folders, merge=merge)
    return model.to(dtype) if dtype is not None else model


__all__ = [
    "add_stream_adapters",
    "activate_streams",
    "get_stream_lora_config",
    "stream_target_modules",
    "stream_modules_to_save",
    "save_stream_adapters",
    "load_stream_adapters",
    "stream_adapter_folders",
    "load_loratv2_model",
]
