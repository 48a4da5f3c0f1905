"""LoRAT one-stream tracker on transformers' DINOv2 building blocks.

Template and search crops are patch-embedded by DINOv2's own patch embedding, share ONE positional embedding (DINOv2's
table resampled to the search grid; the template takes its top-left slice), get a token-type embedding, run jointly
through every Dinov2 layer, and the search tokens feed an MLP-only anchor-free head.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Dinov2Config, Dinov2Model, PreTrainedModel
from transformers.models.dinov2.modeling_dinov2 import Dinov2Encoder, Dinov2PatchEmbeddings
from transformers.utils import ModelOutput

from .configuration_lora_tracker import LoraTrackerConfig
from .labels import SEARCH_TOKEN, template_token_type_ids_from_boxes

logger = logging.getLogger(__name__)


@dataclass
class LoraTrackerOutput(ModelOutput):
    r"""Output of [`LoraTrackerModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            IoU-aware BCE + GIoU loss (fp32).
        score_map (`torch.FloatTensor` of shape `(batch_size, grid_height, grid_width)`):
            Target-presence logits of every search cell.
        pred_boxes (`torch.FloatTensor` of shape `(batch_size, grid_height, grid_width, 4)`):
            Box predicted at every cell, `xyxy` normalised by the search-crop size (may extend beyond `[0, 1]`).
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, grid_height * grid_width, hidden_size)`):
            Final-layernorm features of the search tokens (the head's input).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True`):
            Joint `[template; search]` tokens after the embeddings and after every layer,
            each `(batch_size, template_tokens + search_tokens, hidden_size)`.
        loss_dict (`dict[str, torch.Tensor]`, *optional*): detached loss terms (`cls_loss`, `reg_loss`, `num_positives`).
    """

    loss: torch.FloatTensor | None = None
    score_map: torch.FloatTensor | None = None
    pred_boxes: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    loss_dict: dict[str, torch.Tensor] | None = None


def resample_position_embeddings(table: torch.Tensor, grid_wh: tuple[int, int]) -> torch.Tensor:
    """Resample a square DINOv2 patch position table to a `grid_wh` grid.

    `table` is `(1, S*S, D)` (patch positions only, no cls entry). Bicubic, `size=` mode (no 0.1 offset),
    `align_corners=False`, in fp32, exactly as the official LoRAT wrapper does. Returns `(1, H*W, D)` in the input dtype.
    """
    num_positions, dim = table.shape[1], table.shape[2]
    side = int(round(num_positions**0.5))
    if side * side != num_positions:
        raise ValueError(f"Expected a square position table, got {num_positions} positions.")
    width, height = grid_wh
    if (side, side) == (height, width):
        return table
    grid = table.reshape(1, side, side, dim).permute(0, 3, 1, 2).to(torch.float32)
    grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, height * width, dim).to(table.dtype)


class LoraTrackerEmbeddings(nn.Module):
    """Patch embedding (DINOv2's), the shared positional embedding and the token-type embedding."""

    def __init__(self, config: LoraTrackerConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = Dinov2PatchEmbeddings(config.dinov2_config)
        grid_w, grid_h = config.search_grid_wh
        # DINOv2's table resampled to the SEARCH grid; frozen. The template uses its top-left slice.
        self.position_embeddings = nn.Parameter(
            torch.zeros(1, grid_h * grid_w, config.hidden_size), requires_grad=False
        )
        self.token_type_embeddings = nn.Embedding(config.num_token_types, config.hidden_size)

    def embed_template(self, pixel_values: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """`(B, 3, Hz, Wz)`, `(B, zH, zW)` -> `(B, zH*zW, D)` template tokens."""
        (zw, zh), (xw, xh) = self.config.template_grid_wh, self.config.search_grid_wh
        tokens = self.patch_embeddings(pixel_values)
        dim = tokens.shape[-1]
        positions = self.position_embeddings.view(1, xh, xw, dim)[:, :zh, :zw, :].reshape(1, zh * zw, dim)
        tokens = tokens + positions
        return tokens + self.token_type_embeddings(token_type_ids.flatten(1))

    def embed_search(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(B, 3, Hx, Wx)` -> `(B, xH*xW, D)` search tokens."""
        tokens = self.patch_embeddings(pixel_values) + self.position_embeddings
        search_type = torch.full((1, 1), SEARCH_TOKEN, dtype=torch.long, device=tokens.device)
        return tokens + self.token_type_embeddings(search_type)


class LoraTrackerMlp(nn.Module):
    """`num_layers` Linear layers with exact GELU in between, applied per token."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, num_layers: int):
        super().__init__()
        dims = [in_features] + [hidden_features] * (num_layers - 1) + [out_features]
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(num_layers))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for index, layer in enumerate(self.layers):
            hidden_states = layer(hidden_states)
            if index < len(self.layers) - 1:
                hidden_states = F.gelu(hidden_states)
        return hidden_states


class LoraTrackerHead(nn.Module):
    """Anchor-free head: score logits and sigmoid l/t/r/b distances from each cell centre (normalised units)."""

    def __init__(self, config: LoraTrackerConfig, grid_wh: tuple[int, int] | None = None):
        super().__init__()
        dim = config.hidden_size
        hidden = config.head_hidden_size or dim
        self.grid_wh = tuple(grid_wh) if grid_wh is not None else config.search_grid_wh
        self.score_mlp = LoraTrackerMlp(dim, hidden, 1, config.head_num_layers)
        self.box_mlp = LoraTrackerMlp(dim, hidden, 4, config.head_num_layers)

    def cell_centers(self, device: torch.device, grid_wh: tuple[int, int] | None = None) -> torch.Tensor:
        """`(H, W, 2)` normalised `(x, y)` centres of the response cells: `((i + 0.5) / W, (j + 0.5) / H)`, fp32."""
        width, height = grid_wh or self.grid_wh
        xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
        ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
        return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)

    def forward(
        self, features: torch.Tensor, grid_wh: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, H*W, D)` -> score logits `(B, H, W)` and normalised `xyxy` boxes `(B, H, W, 4)`, both fp32.

        `grid_wh` overrides the configured grid (a head applied to another region's tokens).
        """
        width, height = grid_wh or self.grid_wh
        batch = features.shape[0]
        score_map = self.score_mlp(features).float().view(batch, height, width)
        distances = self.box_mlp(features).float().sigmoid().view(batch, height, width, 4)
        centers = self.cell_centers(distances.device, (width, height))
        boxes = torch.cat((centers - distances[..., :2], centers + distances[..., 2:]), dim=-1)
        return score_map, boxes


class LoraTrackerPreTrainedModel(PreTrainedModel):
    config_class = LoraTrackerConfig
    config: LoraTrackerConfig
    base_model_prefix = "lora_tracker"
    main_input_name = "search_pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["Dinov2Layer", "LoraTrackerEmbeddings"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @property
    def is_gradient_checkpointing(self) -> bool:
        """transformers' deprecated alias, still read by peft whenever it wraps a model: answered without the
        FutureWarning it would print on every training run (`is_activation_checkpointing` is the same)."""
        return self.is_activation_checkpointing

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
        elif isinstance(module, LoraTrackerEmbeddings):
            nn.init.trunc_normal_(module.position_embeddings, mean=0.0, std=std)
        elif hasattr(module, "lambda1"):  # Dinov2LayerScale
            nn.init.constant_(module.lambda1, self.config.dinov2_config.layerscale_value)


class LoraTrackerModel(LoraTrackerPreTrainedModel):
    """LoRAT: joint template/search DINOv2 encoder with an anchor-free MLP head.

    Sub-modules mirror `Dinov2Model` (`embeddings.patch_embeddings`, `encoder.layer.N`, `layernorm`) so DINOv2
    weights map one to one; the cls/mask tokens and the 37x37 position table are not kept (LoRAT does not use them),
    which makes parameter counts equal the official ones.
    """

    def __init__(self, config: LoraTrackerConfig):
        super().__init__(config)
        self.embeddings = LoraTrackerEmbeddings(config)
        self.encoder = Dinov2Encoder(config.dinov2_config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.dinov2_config.layer_norm_eps)
        self.tracker_head = LoraTrackerHead(config)
        self.post_init()

    # ----- construction from DINOv2 weights -----
    @classmethod
    def from_backbone(
        cls,
        backbone_name_or_path: str,
        variant: str | None = None,
        config: LoraTrackerConfig | None = None,
        **hub_kwargs: Any,
    ) -> LoraTrackerModel:
        """Build a tracker on a local or Hub DINOv2 checkpoint; only the new parts are initialised.

        Args:
            backbone_name_or_path: e.g. `"facebook/dinov2-base"` or a folder holding a `Dinov2Model` checkpoint.
            variant: official preset (`"B-224"`, ...) for sizes and LoRA settings; its backbone shape must match.
            config: a full tracker config instead of `variant` (its `dinov2_config` must match the checkpoint).
            hub_kwargs: `revision`, `cache_dir`, `token`, `local_files_only`, ... forwarded to `from_pretrained`.
        """
        dtype = hub_kwargs.pop("dtype", None)
        backbone = Dinov2Model.from_pretrained(backbone_name_or_path, **hub_kwargs)
        if config is None:
            if variant is not None:
                config = LoraTrackerConfig.from_variant(variant)
            else:
                config = LoraTrackerConfig.from_dinov2_config(backbone.config)
        check_backbone_matches(config.dinov2_config, backbone.config, source=backbone_name_or_path)
        config.backbone_name_or_path = backbone_name_or_path
        model = cls(config)
        model.load_backbone_state_dict(backbone.state_dict())
        if dtype is not None:
            model.to(dtype)
        return model

    @torch.no_grad()
    def load_backbone_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy `Dinov2Model` weights (transformers >= 5 names, optional `dinov2.` prefix) into the tracker.

        The DINOv2 position table is resampled to the search grid; cls/mask tokens are ignored. Raises a `ValueError`
        listing missing, unexpected or mis-shaped keys.
        """
        source = {k.removeprefix("dinov2."): v for k, v in state_dict.items()}
        ignored = {"embeddings.cls_token", "embeddings.mask_token"}
        table = source.pop("embeddings.position_embeddings", None)
        if table is None:
            raise ValueError("The DINOv2 state dict has no 'embeddings.position_embeddings'.")
        own = {
            k: v
            for k, v in self.state_dict().items()
            if k.startswith(("embeddings.patch_embeddings", "encoder.", "layernorm."))
        }
        missing = sorted(set(own) - set(source))
        unexpected = sorted(set(source) - set(own) - ignored)
        mismatched = sorted(
            f"{k}: checkpoint {tuple(source[k].shape)} vs model {tuple(own[k].shape)}"
            for k in own
            if k in source and source[k].shape != own[k].shape
        )
        if missing or unexpected or mismatched:
            raise ValueError(
                "The DINOv2 weights do not fit this tracker config:\n"
                + "".join(
                    f"  {title}: {items}\n"
                    for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched))
                    if items
                )
                + "Check the variant / num_heads / FFN type of the config against the checkpoint."
            )
        for key, value in source.items():
            if key in own:
                own[key].copy_(value)
        self.embeddings.position_embeddings.copy_(self.resample_dinov2_positions(table))

    def resample_dinov2_positions(self, table: torch.Tensor) -> torch.Tensor:
        """DINOv2 `position_embeddings` `(1, 1 + S*S, D)` (cls entry first) -> the shared `(1, xH*xW, D)` table."""
        return resample_position_embeddings(table[:, 1:].float(), self.config.search_grid_wh)

    # ----- forward -----
    def forward(
        self,
        template_pixel_values: torch.Tensor,
        search_pixel_values: torch.Tensor,
        template_token_type_ids: torch.Tensor | None = None,
        template_boxes: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        positive_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> LoraTrackerOutput | tuple:
        r"""
        Args:
            template_pixel_values (`(B, 3, Hz, Wz)`): normalised template crops.
            search_pixel_values (`(B, 3, Hx, Wx)`): normalised search crops.
            template_token_type_ids (`(B, zH, zW)` long, *optional*): 1 = target foreground, 0 = background.
            template_boxes (`(B, 4)`, *optional*): target `xyxy` in template-crop pixels; used to rasterise
                `template_token_type_ids` when those are not given. One of the two is required.
            labels (`(B, 4)`, *optional*): ground-truth `xyxy` normalised by the search size (clipped to the crop).
            positive_mask (`(B, H, W)` bool, *optional*): positive cells; derived from `labels` when omitted.
        """
        if template_token_type_ids is None:
            if template_boxes is None:
                raise ValueError("Pass template_token_type_ids (B, zH, zW) or template_boxes (B, 4) xyxy template px.")
            template_token_type_ids = template_token_type_ids_from_boxes(
                template_boxes, self.config.template_grid_wh, self.config.patch_size
            ).to(template_pixel_values.device)
        self._check_inputs(template_pixel_values, search_pixel_values, template_token_type_ids)
        template_tokens = self.embeddings.embed_template(template_pixel_values, template_token_type_ids)
        search_tokens = self.embeddings.embed_search(search_pixel_values)
        hidden_states = torch.cat((template_tokens, search_tokens), dim=1)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.encoder.layer:
            hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        search_features = self.layernorm(hidden_states[:, template_tokens.shape[1] :])
        score_map, pred_boxes = self.tracker_head(search_features)

        loss, loss_dict = None, None
        if labels is not None:
            from .loss_lora_tracker import lora_tracker_loss

            loss, loss_dict = lora_tracker_loss(score_map, pred_boxes, labels, positive_mask=positive_mask)
        output = LoraTrackerOutput(
            loss=loss,
            score_map=score_map,
            pred_boxes=pred_boxes,
            last_hidden_state=search_features,
            hidden_states=all_hidden_states,
            loss_dict=loss_dict,
        )
        return output if return_dict else output.to_tuple()

    def _check_inputs(self, template: torch.Tensor, search: torch.Tensor, token_type_ids: torch.Tensor) -> None:
        config = self.config
        expected = {
            "template_pixel_values": (template, config.template_size_wh),
            "search_pixel_values": (search, config.search_size_wh),
        }
        for name, (tensor, (width, height)) in expected.items():
            if tensor.ndim != 4 or tensor.shape[1] != 3 or tuple(tensor.shape[2:]) != (height, width):
                raise ValueError(
                    f"{name} must be (batch, 3, {height}, {width}) for this config, got {tuple(tensor.shape)}."
                )
        zw, zh = config.template_grid_wh
        if tuple(token_type_ids.shape) != (template.shape[0], zh, zw):
            raise ValueError(
                f"template_token_type_ids must be (batch, {zh}, {zw}), got {tuple(token_type_ids.shape)}."
            )


def check_backbone_matches(expected: Dinov2Config, actual: Dinov2Config, source: str = "the checkpoint") -> None:
    """Raise a `ValueError` naming each backbone field where a tracker config and a DINOv2 config disagree."""
    fields = ("hidden_size", "num_hidden_layers", "num_attention_heads", "use_swiglu_ffn", "patch_size", "mlp_ratio")
    diffs = [
        f"{f}: config {getattr(expected, f)} vs {getattr(actual, f)}"
        for f in fields
        if getattr(expected, f) != getattr(actual, f)
    ]
    if diffs:
        raise ValueError(f"The DINOv2 backbone in {source} does not match the tracker config: " + "; ".join(diffs))


__all__ = [
    "LoraTrackerModel",
    "LoraTrackerPreTrainedModel",
    "LoraTrackerOutput",
    "LoraTrackerEmbeddings",
    "LoraTrackerHead",
    "resample_position_embeddings",
    "check_backbone_matches",
]
