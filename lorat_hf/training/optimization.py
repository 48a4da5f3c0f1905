"""The official LoRAT optimisation: AdamW parameter groups and the per-iteration warmup + cosine schedule.

* Weight decay 0.1 on weight matrices; 0 on 1-D parameters (biases, norms, LayerScale, and tensors such as the
  `(1, D)` final score weight that are 1-D once squeezed), on every parameter of a normalisation layer, and on the
  token-type and position embeddings (official `zero_1d_param_weight_decay` + the `embed` rule).
* lr 1e-4 for every group, except the full fine-tuning baseline's layer-wise decay: the patch embedding gets
  `decay ** (L + 1)`, layer `i` gets `decay ** (L - i)`, everything above the last layer (final norm, head, embeddings
  tables) the full lr (official `vit_lr_layer_decay`).
* timm's cosine schedule with a warmup prefix, per optimizer step: linear from `warmup_lr` to each group's lr over
  `warmup_steps`, then `min_lr + (lr - min_lr) * (1 + cos(pi * t / total_steps)) / 2` with `t` counted from the end of
  the warmup. As in the official run the cosine period is the whole run (`total_steps`), so the last step ends
  slightly above `min_lr`. `warmup_lr` and `min_lr` are absolute (not scaled by the layer decay), as in timm.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

NO_WEIGHT_DECAY_PATTERNS = ("token_type_embeddings", "position_embeddings")
NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.LocalResponseNorm)
_LAYER_INDEX = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")


def no_weight_decay_names(model: nn.Module, patterns: Iterable[str] = NO_WEIGHT_DECAY_PATTERNS) -> set[str]:
    """Names of the trainable parameters that get no weight decay (see the module docstring)."""
    norm_prefixes = tuple(f"{name}." for name, module in model.named_modules() if isinstance(module, NORM_LAYERS))
    patterns = tuple(patterns)
    names = set()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if (
            name.startswith(norm_prefixes)
            or parameter.squeeze().ndim <= 1
            or any(pattern in name for pattern in patterns)
        ):
            names.add(name)
    return names


def layer_id(name: str, num_layers: int) -> int:
    """ViT depth index of a parameter for layer-wise lr decay: patch embedding 0, `encoder.layer.i` i + 1, else L + 1."""
    match = _LAYER_INDEX.search(name)
    if match:
        return int(match.group(1)) + 1
    if "patch_embeddings" in name:
        return 0
    return num_layers + 1


def build_parameter_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float = 0.1,
    layer_decay: float | None = None,
    num_layers: int | None = None,
    no_decay_patterns: Iterable[str] = NO_WEIGHT_DECAY_PATTERNS,
) -> list[dict]:
    """AdamW parameter groups of the trainable parameters (frozen ones are left out).

    Args:
        model: the (possibly peft-wrapped) tracker.
        learning_rate: peak lr of the top layers.
        weight_decay: decay of weight matrices.
        layer_decay: layer-wise lr decay factor (full fine-tuning baseline); `None` = one lr for all.
        num_layers: ViT depth for `layer_decay` (default: inferred from `encoder.layer.N` names).
    Returns:
        groups with `params`, `lr`, `weight_decay`, `lr_scale` and a readable `name`, in a deterministic order.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("The model has no trainable parameters: add adapters or pass full_finetune=True.")
    no_decay = no_weight_decay_names(model, no_decay_patterns)
    if layer_decay is not None and num_layers is None:
        indices = [int(m.group(1)) for name, _ in trainable if (m := _LAYER_INDEX.search(name))]
        if not indices:
            raise ValueError("layer_decay needs encoder.layer.N parameters to be trainable.")
        num_layers = max(indices) + 1
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in trainable:
        depth = layer_id(name, num_layers) if layer_decay is not None else 0
        scale = layer_decay ** (num_layers + 1 - depth) if layer_decay is not None else 1.0
        decays = name not in no_decay
        key = (depth, decays)
        if key not in groups:
            label = f"layer_{depth}" if layer_decay is not None else "all"
            groups[key] = {
                "name": f"{label}_{'decay' if decays else 'no_decay'}",
                "params": [],
                "param_names": [],
                "lr": learning_rate * scale,
                "lr_scale": scale,
                "weight_decay": weight_decay if decays else 0.0,
            }
        groups[key]["params"].append(parameter)
        groups[key]["param_names"].append(name)
    return [groups[key] for key in sorted(groups)]


def create_optimizer(
    model: nn.Module,
    learning_rate: float = 1e-4,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    layer_decay: float | None = None,
) -> torch.optim.AdamW:
    """AdamW over `build_parameter_groups(model, ...)` (the official optimizer)."""
    groups = build_parameter_groups(model, learning_rate, weight_decay, layer_decay)
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, weight_decay=weight_decay)


def warmup_cosine_lr(
    step: int, base_lr: float, warmup_steps: int, total_steps: int, warmup_lr: float = 1e-7, min_lr: float = 1e-6
) -> float:
    """lr of optimizer step `step` (0-based) for a group whose peak lr is `base_lr` (see the module docstring)."""
    if step < warmup_steps:
        return warmup_lr + step * (base_lr - warmup_lr) / warmup_steps
    t = step - warmup_steps
    if t >= total_steps:
        return min_lr
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * t / total_steps))


class WarmupCosineSchedule(LRScheduler):
    """Per-step warmup + cosine (`warmup_cosine_lr`) applied to each group's own peak lr.

    Call `step()` once per optimizer step; `last_epoch` counts optimizer steps taken. The state dict is plain numbers,
    so `accelerator.register_for_checkpointing(schedule)` makes it resumable.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: int,
        total_steps: int,
        warmup_lr: float = 1e-7,
        min_lr: float = 1e-6,
        last_epoch: int = -1,
    ):
        if warmup_steps < 0 or total_steps <= 0:
            raise ValueError(f"Need warmup_steps >= 0 and total_steps > 0, got {warmup_steps} and {total_steps}.")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.warmup_lr = float(warmup_lr)
        self.min_lr = float(min_lr)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [
            warmup_cosine_lr(self.last_epoch, base, self.warmup_steps, self.total_steps, self.warmup_lr, self.min_lr)
            for base in self.base_lrs
        ]


__all__ = [
    "NO_WEIGHT_DECAY_PATTERNS",
    "no_weight_decay_names",
    "layer_id",
    "build_parameter_groups",
    "create_optimizer",
    "warmup_cosine_lr",
    "WarmupCosineSchedule",
]
