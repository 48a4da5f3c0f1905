"""Mixed-precision storage: frozen weights in the low dtype, trainable weights in fp32.

accelerate's `mixed_precision` runs the forward under autocast; the weights themselves keep their storage dtype. Storing
the frozen DINOv2 matrices (and the frozen position table) in bf16/fp16 halves its memory, while the trainable LoRA/head/
token-type weights must stay fp32: the optimizer updates them, and fp16 `GradScaler.unscale_` refuses fp16 gradients.
Frozen 1-D parameters (LayerNorm weights and biases, Linear biases, LayerScale) stay fp32: they are tiny, and CPU
autocast does not cast LayerNorm parameters (an fp32 input with bf16 norm weights is an error there).
Frozen low-dtype weights are only valid under autocast (a plain fp32 forward would mix dtypes), so evaluate inside
`accelerator.autocast()` too, and export trainable weights only (they are fp32).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp8": torch.bfloat16}


def weight_dtype_for(mixed_precision: str | None) -> torch.dtype:
    """Storage dtype of frozen weights for an accelerate `mixed_precision` value (`no`/`fp16`/`bf16`/`fp8`)."""
    key = str(mixed_precision or "no")
    if key not in _DTYPES:
        raise ValueError(f"Unknown mixed_precision {mixed_precision!r}; expected one of {', '.join(_DTYPES)}.")
    return _DTYPES[key]


@torch.no_grad()
def cast_for_mixed_precision_(model: nn.Module, frozen_dtype: torch.dtype) -> dict[str, int]:
    """Cast frozen floating-point matrices (ndim >= 2) to `frozen_dtype` and every other parameter to fp32, in place.

    Buffers are left alone (the head's cell-centre table stays fp32). Returns `{"frozen": n, "trainable": m}`: the
    number of elements now stored in `frozen_dtype` and the number of trainable elements (fp32).
    """
    counts = {"frozen": 0, "trainable": 0}
    for parameter in model.parameters():
        if not parameter.is_floating_point():
            continue
        if parameter.requires_grad:
            if parameter.dtype != torch.float32:
                parameter.data = parameter.data.float()
            counts["trainable"] += parameter.numel()
        elif parameter.ndim >= 2:
            if parameter.dtype != frozen_dtype:
                parameter.data = parameter.data.to(frozen_dtype)
            counts["frozen"] += parameter.numel()
        elif parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    return counts


def parameter_dtypes(model: nn.Module) -> dict[str, dict[str, int]]:
    """`{"trainable": {dtype: elements}, "frozen": {dtype: elements}}`, for logs and train_config.json."""
    summary: dict[str, Counter] = {"trainable": Counter(), "frozen": Counter()}
    for parameter in model.parameters():
        summary["trainable" if parameter.requires_grad else "frozen"][str(parameter.dtype).replace("torch.", "")] += (
            parameter.numel()
        )
    return {key: dict(value) for key, value in summary.items()}


__all__ = ["weight_dtype_for", "cast_for_mixed_precision_", "parameter_dtypes"]
