"""peft integration: the LoRAT adapter configuration, adding adapters, and loading adapter folders or Hub repos.

Only LoRA (or another peft method on the same Linear layers), the token-type embedding and the head train; the
DINOv2 weights and the shared positional embedding stay frozen.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from peft import IA3Config, LoraConfig, PeftConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers.models.dinov2.modeling_dinov2 import Dinov2SwiGLUFFN

from .configuration_lora_tracker import LoraTrackerConfig
from .model_files import ModelFileError, check_weights_fit, read_json_file, safetensors_shapes
from .modeling_lora_tracker import LoraTrackerModel

logger = logging.getLogger(__name__)

# Unique module-name suffixes of the trainable non-LoRA parts (peft matches `modules_to_save` by suffix).
MODULES_TO_SAVE = ["token_type_embeddings", "tracker_head"]
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
MODEL_WEIGHTS_NAME = "model.safetensors"
TRACKER_CONFIG_NAME = "config.json"
PEFT_METHODS = ("lora", "dora", "rslora", "ia3")
HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "proxies")


def lora_target_modules(config: LoraTrackerConfig) -> str:
    """Regex (peft full-match) selecting the configured Linear layers of every Dinov2 layer, nothing else."""
    names = "|".join(config.lora_linear_names)
    return rf"encoder\.layer\.\d+\.(?:attention|mlp)\.(?:{names})"


def get_peft_config(config: LoraTrackerConfig, method: str = "lora", **overrides: Any) -> PeftConfig:
    """The peft config for a tracker: `"lora"` (official), `"dora"`, `"rslora"` or `"ia3"`.

    LoRA-family methods use `config.lora_r`, `lora_alpha`, `lora_dropout`, `use_rslora`; `overrides` are passed to
    the peft config class. `modules_to_save` is always the token-type embedding and the head.
    """
    if method not in PEFT_METHODS:
        raise ValueError(f"Unknown peft method {method!r}; choose one of {PEFT_METHODS}.")
    targets = lora_target_modules(config)
    if method == "ia3":
        mlp_out = [n for n in config.lora_linear_names if n in ("fc2", "down_proj")]
        feedforward = rf"encoder\.layer\.\d+\.mlp\.(?:{'|'.join(mlp_out)})" if mlp_out else None
        kwargs = dict(target_modules=targets, feedforward_modules=feedforward, modules_to_save=list(MODULES_TO_SAVE))
        kwargs.update(overrides)
        return IA3Config(**kwargs)
    kwargs = dict(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        use_rslora=config.use_rslora or method == "rslora",
        use_dora=method == "dora",
        target_modules=targets,
        modules_to_save=list(MODULES_TO_SAVE),
        init_lora_weights=config.lora_init == "peft",
    )
    kwargs.update(overrides)
    return LoraConfig(**kwargs)


def get_lora_config(config: LoraTrackerConfig, **overrides: Any) -> LoraConfig:
    """The official LoRAT `LoraConfig`: every Linear of every layer, r = alpha = 64, no dropout (from `config`)."""
    return get_peft_config(config, "lora", **overrides)


@torch.no_grad()
def official_lora_init_(model: torch.nn.Module, std: float = 0.02, adapter_name: str = "default") -> None:
    """Official LoRAT init ("bert"): both A and B trunc-normal with `std` (absolute bounds +-2), so B is non-zero."""
    for module in model.modules():
        if isinstance(module, LoraLayer) and adapter_name in module.lora_A:
            torch.nn.init.trunc_normal_(module.lora_A[adapter_name].weight, std=std)
            torch.nn.init.trunc_normal_(module.lora_B[adapter_name].weight, std=std)


def tie_swiglu_lora_a_(model: torch.nn.Module, adapter_name: str = "default") -> int:
    """Make the LoRA `A` of `up_proj` the same parameter as that of `gate_proj` in every SwiGLU MLP.

    The official giant models put one LoRA on the fused `w12 = [gate; up]`: a single `A (r, D)` and
    `B (2 * hidden, r)`. Two LoRAs sharing `A` compute exactly that, and train the same number of parameters.
    Returns the number of MLPs tied.
    """
    tied = 0
    for module in model.modules():
        if not isinstance(module, Dinov2SwiGLUFFN):
            continue
        gate, up = module.gate_proj, module.up_proj
        if (
            isinstance(gate, LoraLayer)
            and isinstance(up, LoraLayer)
            and adapter_name in gate.lora_A
            and adapter_name in up.lora_A
        ):
            up.lora_A[adapter_name].weight = gate.lora_A[adapter_name].weight
            tied += 1
    return tied


def add_adapters(
    model: LoraTrackerModel, method: str = "lora", adapter_name: str = "default", **overrides: Any
) -> PeftModel:
    """Wrap a tracker with peft adapters and freeze everything else (positional embedding included)."""
    peft_config = get_peft_config(model.config, method, **overrides)
    peft_model = get_peft_model(model, peft_config, adapter_name=adapter_name)
    if method != "ia3":
        if model.config.lora_init == "official" and "init_lora_weights" not in overrides:
            official_lora_init_(peft_model, std=model.config.initializer_range, adapter_name=adapter_name)
        tie_swiglu_lora_a_(peft_model, adapter_name)
    return peft_model


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """`(total, trainable)` parameters the model computes with (works on the meta device).

    Shared parameters count once, and the frozen originals that peft keeps beside its trainable copies of
    `modules_to_save` are not counted, so the figures compare with the official LoRAT ones.
    """
    total = trainable = 0
    for name, parameter in model.named_parameters():
        if ".original_module." in name:
            continue
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return total, trainable


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------


def _split_hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: kwargs.pop(key) for key in list(kwargs) if key in HUB_KWARGS}


def _resolve_file(path_or_repo_id: str, filename: str, hub_kwargs: dict[str, Any]) -> str | None:
    """Local path of `filename` in a folder or Hub repo, or None when the repo has no such file."""
    if os.path.isdir(path_or_repo_id):
        candidate = os.path.join(path_or_repo_id, filename)
        return candidate if os.path.isfile(candidate) else None
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return hf_hub_download(path_or_repo_id, filename, **hub_kwargs)
    except LocalEntryNotFoundError as error:  # a subclass of EntryNotFoundError: not "absent", but "not reachable"
        cached = try_to_load_from_cache(
            path_or_repo_id, filename, cache_dir=hub_kwargs.get("cache_dir"), revision=hub_kwargs.get("revision")
        )
        if cached is not None and not isinstance(cached, str):  # the cache knows the repo has no such file
            return None
        raise OSError(
            f"Cannot get {filename} of {path_or_repo_id!r}: it is not in the local cache and the Hub cannot be "
            "reached (offline, or local_files_only=True). Download it once with network access, or pass a local "
            "folder."
        ) from error
    except EntryNotFoundError:
        return None
    except RepositoryNotFoundError as error:
        raise OSError(
            f"{path_or_repo_id!r} is neither a local folder nor a Hub repository you can access. Check the id, or log "
            "in with `hf auth login` / set HF_TOKEN if the repository is private."
        ) from error
    except RevisionNotFoundError as error:
        raise OSError(f"Revision {hub_kwargs.get('revision')!r} does not exist in {path_or_repo_id!r}.") from error


def resolve_backbone_path(config: LoraTrackerConfig, adapter_path: str, override: str | None = None) -> str:
    """Where the frozen DINOv2 of an adapter lives: the override, a path relative to the adapter folder, or a Hub id."""
    backbone = override or config.backbone_name_or_path
    if not backbone:
        raise ValueError(
            "This adapter does not name its DINOv2 backbone (config.backbone_name_or_path is empty); pass "
            "backbone_name_or_path='facebook/dinov2-base' (or a local DINOv2 folder)."
        )
    if os.path.isdir(adapter_path) and not os.path.isabs(backbone):
        relative = os.path.join(adapter_path, backbone)
        if os.path.isdir(relative):
            return relative
    return backbone


def load_tracker_model(
    path_or_repo_id: str | os.PathLike,
    merge: bool = False,
    backbone_name_or_path: str | None = None,
    adapter_name: str = "default",
    dtype: torch.dtype | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    **hub_kwargs: Any,
) -> PeftModel | LoraTrackerModel:
    """Load a tracker from an adapter folder/repo (peft files + tracker `config.json`) or a merged model folder/repo.

    Args:
        path_or_repo_id: local folder or Hub repo id.
        merge: merge LoRA into the backbone and return a plain `LoraTrackerModel` (zero inference overhead).
        backbone_name_or_path: DINOv2 to use instead of the one the adapter names.
        adapter_name: peft adapter name to load under.
        dtype: cast the model to this dtype after loading.
        backbone_kwargs: hub kwargs for the backbone download (its own `revision`, ...); the token and cache are shared.
        hub_kwargs: `revision`, `cache_dir`, `token`, `local_files_only` for the adapter repo.
    """
    path = str(path_or_repo_id)
    hub_kwargs = _split_hub_kwargs(hub_kwargs)
    config_file = _resolve_file(path, TRACKER_CONFIG_NAME, hub_kwargs)
    adapter_config_file = _resolve_file(path, ADAPTER_CONFIG_NAME, hub_kwargs)
    if config_file is None:
        raise OSError(
            f"{path!r} has no {TRACKER_CONFIG_NAME}: it is not a lorat_hf tracker. An adapter folder holds "
            f"{ADAPTER_CONFIG_NAME}, {ADAPTER_WEIGHTS_NAME} and {TRACKER_CONFIG_NAME}."
        )
    model_type = read_json_file(config_file).get("model_type")
    weights_file = _resolve_file(path, ADAPTER_WEIGHTS_NAME if adapter_config_file else MODEL_WEIGHTS_NAME, hub_kwargs)
    if weights_file is not None:
        safetensors_shapes(weights_file)  # a damaged file is named here, not deep inside the loader
    if model_type == "loratv2":
        from .adapters_loratv2 import load_loratv2_model
        from .configuration_loratv2 import Loratv2Config

        return load_loratv2_model(
            path,
            Loratv2Config.from_json_file(config_file),
            merge=merge,
            backbone_name_or_path=backbone_name_or_path,
            dtype=dtype,
            backbone_kwargs=backbone_kwargs,
            hub_kwargs=hub_kwargs,
        )
    config = LoraTrackerConfig.from_json_file(config_file)
    if adapter_config_file is None:
        if weights_file is not None:
            with torch.device("meta"):
                expected = {name: tuple(t.shape) for name, t in LoraTrackerModel(config).state_dict().items()}
            check_weights_fit(weights_file, expected, config_file)
        model = LoraTrackerModel.from_pretrained(path, **hub_kwargs)
        return model.to(dtype) if dtype is not None else model

    backbone = resolve_backbone_path(config, path, backbone_name_or_path)
    shared = {k: v for k, v in hub_kwargs.items() if k in ("cache_dir", "token", "local_files_only", "proxies")}
    shared.update(backbone_kwargs or {})
    logger.info("Loading the DINOv2 backbone from %s", backbone)
    backbone_weights = os.path.join(backbone, MODEL_WEIGHTS_NAME)
    if os.path.isfile(backbone_weights):  # a local backbone (a training run's random one, a user's folder)
        safetensors_shapes(backbone_weights)
    base = LoraTrackerModel.from_backbone(backbone, config=config, **shared)
    check_adapter_matches(adapter_config_file, config)
    adapter_folder = resolve_adapter_folder(path, adapter_config_file, hub_kwargs)
    try:
        model = PeftModel.from_pretrained(base, adapter_folder, adapter_name=adapter_name)
    except RuntimeError as error:
        if "size mismatch" not in str(error):
            raise
        first = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line), str(error))
        raise ModelFileError(
            f"{os.path.join(adapter_folder, ADAPTER_WEIGHTS_NAME)} does not fit {config_file} ({first}). The "
            "config.json was edited or belongs to another run: restore the config.json that came with the adapter."
        ) from None
    tie_swiglu_lora_a_(model, adapter_name)
    model.eval()
    if merge:
        model = model.merge_and_unload()
    return model.to(dtype) if dtype is not None else model


def resolve_adapter_folder(path: str, adapter_config_file: str, hub_kwargs: dict[str, Any]) -> str:
    """A local folder holding an adapter's peft files: `path` itself, or the Hub snapshot they were downloaded to.

    peft's own Hub download ignores `local_files_only` (it asks the Hub whether the weights exist), so Hub files are
    fetched here with every hub kwarg and peft only reads a local folder.
    """
    weights_file = _resolve_file(path, ADAPTER_WEIGHTS_NAME, hub_kwargs)
    if weights_file is None:
        raise OSError(f"{path!r} has {ADAPTER_CONFIG_NAME} but no {ADAPTER_WEIGHTS_NAME}.")
    folder = os.path.dirname(adapter_config_file)
    if os.path.dirname(weights_file) != folder:
        raise OSError(f"The adapter files of {path!r} come from two revisions (it changed while downloading); retry.")
    return folder


def check_adapter_matches(adapter_config_file: str, config: LoraTrackerConfig) -> None:
    """Raise when an adapter's rank or targets contradict the tracker config saved beside it."""
    adapter = read_json_file(adapter_config_file)
    if adapter.get("peft_type") == "LORA" and adapter.get("r") not in (None, config.lora_r):
        raise ValueError(
            f"adapter_config.json has r={adapter.get('r')} but the tracker config says lora_r={config.lora_r}; the "
            "folder mixes files from different runs."
        )


def save_adapter_folder(model: PeftModel, output_dir: str | os.PathLike, **save_kwargs: Any) -> Path:
    """Write peft files plus the tracker `config.json` (what `LoraTracker.from_pretrained` reads)."""
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir, **save_kwargs)
    model.get_base_model().config.save_pretrained(output_dir)
    return output_dir


__all__ = [
    "MODULES_TO_SAVE",
    "get_lora_config",
    "get_peft_config",
    "add_adapters",
    "official_lora_init_",
    "count_parameters",
    "load_tracker_model",
    "save_adapter_folder",
    "lora_target_modules",
]
