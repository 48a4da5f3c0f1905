"""Checks of a tracker's files before they are loaded: a damaged file or a config that does not fit the weights is
one `ModelFileError` naming the file and what to do, never a deserialisation traceback or silently random weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

RESTORE_ADVICE = (
    "Download the model again (for a Hub model: delete it from the Hugging Face cache, or load it with "
    "force_download=True), or re-create the file (lorat-convert for a converted checkpoint, the training run's "
    "export for a trained one)."
)


class ModelFileError(ValueError):
    """A model file that cannot be used: damaged, truncated, or not matching the `config.json` beside it."""


def read_json_file(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON object file (`config.json`, `adapter_config.json`, ...), or `ModelFileError` when it is damaged."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(
            f"{os.fspath(path)} is not valid JSON ({error}): it is damaged. {RESTORE_ADVICE}"
        ) from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{os.fspath(path)} holds a JSON {type(value).__name__}, not an object. {RESTORE_ADVICE}")
    return value


def safetensors_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a safetensors file, read from its header; `ModelFileError` when the file is damaged
    (truncated, empty, overwritten: the header does not describe the file)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except SafetensorError as error:
        raise ModelFileError(
            f"{os.fspath(path)} is damaged ({error}; {os.path.getsize(path)} bytes): it is truncated or was not "
            f"fully written. {RESTORE_ADVICE}"
        ) from None


def check_weights_fit(
    weights_path: str | os.PathLike,
    expected_shapes: Mapping[str, Sequence[int]],
    config_path: str | os.PathLike,
) -> None:
    """Raise `ModelFileError` unless the safetensors file holds every expected tensor with the expected shape.

    Args:
        weights_path: the weights file.
        expected_shapes: tensor name -> shape, of the model that `config_path` describes.
        config_path: the config the model was built from (named in the message).
    """
    shapes = safetensors_shapes(weights_path)
    missing = [name for name in expected_shapes if name not in shapes]
    mismatched = [name for name in expected_shapes if name in shapes and shapes[name] != tuple(expected_shapes[name])]
    if not missing and not mismatched:
        return
    problems = []
    if mismatched:
        name = mismatched[0]
        problems.append(
            f"{len(mismatched)} tensors have another shape (first: {name} is {list(shapes[name])} in the weights but "
            f"{list(expected_shapes[name])} for this config)"
        )
    if missing:
        problems.append(f"{len(missing)} tensors are missing (first: {missing[0]})")
    raise ModelFileError(
        f"{os.fspath(weights_path)} does not fit {os.fspath(config_path)}: {' and '.join(problems)}. The config.json "
        "was edited or belongs to another model: restore the config.json that came with these weights, or "
        "re-convert the checkpoint with lorat-convert."
    )


__all__ = ["ModelFileError", "RESTORE_ADVICE", "check_weights_fit", "read_json_file", "safetensors_shapes"]
