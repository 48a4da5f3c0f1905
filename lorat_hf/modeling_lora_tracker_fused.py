"""Inference-optimised layers for a merged `LoraTrackerModel`: one fused qkv projection per attention.

transformers' `Dinov2Layer` computes q, k and v with three `D -> D` matrix multiplies; the official DINOv2 uses one
`D -> 3D` multiply, which is faster at every batch size (fewer, larger GEMMs and one read of the activations). SwiGLU
MLPs likewise get one `D -> 2H` gate/up multiply. `fuse_for_inference(model)` swaps every encoder layer of a merged
tracker for a `FusedDinov2Layer` in place; the arithmetic is the same (concatenated weights), so the outputs agree with
the unfused model to float rounding. On the CPU, the fused layers' Linear layers run through oneDNN's linear kernel
(`inference_linear`; the fc1 GELU fused into it), which is faster than the MKL GEMM behind `F.linear` on this project's
AMD CPUs, and each layer scale and residual add is one `addcmul`. A merged `Loratv2Model` is fused the same way, one fused copy per stream expert
(`lorat_hf.modeling_loratv2_fused`).

The fused model stays state-dict compatible: `state_dict()` splits the fused tensors back into the standard
`q_proj` / `k_proj` / `v_proj` (`gate_proj` / `up_proj`) keys and `load_state_dict` accepts those keys, so
`save_pretrained` of a fused model writes an ordinary checkpoint. Training and peft use the unfused layers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import GELUActivation
from transformers.models.dinov2.modeling_dinov2 import Dinov2Layer, Dinov2MLP, Dinov2SwiGLUFFN
from transformers.models.dinov2_with_registers.modeling_dinov2_with_registers import (
    Dinov2WithRegistersMLP,
    Dinov2WithRegistersSwiGLUFFN,
)


def _split_fused_keys(
    state_dict: dict[str, torch.Tensor], prefix: str, fused_name: str, part_names: tuple[str, ...]
) -> None:
    """Replace `{prefix}{fused_name}.weight/bias` by one key per part (`{prefix}{part}.weight/bias`), in place and at
    the fused key's position (the module's keys are the last ones when its state-dict hook runs)."""
    entries = [(key, state_dict.pop(key)) for key in [key for key in state_dict if key.startswith(prefix)]]
    fused = {
        key[len(prefix) + len(fused_name) + 1 :]: value
        for key, value in entries
        if key.startswith(prefix + fused_name + ".")
    }
    for key, value in entries:
        if not key.startswith(prefix + fused_name + "."):
            state_dict[key] = value
        elif fused:  # at the first fused key: every part's weight, then bias
            for index, part_name in enumerate(part_names):
                for kind, tensor in fused.items():
                    # clone: no shared storage, which safetensors refuses
                    state_dict[f"{prefix}{part_name}.{kind}"] = tensor.chunk(len(part_names))[index].clone()
            fused = {}


def _join_part_keys(
    state_dict: dict[str, torch.Tensor], prefix: str, fused_name: str, part_names: tuple[str, ...]
) -> None:
    """Inverse of `_split_fused_keys`: concatenate the parts' keys into the fused key, when all of them are present."""
    for suffix in ("weight", "bias"):
        keys = [f"{prefix}{name}.{suffix}" for name in part_names]
        if all(key in state_dict for key in keys):
            state_dict[f"{prefix}{fused_name}.{suffix}"] = torch.cat([state_dict.pop(key) for key in keys])


