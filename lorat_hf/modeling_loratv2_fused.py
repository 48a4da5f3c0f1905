"""Inference-optimised layers for a merged `Loratv2Model`: every stream expert with one fused qkv projection.

A merged LoRATv2 layer holds one expert per stream (its adapter merged into its own copy of the Linear weights). The
fused layer keeps that routing and gives each expert the v1 fused pieces (`FusedDinov2Attention`: one `D -> 3D`
multiply; `FusedSwiGLUFFN`: one `D -> 2H` gate/up multiply), then attends through SDPA with the chunk-causal mask.
Same signature and outputs as `Loratv2Layer` (training pass, `init_template`, `update_region`, `track_region`), same
state-dict keys (the fused tensors save and load as the standard per-expert `q_proj` / `k_proj` / `v_proj` keys).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .modeling_lora_tracker_fused import FusedDinov2Attention, check_no_adapters, fuse_mlp
from .modeling_loratv2 import Loratv2Layer, Loratv2Model


class FusedLoratv2Expert(nn.Module):
    """One stream's merged Linear layers, fused: `attention` (`qkv_proj`, `o_proj`) and `mlp`."""

    def __init__(self, expert: nn.Module, num_heads: int):
        super().__init__()
        self.attention = FusedDinov2Attention.from_attention(expert.attention, num_heads)
        self.mlp = fuse_mlp(expert.mlp)


class FusedLoratv2Layer(nn.Module):
    """Inference-only `Loratv2Layer`: token chunks routed to fused stream experts; no drop path."""

    def __init__(self, layer: Loratv2Layer):
        super().__init__()
        self.num_heads = layer.num_heads
        self.norm1 = layer.norm1
        self.layer_scale1 = layer.layer_scale1
        self.norm2 = layer.norm2
        self.layer_scale2 = layer.layer_scale2
        self.experts = nn.ModuleList(FusedLoratv2Expert(expert, layer.num_heads) for expert in layer.experts)
        self.requires_grad_(False)

    def forward(
        self,
        hidden_states: torch.Tensor,
        streams: list[int],
        chunk_lengths: list[int],
        past_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        keys_values_only: bool = False,
    ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, torch.Tensor]]:
        """As `Loratv2Layer.forward`: chunks `(B, N, D)` -> states `(B, N, D)` (None with `keys_values_only`) and the
        new tokens' keys/values `(B, heads, N, head_dim)`."""
        experts = [self.experts[stream] for stream in streams]
        normed = self.norm1(hidden_states).split(chunk_lengths, dim=1)
        if keys_values_only:
            pairs = [e.attention.keys_values(x) for e, x in zip(experts, normed, strict=True)]
            return None, (_cat_tokens([p[0] for p in pairs]), _cat_tokens([p[1] for p in pairs]))
        triples = [e.attention.queries_keys_values(x) for e, x in zip(experts, normed, strict=True)]
        queries, keys, values = (_cat_tokens([t[i] for t in triples]) for i in range(3))
        all_keys, all_values = keys, values
        if past_key_value is not None and past_key_value[0].shape[2] > 0:
            all_keys = torch.cat((past_key_value[0], keys), dim=2)
            all_values = torch.cat((past_key_value[1], values), dim=2)
        context = F.scaled_dot_product_attention(queries, all_keys, all_values, attn_mask=attention_mask)
        context = context.transpose(1, 2).reshape(hidden_states.shape).split(chunk_lengths, dim=1)
        attended = _cat_tokens([e.attention.o_proj(x) for e, x in zip(experts, context, strict=True)], dim=1)
        hidden_states = hidden_states + self.layer_scale1(attended)
        normed = self.norm2(hidden_states).split(chunk_lengths, dim=1)
        mlp_out = _cat_tokens([e.mlp(x) for e, x in zip(experts, normed, strict=True)], dim=1)
        return hidden_states + self.layer_scale2(mlp_out), (keys, values)


def _cat_tokens(parts: list[torch.Tensor], dim: int = 2) -> torch.Tensor:
    """Concatenate per-chunk tensors along the token axis (no copy for a single chunk, the streaming case)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


@torch.no_grad()
def fuse_loratv2_for_inference(model: Loratv2Model) -> Loratv2Model:
    """Swap every encoder layer of a merged `Loratv2Model` for a `FusedLoratv2Layer`, in place; eval mode, no
    gradients. Use `lorat_hf.modeling_lora_tracker_fused.fuse_for_inference`, which takes either model family."""
    layers = model.encoder.layer
    if all(isinstance(layer, FusedLoratv2Layer) for layer in layers):
        return model.eval()
    for index, layer in enumerate(layers):
        check_no_adapters(layer, f"encoder.layer.{index}", Loratv2Layer)
        layers[index] = FusedLoratv2Layer(layer)
    model.requires_grad_(False)
    return model.eval()


__all__ = ["FusedLoratv2Expert", "FusedLoratv2Layer", "fuse_loratv2_for_inference"]
