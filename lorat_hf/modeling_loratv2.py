"""LoRATv2 streaming tracker on transformers' DINOv2-with-registers building blocks.

The sequence `[registers + template | search region 0 | search region 1 | ...]` is split into token chunks; chunk `j`
runs through stream `j`'s own copy of every Linear layer (its "expert": q/k/v/o projections and the MLP), while the
LayerNorms and LayerScales are shared. Attention is chunked-causal: chunk `j` attends to chunks `0..j` only, so a
chunk's keys and values never change once computed. That is what makes the KV cache exact: the template is encoded once
per target (`init_template`) and each frame runs only its search tokens (`track_region`).

Training runs every chunk in one pass with a block-causal attention mask through the configured attention backend
(SDPA by default). Each stream's LoRA lives in a peft adapter named after the stream on that stream's expert
(`lorat_hf.adapters_loratv2`), so peft merges, saves and loads each stream's adapter on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.dinov2_with_registers.modeling_dinov2_with_registers import (
    Dinov2WithRegistersAttention,
    Dinov2WithRegistersDropPath,
    Dinov2WithRegistersLayerScale,
    Dinov2WithRegistersMLP,
    Dinov2WithRegistersPatchEmbeddings,
    Dinov2WithRegistersSwiGLUFFN,
    eager_attention_forward,
)
from transformers.utils import ModelOutput

from .configuration_loratv2 import Loratv2Config
from .modeling_lora_tracker import LoraTrackerHead, template_token_type_ids_from_boxes

logger = logging.getLogger(__name__)

# Linear layers of one expert, as named inside `Loratv2StreamExpert` (the peft targets).
EXPERT_LINEAR_NAMES = ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj")
EXPERT_MLP_NAMES = {False: ("mlp.fc1", "mlp.fc2"), True: ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}


@dataclass
class Loratv2Output(ModelOutput):
    r"""Output of [`Loratv2Model`] (training pass or one streaming `track_region` call).

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            IoU-aware BCE + GIoU loss of the decoded region (fp32).
        score_map (`torch.FloatTensor` of shape `(batch_size, grid_height, grid_width)`):
            Target-presence logits of every cell of the decoded search region (the last one in training).
        pred_boxes (`torch.FloatTensor` of shape `(batch_size, grid_height, grid_width, 4)`):
            Box predicted at every cell, `xyxy` normalised by that region's crop size (may leave `[0, 1]`).
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, grid_height * grid_width, hidden_size)`):
            The decoded region's tokens after its own final LayerNorm (the head's input).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True`):
            The whole sequence after the embeddings and after every layer, each `(batch_size, total_tokens, hidden_size)`.
        loss_dict (`dict[str, torch.Tensor]`, *optional*): detached loss terms (`cls_loss`, `reg_loss`, `num_positives`).
    """

    loss: torch.FloatTensor | None = None
    score_map: torch.FloatTensor | None = None
    pred_boxes: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    loss_dict: dict[str, torch.Tensor] | None = None


class Loratv2KVCache:
    """Keys and values of every layer for a set of cache rows (one row per tracked target).

    `keys[l]` and `values[l]` are `(num_rows, num_heads, total_tokens, head_dim)`; chunk `j` of a row occupies token
    positions `[config.chunk_offsets[j], config.chunk_offsets[j] + config.chunk_sizes[j])`. A fresh cache is zeros.
    """

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]):
        if len(keys) != len(values):
            raise ValueError("A KV cache needs as many value tensors as key tensors (one pair per layer).")
        self.keys = keys
        self.values = values

    @classmethod
    def empty(
        cls,
        config: Loratv2Config,
        num_rows: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Loratv2KVCache:
        """A zero cache with `num_rows` rows for a model built from `config`."""
        backbone = config.dinov2_config
        head_dim = backbone.hidden_size // backbone.num_attention_heads
        shape = (num_rows, backbone.num_attention_heads, sum(config.chunk_sizes), head_dim)
        layers = backbone.num_hidden_layers
        return cls(
            [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)],
            [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)],
        )

    @property
    def num_rows(self) -> int:
        return self.keys[0].shape[0]

    def rows(self, rows: torch.Tensor | list[int]) -> Loratv2KVCache:
        """A copy holding only `rows` (in that order)."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.keys[0].device)
        return Loratv2KVCache([k[index] for k in self.keys], [v[index] for v in self.values])

    def write_rows(self, rows: torch.Tensor | list[int], source: Loratv2KVCache) -> None:
        """Copy every row of `source` into `rows` of this cache."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.keys[0].device)
        for own, other in zip(self.keys + self.values, source.keys + source.values, strict=True):
            own[index] = other.to(own.dtype)

    @classmethod
    def cat(cls, caches: list[Loratv2KVCache]) -> Loratv2KVCache:
        """Stack the rows of several caches (same model) into one."""
        layers = len(caches[0].keys)
        return cls(
            [torch.cat([c.keys[layer] for c in caches]) for layer in range(layers)],
            [torch.cat([c.values[layer] for c in caches]) for layer in range(layers)],
        )


def chunk_causal_mask(
    chunk_lengths: list[int], past_length: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor | None:
    """Additive mask `(1, 1, sum(chunk_lengths), past_length + sum(chunk_lengths))` for chunked causal attention.

    The queries of new chunk `c` see every past position and the new chunks `0..c`; later chunks get `finfo.min`.
    Returns None for a single chunk (nothing to mask).
    """
    if len(chunk_lengths) <= 1:
        return None
    total = sum(chunk_lengths)
    chunk_of_token = torch.repeat_interleave(
        torch.arange(len(chunk_lengths), device=device), torch.tensor(chunk_lengths, device=device)
    )
    blocked = chunk_of_token[None, :] > chunk_of_token[:, None]  # key chunk after query chunk
    mask = torch.zeros(total, past_length + total, dtype=dtype, device=device)
    mask[:, past_length:].masked_fill_(blocked, torch.finfo(dtype).min)
    return mask[None, None]


class Loratv2StreamExpert(nn.Module):
    """One stream's copy of a block's Linear layers: `attention.{q,k,v,o}_proj` and `mlp.*`."""

    def __init__(self, dinov2_config: Dinov2WithRegistersConfig):
        super().__init__()
        self.attention = Dinov2WithRegistersAttention(dinov2_config)
        if dinov2_config.use_swiglu_ffn:
            self.mlp = Dinov2WithRegistersSwiGLUFFN(dinov2_config)
        else:
            self.mlp = Dinov2WithRegistersMLP(dinov2_config)


class Loratv2Layer(GradientCheckpointingLayer):
    """A pre-norm ViT block whose Linear layers are routed by token chunk; norms and LayerScales are shared."""

    def __init__(self, config: Loratv2Config):
        super().__init__()
        self.config = config  # the model's config: it carries the attention backend (`_attn_implementation`)
        backbone = config.dinov2_config
        self.num_heads = backbone.num_attention_heads
        self.head_dim = backbone.hidden_size // backbone.num_attention_heads
        self.norm1 = nn.LayerNorm(backbone.hidden_size, eps=backbone.layer_norm_eps)
        self.layer_scale1 = Dinov2WithRegistersLayerScale(backbone)
        self.norm2 = nn.LayerNorm(backbone.hidden_size, eps=backbone.layer_norm_eps)
        self.layer_scale2 = Dinov2WithRegistersLayerScale(backbone)
        drop = backbone.drop_path_rate
        self.drop_path = Dinov2WithRegistersDropPath(drop) if drop > 0.0 else nn.Identity()
        self.experts = nn.ModuleList(Loratv2StreamExpert(backbone) for _ in range(len(config.stream_names)))

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        """`(B, N, D)` -> `(B, heads, N, head_dim)`."""
        batch, tokens, _ = states.shape
        return states.view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        streams: list[int],
        chunk_lengths: list[int],
        past_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        keys_values_only: bool = False,
    ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, torch.Tensor]]:
        """Run consecutive chunks (`chunk_lengths[c]` tokens through expert `streams[c]`).

        Args:
            hidden_states: `(B, N, D)`, the chunks concatenated.
            past_key_value: keys/values `(B, heads, P, head_dim)` of the earlier chunks these queries may attend to.
            attention_mask: additive mask `(1, 1, N, P + N)` (see `chunk_causal_mask`), None for one chunk.
            keys_values_only: compute only this layer's keys/values (the last layer of a cache-filling call).

        Returns: the updated `(B, N, D)` states (None with `keys_values_only`) and this layer's keys/values of the
        new tokens, `(B, heads, N, head_dim)` each.
        """
        experts = [self.experts[s] for s in streams]
        normed = self.norm1(hidden_states).split(chunk_lengths, dim=1)
        keys = self._heads(torch.cat([e.attention.k_proj(x) for e, x in zip(experts, normed, strict=True)], dim=1))
        values = self._heads(torch.cat([e.attention.v_proj(x) for e, x in zip(experts, normed, strict=True)], dim=1))
        if keys_values_only:
            return None, (keys, values)
        queries = self._heads(torch.cat([e.attention.q_proj(x) for e, x in zip(experts, normed, strict=True)], dim=1))
        all_keys, all_values = keys, values
        if past_key_value is not None and past_key_value[0].shape[2] > 0:
            all_keys = torch.cat((past_key_value[0], keys), dim=2)
            all_values = torch.cat((past_key_value[1], values), dim=2)

        attention_module = experts[0].attention
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        context, _ = attention_interface(
            attention_module,
            queries,
            all_keys,
            all_values,
            attention_mask,
            dropout=0.0 if not self.training else attention_module.attention_dropout,
            scaling=attention_module.scaling,
        )
        context = context.reshape(hidden_states.shape).split(chunk_lengths, dim=1)
        attended = torch.cat([e.attention.o_proj(x) for e, x in zip(experts, context, strict=True)], dim=1)
        hidden_states = hidden_states + self.drop_path(self.layer_scale1(attended))

        normed = self.norm2(hidden_states).split(chunk_lengths, dim=1)
        mlp_out = torch.cat([e.mlp(x) for e, x in zip(experts, normed, strict=True)], dim=1)
        hidden_states = hidden_states + self.drop_path(self.layer_scale2(mlp_out))
        return hidden_states, (keys, values)


class Loratv2Encoder(nn.Module):
    def __init__(self, config: Loratv2Config):
        super().__init__()
        self.layer = nn.ModuleList(Loratv2Layer(config) for _ in range(config.dinov2_config.num_hidden_layers))


class Loratv2Embeddings(nn.Module):
    """Patch embedding, the shared sliced positional table, register tokens and token-type embeddings."""

    def __init__(self, config: Loratv2Config):
        super().__init__()
        self.config = config
        dim = config.hidden_size
        table_w, table_h = config.position_grid_wh
        self.patch_embeddings = Dinov2WithRegistersPatchEmbeddings(config.dinov2_config)
        # The backbone's patch-position table (no cls slot); every image takes its top-left grid, no interpolation.
        self.position_embeddings = nn.Parameter(torch.zeros(1, table_h * table_w, dim), requires_grad=False)
        self.register_tokens = nn.Parameter(torch.zeros(1, config.num_register_tokens, dim))
        # Template: row 0 = background patch, row 1 = foreground patch. Each search region: one row for all tokens.
        self.template_token_type_embeddings = nn.Embedding(2, dim)
        self.search_token_type_embeddings = nn.ModuleList(
            nn.Embedding(1, dim) for _ in range(config.num_search_regions)
        )

    def positions(self, grid_wh: tuple[int, int]) -> torch.Tensor:
        """Top-left `grid_wh` slice of the positional table, `(1, h*w, D)` row-major."""
        table_w, table_h = self.config.position_grid_wh
        width, height = grid_wh
        dim = self.position_embeddings.shape[-1]
        table = self.position_embeddings.view(1, table_h, table_w, dim)
        return table[:, :height, :width, :].reshape(1, height * width, dim)

    def _patches(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        patch = self.config.patch_size
        grid_wh = (pixel_values.shape[-1] // patch, pixel_values.shape[-2] // patch)
        return self.patch_embeddings(pixel_values), grid_wh

    def embed_template(self, pixel_values: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """`(B, 3, Hz, Wz)` and `(B, zH, zW)` foreground mask -> chunk 0, `(B, registers + zH*zW, D)`."""
        tokens, grid_wh = self._patches(pixel_values)
        tokens = tokens + self.positions(grid_wh) + self.template_token_type_embeddings(token_type_ids.flatten(1))
        registers = self.register_tokens.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return torch.cat((registers, tokens), dim=1)

    def embed_search(self, region: int, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(B, 3, Hx, Wx)` crop of search region `region` -> its chunk, `(B, xH*xW, D)`."""
        tokens, grid_wh = self._patches(pixel_values)
        return tokens + self.positions(grid_wh) + self.search_token_type_embeddings[region].weight


