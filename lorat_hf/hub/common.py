"""What the hub modules share: the file names of a published tracker, the errors, JSON reading and Hub id checks."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

CARD_NAME = "README.md"
PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"
TRAIN_CONFIG_NAME = "train_config.json"
EVAL_RESULTS_NAME = "eval_results.json"
MERGED_WEIGHTS_NAME = "model.safetensors"
MERGED_INDEX_NAME = "model.safetensors.index.json"
EVAL_DIR = "eval"


class TrackerFolderError(ValueError):
    """A folder that cannot be published as it is (missing or inconsistent files)."""


class ModelCardError(ValueError):
    """A model card with missing or wrong metadata."""


class HubPublishError(RuntimeError):
    """The Hub refused or failed an upload (authentication, permissions, network)."""


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


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


__all__ = [
    "CARD_NAME",
    "EVAL_DIR",
    "EVAL_RESULTS_NAME",
    "MERGED_INDEX_NAME",
    "MERGED_WEIGHTS_NAME",
    "PREPROCESSOR_CONFIG_NAME",
    "TRAIN_CONFIG_NAME",
    "HubPublishError",
    "ModelCardError",
    "TrackerFolderError",
]
