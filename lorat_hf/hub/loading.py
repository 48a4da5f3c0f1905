"""Several tracker adapters over one frozen backbone, switched with `model.set_adapter(name)`."""

from __future__ import annotations

import os
from typing import Any

from peft import PeftModel

from ..adapters import (
    ADAPTER_CONFIG_NAME,
    TRACKER_CONFIG_NAME,
    _resolve_file,
    _split_hub_kwargs,
    check_adapter_matches,
    resolve_adapter_folder,
    tie_swiglu_lora_a_,
)
from ..configuration_lora_tracker import LoraTrackerConfig
from ..modeling_lora_tracker import check_backbone_matches
from .common import _is_hub_id


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


__all__ = ["load_additional_adapter"]