class Loratv2PreTrainedModel(PreTrainedModel):
    config_class = Loratv2Config
    config: Loratv2Config
    base_model_prefix = "loratv2"
    main_input_name = "search_pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["Loratv2Layer", "Loratv2Embeddings"]
    _supports_sdpa = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, Loratv2Embeddings):
            nn.init.trunc_normal_(module.position_embeddings, mean=0.0, std=std)
            nn.init.trunc_normal_(module.register_tokens, mean=0.0, std=std)
        elif isinstance(module, Dinov2WithRegistersLayerScale):
            nn.init.constant_(module.lambda1, self.config.dinov2_config.layerscale_value)


class Loratv2Model(Loratv2PreTrainedModel):
    """LoRATv2: chunked-causal DINOv2-with-registers encoder with one expert per stream, per-region norms and heads.

    Training: `model(template_pixel_values, [search_0, search_1, ...], template_token_type_ids)` decodes the last
    region. Streaming: `init_template` once per target, then `track_region` (and, in phase 2, `update_region` for the
    reference region) per frame, each over a [`Loratv2KVCache`] with one row per target.
    """

    def __init__(self, config: Loratv2Config):
        super().__init__(config)
        self.embeddings = Loratv2Embeddings(config)
        self.encoder = Loratv2Encoder(config)
        eps = config.dinov2_config.layer_norm_eps
        self.layernorms = nn.ModuleList(nn.LayerNorm(config.hidden_size, eps=eps) for _ in config.search_sizes)
        self.heads = nn.ModuleList(LoraTrackerHead(config, grid_wh=grid) for grid in config.search_grids_wh)
        self.post_init()

    # ----- construction from backbone weights -----
    @classmethod
    def from_backbone(
        cls, backbone_name_or_path: str, variant: str | None = None, config: Loratv2Config | None = None, **hub_kwargs
    ) -> Loratv2Model:
        """Build a LoRATv2 tracker on a local or Hub `Dinov2WithRegistersModel`; only the new parts are initialised."""
        dtype = hub_kwargs.pop("dtype", None)
        backbone = Dinov2WithRegistersModel.from_pretrained(backbone_name_or_path, **hub_kwargs)
        if config is None:
            config = (
                Loratv2Config.from_variant(variant)
                if variant is not None
                else Loratv2Config.from_dinov2_config(backbone.config)
            )
        check_backbone_matches(config.dinov2_config, backbone.config, source=backbone_name_or_path)
        config.backbone_name_or_path = backbone_name_or_path
        model = cls(config)
        model.load_backbone_state_dict(backbone.state_dict())
        return model.to(dtype) if dtype is not None else model

    @torch.no_grad()
    def load_backbone_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy `Dinov2WithRegistersModel` weights into every stream's expert, the shared parts and each region norm.

        Accepts transformers names with or without the `dinov2_with_registers.` prefix; the cls/mask tokens and the
        cls slot of the positional table are ignored. Raises a `ValueError` listing missing or mis-shaped keys.
        """
        source = {k.removeprefix("dinov2_with_registers."): v for k, v in state_dict.items()}
        own = self.state_dict()
        targets: dict[str, list[str]] = {}
        for key in own:
            if key.startswith("encoder.layer."):
                parts = key.split(".")
                if parts[3] == "experts":  # encoder.layer.L.experts.E.<name> <- encoder.layer.L.<name>
                    targets.setdefault(".".join(parts[:3] + parts[5:]), []).append(key)
                else:
                    targets.setdefault(key, []).append(key)
            elif key.startswith("layernorms."):
                targets.setdefault("layernorm." + key.split(".", 2)[2], []).append(key)
            elif key.startswith(("embeddings.patch_embeddings.", "embeddings.register_tokens")):
                targets.setdefault(key, []).append(key)
        table = source.get("embeddings.position_embeddings")
        missing = sorted(k for k in targets if k not in source) + ([] if table is not None else ["position table"])
        mismatched = sorted(
            f"{k}: checkpoint {tuple(source[k].shape)} vs model {tuple(own[targets[k][0]].shape)}"
            for k in targets
            if k in source and source[k].shape != own[targets[k][0]].shape
        )
        table_w, table_h = self.config.position_grid_wh
        if table is not None and table.shape[1] - 1 != table_w * table_h:
            mismatched.append(
                f"embeddings.position_embeddings: {table.shape[1] - 1} patch positions vs {table_w}x{table_h}"
            )
        if missing or mismatched:
            raise ValueError(
                "The DINOv2-with-registers weights do not fit this LoRATv2 config:\n"
                + "".join(
                    f"  {t}: {items}\n" for t, items in (("missing", missing), ("mis-shaped", mismatched)) if items
                )
                + "Check the variant / num_heads / image_size of the config against the checkpoint."
            )
        for name, keys in targets.items():
            for key in keys:
                own[key].copy_(source[name])
        self.embeddings.position_embeddings.copy_(table[:, 1:])

    # ----- shared pieces -----
    def _template_ids(self, template_token_type_ids, template_boxes, device) -> torch.Tensor:
        if template_token_type_ids is not None:
            return template_token_type_ids
        if template_boxes is None:
            raise ValueError("Pass template_token_type_ids (B, zH, zW) or template_boxes (B, 4) xyxy template px.")
        return template_token_type_ids_from_boxes(
            template_boxes, self.config.template_grid_wh, self.config.patch_size
        ).to(device)

    def _check_image(self, name: str, pixel_values: torch.Tensor, size_wh: tuple[int, int]) -> None:
        width, height = size_wh
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3 or tuple(pixel_values.shape[2:]) != (height, width):
            raise ValueError(
                f"{name} must be (batch, 3, {height}, {width}) for this config, got {tuple(pixel_values.shape)}."
            )

    def _check_region(self, region: int) -> None:
        if not 0 <= region < self.config.num_search_regions:
            raise ValueError(
                f"Search region {region} does not exist; this model has {self.config.num_search_regions} "
                f"(indices 0..{self.config.num_search_regions - 1})."
            )

    def _decode(self, region: int, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Region `region`'s final tokens -> (normed tokens, score logits, boxes).

        Like the official tracker, the norm is the region's own and the head is always the last one (the only head
        the last training phase fits); in phase 1 the two coincide.
        """
        features = self.layernorms[region](tokens)
        score_map, boxes = self.heads[-1](features, grid_wh=self.config.search_grids_wh[region])
        return features, score_map, boxes

    # ----- training forward -----
    def forward(
        self,
        template_pixel_values: torch.Tensor,
        search_pixel_values: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...],
        template_token_type_ids: torch.Tensor | None = None,
        template_boxes: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        positive_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> Loratv2Output | tuple:
        r"""
        Args:
            template_pixel_values (`(B, 3, Hz, Wz)`): normalised template crops.
            search_pixel_values (list of `(B, 3, Hx_i, Wx_i)`): one normalised crop per search region, in region
                order (a single tensor is accepted when the model has one region).
            template_token_type_ids (`(B, zH, zW)` long, *optional*): 1 = target foreground, 0 = background.
            template_boxes (`(B, 4)`, *optional*): target `xyxy` in template-crop pixels, rasterised into
                `template_token_type_ids` when those are not given.
            labels (`(B, 4)`, *optional*): ground truth of the LAST region, `xyxy` normalised by its crop size.
            positive_mask (`(B, H, W)` bool, *optional*): positive cells of the last region.
        """
        config = self.config
        if isinstance(search_pixel_values, torch.Tensor):
            search_pixel_values = [search_pixel_values]
        if len(search_pixel_values) != config.num_search_regions:
            raise ValueError(
                f"search_pixel_values must hold one crop per search region ({config.num_search_regions}), "
                f"got {len(search_pixel_values)}."
            )
        token_type_ids = self._template_ids(template_token_type_ids, template_boxes, template_pixel_values.device)
        self._check_template(template_pixel_values, token_type_ids)
        for region, pixels in enumerate(search_pixel_values):
            self._check_image(f"search_pixel_values[{region}]", pixels, config.search_sizes_wh[region])

        chunks = [self.embeddings.embed_template(template_pixel_values, token_type_ids)]
        chunks += [self.embeddings.embed_search(i, pixels) for i, pixels in enumerate(search_pixel_values)]
        lengths = [chunk.shape[1] for chunk in chunks]
        streams = list(range(len(chunks)))
        hidden_states = torch.cat(chunks, dim=1)
        mask = chunk_causal_mask(lengths, 0, hidden_states.dtype, hidden_states.device)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.encoder.layer:
            hidden_states, _ = layer(hidden_states, streams, lengths, None, mask)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        last = config.num_search_regions - 1
        features, score_map, pred_boxes = self._decode(last, hidden_states[:, -lengths[-1] :])
        return self._output(score_map, pred_boxes, features, all_hidden_states, labels, positive_mask, return_dict)

    def _check_template(self, pixel_values: torch.Tensor, token_type_ids: torch.Tensor) -> None:
        self._check_image("template_pixel_values", pixel_values, self.config.template_size_wh)
        zw, zh = self.config.template_grid_wh
        if tuple(token_type_ids.shape) != (pixel_values.shape[0], zh, zw):
            raise ValueError(
                f"template_token_type_ids must be (batch, {zh}, {zw}), got {tuple(token_type_ids.shape)}."
            )

    def _output(self, score_map, pred_boxes, features, hidden_states, labels, positive_mask, return_dict):
        loss, loss_dict = None, None
        if labels is not None:
            from .loss_lora_tracker import lora_tracker_loss

            loss, loss_dict = lora_tracker_loss(score_map, pred_boxes, labels, positive_mask=positive_mask)
        output = Loratv2Output(
            loss=loss,
            score_map=score_map,
            pred_boxes=pred_boxes,
            last_hidden_state=features,
            hidden_states=hidden_states,
            loss_dict=loss_dict,
        )
        return output if return_dict else output.to_tuple()

    # ----- streaming (KV cache) -----
    def new_kv_cache(self, num_rows: int, dtype: torch.dtype | None = None) -> Loratv2KVCache:
        """A zero KV cache with `num_rows` rows on this model's device (dtype: the model's)."""
        return Loratv2KVCache.empty(self.config, num_rows, dtype=dtype or self.dtype, device=self.device)

    def _run_chunk(
        self,
        chunk: int,
        tokens: torch.Tensor,
        kv_cache: Loratv2KVCache,
        cache_rows: torch.Tensor | list[int] | None,
        decode: bool,
    ) -> torch.Tensor | None:
        """Run chunk `chunk` of a batch over the cache rows `cache_rows[b]`, writing its keys/values there."""
        batch = tokens.shape[0]
        rows = torch.arange(batch) if cache_rows is None else torch.as_tensor(cache_rows, dtype=torch.long)
        rows = rows.to(kv_cache.keys[0].device)
        if rows.shape != (batch,):
            raise ValueError(
                f"cache_rows must hold one cache row per batch element ({batch}), got {tuple(rows.shape)}."
            )
        if len(set(rows.tolist())) != batch or int(rows.max()) >= kv_cache.num_rows or int(rows.min()) < 0:
            raise ValueError(f"cache_rows {rows.tolist()} must be distinct rows of the {kv_cache.num_rows}-row cache.")
        start, length = self.config.chunk_offsets[chunk], self.config.chunk_sizes[chunk]
        past_keys = [keys[rows, :, :start] for keys in kv_cache.keys]
        past_values = [values[rows, :, :start] for values in kv_cache.values]
        hidden_states, keys, values = self.encode_chunk(chunk, tokens, past_keys, past_values, decode)
        for index in range(len(keys)):
            kv_cache.keys[index][rows, :, start : start + length] = keys[index].to(kv_cache.keys[index].dtype)
            kv_cache.values[index][rows, :, start : start + length] = values[index].to(kv_cache.values[index].dtype)
        return hidden_states

    def encode_chunk(
        self,
        chunk: int,
        tokens: torch.Tensor,
        past_keys: list[torch.Tensor] | None = None,
        past_values: list[torch.Tensor] | None = None,
        decode: bool = True,
    ) -> tuple[torch.Tensor | None, list[torch.Tensor], list[torch.Tensor]]:
        """Run chunk `chunk`'s embedded tokens `(B, N, D)` through every layer over explicit earlier keys/values.

        `past_keys[l]` / `past_values[l]` are `(B, heads, P, head_dim)`: the chunks before `chunk` (None for the
        template: nothing comes before it). Returns the final tokens `(B, N, D)` (None when `decode` is False: the last layer then computes only
        its keys/values) and this chunk's keys and values per layer, `(B, heads, N, head_dim)` each. Pure: no cache is
        written (the KV-cache calls and the ONNX export build on it).
        """
        length = tokens.shape[1]
        layers = self.encoder.layer
        hidden_states, all_keys, all_values = tokens, [], []
        for index, layer in enumerate(layers):
            kv_only = not decode and index == len(layers) - 1
            past = None if past_keys is None else (past_keys[index], past_values[index])
            hidden_states, (keys, values) = layer(hidden_states, [chunk], [length], past, None, kv_only)
            all_keys.append(keys)
            all_values.append(values)
        return hidden_states, all_keys, all_values

    def init_template(
        self,
        template_pixel_values: torch.Tensor,
        kv_cache: Loratv2KVCache,
        template_token_type_ids: torch.Tensor | None = None,
        template_boxes: torch.Tensor | None = None,
        cache_rows: torch.Tensor | list[int] | None = None,
    ) -> None:
        """Encode registers + template (stream 0) once and store their keys/values in `cache_rows` (default 0..B-1)."""
        ids = self._template_ids(template_token_type_ids, template_boxes, template_pixel_values.device)
        self._check_template(template_pixel_values, ids)
        tokens = self.embeddings.embed_template(template_pixel_values, ids)
        self._run_chunk(0, tokens, kv_cache, cache_rows, decode=False)

    def update_region(
        self,
        region: int,
        search_pixel_values: torch.Tensor,
        kv_cache: Loratv2KVCache,
        cache_rows: torch.Tensor | list[int] | None = None,
    ) -> None:
        """Encode a crop as search region `region` and store its keys/values (e.g. phase 2's reference region)."""
        self._check_region(region)
        self._check_image("search_pixel_values", search_pixel_values, self.config.search_sizes_wh[region])
        tokens = self.embeddings.embed_search(region, search_pixel_values)
        self._run_chunk(region + 1, tokens, kv_cache, cache_rows, decode=False)

    def track_region(
        self,
        region: int,
        search_pixel_values: torch.Tensor,
        kv_cache: Loratv2KVCache,
        cache_rows: torch.Tensor | list[int] | None = None,
        return_dict: bool = True,
    ) -> Loratv2Output | tuple:
        """Encode a crop as search region `region` over the cached earlier chunks and decode it.

        Returns score logits `(B, h, w)` and normalised boxes `(B, h, w, 4)` of that region; its keys/values are
        stored too (so tracking region 0 also fills the reference slot, as `update_region(0)` would).
        """
        self._check_region(region)
        self._check_image("search_pixel_values", search_pixel_values, self.config.search_sizes_wh[region])
        tokens = self.embeddings.embed_search(region, search_pixel_values)
        hidden_states = self._run_chunk(region + 1, tokens, kv_cache, cache_rows, decode=True)
        features, score_map, pred_boxes = self._decode(region, hidden_states)
        return self._output(score_map, pred_boxes, features, None, None, None, return_dict)