def _onednn_linear_applies(hidden_states: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether oneDNN's linear kernel can run this product: plain CPU tensors (not traced, exported or compiled), fp32
    or bf16, no gradient wanted."""
    return (
        type(hidden_states) is torch.Tensor  # not a tracing subclass (FakeTensor, FunctionalTensor, ...)
        and type(weight) in (torch.Tensor, nn.Parameter)
        and hidden_states.device.type == "cpu"
        and hidden_states.dtype == weight.dtype
        and hidden_states.dtype in (torch.float32, torch.bfloat16)
        and not (torch.is_grad_enabled() and (hidden_states.requires_grad or weight.requires_grad))
        and torch.backends.mkldnn.is_available()
    )


def inference_linear(
    hidden_states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool = False
) -> torch.Tensor:
    """`hidden_states @ weight.T + bias` (then the exact, erf GELU when `gelu`): `(..., in)` -> `(..., out)`.

    On the CPU this is oneDNN's linear kernel with the bias (and GELU) applied in its epilogue; it agrees with
    `F.linear` to float rounding. Anywhere else (GPU, gradients, tracing for ONNX export or torch.compile) it is
    `F.linear` (and `F.gelu`).
    """
    if _onednn_linear_applies(hidden_states, weight):
        return torch.ops.mkldnn._linear_pointwise(hidden_states, weight, bias, "gelu" if gelu else "none", [], "none")
    output = F.linear(hidden_states, weight, bias)
    return F.gelu(output) if gelu else output


class _FusedLinearStateDictMixin:
    """Save and load a fused Linear under the keys of the separate Linears it replaces."""

    fused_name: str
    part_names: tuple[str, ...]

    def _register_split_state_dict_hooks(self) -> None:
        self.register_state_dict_post_hook(self._split_state_dict_hook)
        self.register_load_state_dict_pre_hook(self._join_state_dict_hook)

    @staticmethod
    def _split_state_dict_hook(module: Any, state_dict: dict, prefix: str, local_metadata: dict) -> None:
        _split_fused_keys(state_dict, prefix, module.fused_name, module.part_names)

    @staticmethod
    def _join_state_dict_hook(module: Any, state_dict: dict, prefix: str, *args: Any) -> None:
        _join_part_keys(state_dict, prefix, module.fused_name, module.part_names)


class FusedDinov2Attention(_FusedLinearStateDictMixin, nn.Module):
    """Multi-head self-attention with one `qkv` projection `D -> 3D` (rows: q, k, v) and `o_proj`, through SDPA."""

    fused_name = "qkv_proj"
    part_names = ("q_proj", "k_proj", "v_proj")

    def __init__(self, hidden_size: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}.")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = nn.Linear(hidden_size, 3 * hidden_size, bias=qkv_bias)
        self.o_proj = nn.Linear(hidden_size, hidden_size, bias=True)
        self._register_split_state_dict_hooks()

    @classmethod
    def from_attention(cls, attention: nn.Module, num_heads: int) -> FusedDinov2Attention:
        """The fused copy of a transformers DINOv2 attention (`q_proj`, `k_proj`, `v_proj`, `o_proj`); `o_proj` is
        shared, not copied."""
        projections = (attention.q_proj, attention.k_proj, attention.v_proj)
        fused = cls(attention.q_proj.in_features, num_heads, qkv_bias=attention.q_proj.bias is not None)
        with torch.no_grad():
            fused.to(device=attention.q_proj.weight.device, dtype=attention.q_proj.weight.dtype)
            fused.qkv_proj.weight.copy_(torch.cat([p.weight for p in projections]))
            if attention.q_proj.bias is not None:
                fused.qkv_proj.bias.copy_(torch.cat([p.bias for p in projections]))
        fused.o_proj = attention.o_proj
        return fused

    def _heads(self, states: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
        """`(B, N, parts * D)` -> `parts` tensors `(B, heads, N, head_dim)`."""
        batch, tokens, _ = states.shape
        return states.view(batch, tokens, parts, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def queries_keys_values(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(B, N, D)` -> queries, keys, values, each `(B, heads, N, head_dim)`, from one `D -> 3D` multiply."""
        return self._heads(inference_linear(hidden_states, self.qkv_proj.weight, self.qkv_proj.bias), 3)

    def keys_values(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, N, D)` -> keys and values only, each `(B, heads, N, head_dim)` (one `D -> 2D` multiply)."""
        dim = self.num_heads * self.head_dim
        bias = None if self.qkv_proj.bias is None else self.qkv_proj.bias[dim:]
        return self._heads(inference_linear(hidden_states, self.qkv_proj.weight[dim:], bias), 2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(B, N, D)` -> `(B, N, D)`."""
        batch, tokens, dim = hidden_states.shape
        query, key, value = self.queries_keys_values(hidden_states)
        attended = F.scaled_dot_product_attention(query, key, value)
        attended = attended.transpose(1, 2).reshape(batch, tokens, dim)
        return inference_linear(attended, self.o_proj.weight, self.o_proj.bias)


class FusedSwiGLUFFN(_FusedLinearStateDictMixin, nn.Module):
    """SwiGLU MLP with one `gate_up_proj` `D -> 2H` (rows: gate, up): `down(silu(gate) * up)`."""

    fused_name = "gate_up_proj"
    part_names = ("gate_proj", "up_proj")

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_up_proj = nn.Linear(hidden_size, 2 * intermediate_size, bias=True)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=True)
        self._register_split_state_dict_hooks()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gate, up = inference_linear(hidden_states, self.gate_up_proj.weight, self.gate_up_proj.bias).chunk(2, dim=-1)
        return inference_linear(F.silu(gate) * up, self.down_proj.weight, self.down_proj.bias)


class FusedGeluMLP(nn.Module):
    """A DINOv2 GELU MLP, `fc2(act(fc1(x)))`, with the exact GELU computed in fc1's linear kernel (same state dict)."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.fc1, self.fc2, self.activation_fn = mlp.fc1, mlp.fc2, mlp.activation_fn
        activation = self.activation_fn
        self.gelu_in_fc1 = (isinstance(activation, GELUActivation) and activation.act is F.gelu) or (
            isinstance(activation, nn.GELU) and activation.approximate == "none"
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(B, N, D)` -> `(B, N, D)`."""
        if self.gelu_in_fc1:
            hidden_states = inference_linear(hidden_states, self.fc1.weight, self.fc1.bias, gelu=True)
        else:
            hidden_states = self.activation_fn(inference_linear(hidden_states, self.fc1.weight, self.fc1.bias))
        return inference_linear(hidden_states, self.fc2.weight, self.fc2.bias)


class FusedDinov2Layer(nn.Module):
    """Inference-only pre-norm ViT block with the state dict of a `Dinov2Layer`:
    `x + ls1 * attn(norm1(x))`, then `x + ls2 * mlp(norm2(x))` (no drop path, no attention mask)."""

    def __init__(self, layer: Dinov2Layer, num_heads: int):
        super().__init__()
        self.norm1 = layer.norm1
        self.attention = FusedDinov2Attention.from_attention(layer.attention, num_heads)
        self.layer_scale1 = layer.layer_scale1
        self.norm2 = layer.norm2
        self.mlp = fuse_mlp(layer.mlp)
        self.layer_scale2 = layer.layer_scale2
        self.requires_grad_(False)

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """`(B, N, D)` -> `(B, N, D)`."""
        # x + ls * f(x) in one pass (addcmul) instead of a multiply and an add
        hidden_states = torch.addcmul(
            hidden_states, self.attention(self.norm1(hidden_states)), self.layer_scale1.lambda1
        )
        return torch.addcmul(hidden_states, self.mlp(self.norm2(hidden_states)), self.layer_scale2.lambda1)


def fuse_mlp(mlp: nn.Module) -> nn.Module:
    """A `FusedSwiGLUFFN` copy of a SwiGLU MLP (DINOv2 or DINOv2-with-registers; `down_proj` shared), or a
    `FusedGeluMLP` around a GELU MLP (its Linear layers shared)."""
    if isinstance(mlp, (Dinov2SwiGLUFFN, Dinov2WithRegistersSwiGLUFFN)):
        fused = FusedSwiGLUFFN(mlp.gate_proj.in_features, mlp.gate_proj.out_features)
        with torch.no_grad():
            fused.to(device=mlp.gate_proj.weight.device, dtype=mlp.gate_proj.weight.dtype)
            fused.gate_up_proj.weight.copy_(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))
            fused.gate_up_proj.bias.copy_(torch.cat([mlp.gate_proj.bias, mlp.up_proj.bias]))
            fused.down_proj = mlp.down_proj
        return fused
    if isinstance(mlp, (Dinov2MLP, Dinov2WithRegistersMLP)):
        return FusedGeluMLP(mlp)
    raise TypeError(f"Cannot fuse an MLP of type {type(mlp).__name__}; expected a DINOv2 MLP or SwiGLU FFN.")


def check_no_adapters(layer: nn.Module, name: str, layer_class: type) -> None:
    """Raise a `TypeError` when `layer` (called `name`) is not a plain `layer_class` (e.g. it holds LoRA layers)."""
    adapted = [child for child, module in layer.named_modules() if hasattr(module, "base_layer")]
    if not isinstance(layer, layer_class) or adapted:
        raise TypeError(
            f"{name} has adapters attached ({', '.join(adapted) or type(layer).__name__}); merge them first "
            "(model.merge_and_unload())."
        )


def is_fused(model: nn.Module) -> bool:
    """Whether `model`'s encoder layers are fused (`FusedDinov2Layer`s, or `FusedLoratv2Layer`s for LoRATv2)."""
    from .modeling_loratv2_fused import FusedLoratv2Layer

    layers = getattr(getattr(model, "encoder", None), "layer", None)
    return bool(layers) and all(isinstance(layer, (FusedDinov2Layer, FusedLoratv2Layer)) for layer in layers)


@torch.no_grad()
def fuse_for_inference(model: nn.Module) -> nn.Module:
    """Swap every encoder layer of a merged `LoraTrackerModel` for a `FusedDinov2Layer` (of a merged `Loratv2Model`
    for a `FusedLoratv2Layer`: every stream's expert fused), in place; returns the model in eval mode with gradients
    off. A fused model is returned as it is.

    Raises a `TypeError` for a PeftModel (merge it first: `model.merge_and_unload()`, or load with `merge=True`): its
    LoRA layers must stay separate to train.
    """
    from .modeling_lora_tracker import LoraTrackerModel
    from .modeling_loratv2 import Loratv2Model

    if isinstance(model, Loratv2Model):
        from .modeling_loratv2_fused import fuse_loratv2_for_inference

        return fuse_loratv2_for_inference(model)
    if not isinstance(model, LoraTrackerModel):
        raise TypeError(
            f"fuse_for_inference takes a merged LoraTrackerModel or Loratv2Model, got {type(model).__name__}; merge "
            "LoRA first "
            "(model.merge_and_unload(), or load_tracker_model(path, merge=True))."
        )
    if is_fused(model):
        return model.eval()
    num_heads = model.config.dinov2_config.num_attention_heads
    layers = model.encoder.layer
    for index, layer in enumerate(layers):
        check_no_adapters(layer, f"encoder.layer.{index}", Dinov2Layer)
        layers[index] = FusedDinov2Layer(layer, num_heads)
    model.requires_grad_(False)
    return model.eval()


__all__ = [
    "FusedDinov2Layer",
    "FusedDinov2Attention",
    "FusedSwiGLUFFN",
    "FusedGeluMLP",
    "inference_linear",
    "fuse_for_inference",
    "fuse_mlp",
    "is_fused",
]