def check_backbone_matches(
    expected: Dinov2WithRegistersConfig, actual: Dinov2WithRegistersConfig, source: str = "the checkpoint"
) -> None:
    """Raise a `ValueError` naming each backbone field where a LoRATv2 config and a backbone config disagree."""
    fields = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "use_swiglu_ffn",
        "patch_size",
        "mlp_ratio",
        "num_register_tokens",
        "image_size",
    )
    diffs = [
        f"{f}: config {getattr(expected, f)} vs {getattr(actual, f)}"
        for f in fields
        if getattr(expected, f) != getattr(actual, f)
    ]
    if diffs:
        raise ValueError(f"The backbone in {source} does not match the LoRATv2 config: " + "; ".join(diffs))


def expert_linear_names(config: Loratv2Config) -> tuple[str, ...]:
    """Names of the Linear layers inside one `Loratv2StreamExpert` (what each stream's LoRA adapts)."""
    return EXPERT_LINEAR_NAMES + EXPERT_MLP_NAMES[bool(config.dinov2_config.use_swiglu_ffn)]


__all__ = [
    "Loratv2Model",
    "Loratv2PreTrainedModel",
    "Loratv2Output",
    "Loratv2KVCache",
    "Loratv2Layer",
    "Loratv2Embeddings",
    "chunk_causal_mask",
    "expert_linear_names",
]
