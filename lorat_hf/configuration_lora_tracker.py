"""Configuration of the LoRAT tracker (`model_type="lora_tracker"`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from transformers import Dinov2Config, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# LoRA targets: every Linear of every Dinov2 layer (transformers >= 5 names). GELU MLP for S/B/L, SwiGLU for g.
ATTENTION_LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_LINEAR_NAMES = ("fc1", "fc2")
SWIGLU_LINEAR_NAMES = ("gate_proj", "up_proj", "down_proj")
LORA_INIT_CHOICES = ("official", "peft")


@dataclass(frozen=True)
class BackboneSpec:
    """Shape of one official DINOv2 backbone (ViT-x/14 without registers)."""

    checkpoint: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    use_swiglu_ffn: bool
    drop_path_rate: float


# Official LoRAT variants (`config/LoRAT/<variant>/config.yaml`, `_mixin/{small,large,giant}.yaml`).
BACKBONES: dict[str, BackboneSpec] = {
    "S": BackboneSpec("facebook/dinov2-small", 384, 12, 6, False, 0.0),
    "B": BackboneSpec("facebook/dinov2-base", 768, 12, 12, False, 0.0),
    "L": BackboneSpec("facebook/dinov2-large", 1024, 24, 16, False, 0.1),
    "g": BackboneSpec("facebook/dinov2-giant", 1536, 40, 24, True, 0.4),
}
# resolution -> (template px, search px, search area factor)
GEOMETRIES: dict[str, tuple[int, int, float]] = {"224": (112, 224, 4.0), "378": (196, 378, 5.0)}
VARIANTS = tuple(f"{size}-{res}" for size in BACKBONES for res in GEOMETRIES)


def _as_wh(size: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    if len(size) != 2:
        raise ValueError(f"An image size is an int or [width, height], got {size!r}.")
    return (int(size[0]), int(size[1]))


class CropGeometry:
    """Crop sizes and token grids derived from `template_size`, `search_size` (px, int or [W, H]) and `patch_size`.

    Shared by `LoraTrackerConfig` and `LoraTrackerImageProcessor` so both describe the geometry the same way.
    """

    @property
    def template_size_wh(self) -> tuple[int, int]:
        return _as_wh(self.template_size)

    @property
    def search_size_wh(self) -> tuple[int, int]:
        return _as_wh(self.search_size)

    @property
    def template_grid_wh(self) -> tuple[int, int]:
        """Template tokens per row and column."""
        width, height = self.template_size_wh
        return (width // self.patch_size, height // self.patch_size)

    @property
    def search_grid_wh(self) -> tuple[int, int]:
        """Search tokens per row and column (= the response map)."""
        width, height = self.search_size_wh
        return (width // self.patch_size, height // self.patch_size)


class LoraTrackerConfig(CropGeometry, PreTrainedConfig):
    r"""Configuration of a [`LoraTrackerModel`].

    Args:
        dinov2_config (`Dinov2Config` or `dict`, *optional*):
            The DINOv2 backbone (hidden size, depth, heads, FFN type, patch size, drop path).
        backbone_name_or_path (`str`, *optional*):
            Hub id or local folder of the DINOv2 weights this tracker was built on (e.g. `facebook/dinov2-base`).
            Adapter folders name it so that `LoraTracker.from_pretrained` can fetch the frozen backbone.
        variant (`str`, *optional*): official variant name such as `"B-224"` (informational).
        template_size, search_size (`int` or `[width, height]`): crop sizes in pixels; multiples of the patch size.
        head_num_layers (`int`): Linear layers in each head MLP (3 officially).
        head_hidden_size (`int`, *optional*): width of the head MLPs; defaults to the backbone width.
        num_token_types (`int`): 3 = template background (0), template foreground (1), search (2).
        lora_r, lora_alpha, lora_dropout, use_rslora: LoRA hyper-parameters (official: 64, 64, 0, False).
        lora_target_modules (`list[str]`, *optional*): Linear names inside each Dinov2 layer to adapt; default
            every Linear (q/k/v/o projections and the MLP, gate/up/down for SwiGLU).
        lora_init (`str`): `"official"` (A and B both trunc-normal, std 0.02, as in the paper's code) or `"peft"`
            (peft's default: Kaiming-uniform A, zero B, so the adapted model starts equal to the backbone).
        window_penalty (`float`): weight of the Hann window in the inference score (0.45).
        template_area_factor, search_area_factor (`float`): crop context (2.0; 4.0 at 224 px, 5.0 at 378 px).
        min_object_size (`float`): the previous box is grown to at least this many pixels before a search crop (10).
        initializer_range (`float`): std of the trunc-normal init of the new parts (0.02).
    """

    model_type = "lora_tracker"
    sub_configs_defaults = {"dinov2_config": SubConfigSpec(config_class=Dinov2Config)}

    dinov2_config: dict | PreTrainedConfig | None = None
    backbone_name_or_path: str | None = None
    variant: str | None = None
    template_size: int | list[int] = 112
    search_size: int | list[int] = 224
    head_num_layers: int = 3
    head_hidden_size: int | None = None
    num_token_types: int = 3
    lora_r: int = 64
    lora_alpha: float = 64
    lora_dropout: float = 0.0
    use_rslora: bool = False
    lora_target_modules: list[str] | None = None
    lora_init: str = "official"
    window_penalty: float = 0.45
    template_area_factor: float = 2.0
    search_area_factor: float = 4.0
    min_object_size: float = 10.0
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if isinstance(self.template_size, tuple):
            self.template_size = list(self.template_size)
        if isinstance(self.search_size, tuple):
            self.search_size = list(self.search_size)
        self.validate_geometry()
        if self.lora_init not in LORA_INIT_CHOICES:
            raise ValueError(f"lora_init must be one of {LORA_INIT_CHOICES}, got {self.lora_init!r}.")
        if self.num_token_types != 3:
            raise ValueError("LoRAT uses exactly 3 token types (template background, template foreground, search).")

    def validate_geometry(self) -> None:
        """Raise if the crop sizes do not tile into whole patches or the template grid exceeds the search grid."""
        patch = self.patch_size
        for name, (w, h) in (("template_size", self.template_size_wh), ("search_size", self.search_size_wh)):
            if w % patch or h % patch or w <= 0 or h <= 0:
                raise ValueError(f"{name}={[w, h]} must be positive multiples of the patch size {patch}.")
        (zw, zh), (xw, xh) = self.template_grid_wh, self.search_grid_wh
        if zw > xw or zh > xh:
            raise ValueError(
                f"The template grid {zw}x{zh} must fit inside the search grid {xw}x{xh}: the template takes the "
                "top-left slice of the shared positional embedding."
            )

    # ----- derived geometry -----
    @property
    def patch_size(self) -> int:
        patch = self.dinov2_config.patch_size
        return int(patch if isinstance(patch, int) else patch[0])

    @property
    def hidden_size(self) -> int:
        return self.dinov2_config.hidden_size

    @property
    def lora_scaling(self) -> float:
        return self.lora_alpha / (self.lora_r**0.5 if self.use_rslora else self.lora_r)

    @property
    def lora_linear_names(self) -> tuple[str, ...]:
        """Names of the Linear modules inside each Dinov2 layer that receive LoRA."""
        if self.lora_target_modules is not None:
            return tuple(self.lora_target_modules)
        mlp = SWIGLU_LINEAR_NAMES if self.dinov2_config.use_swiglu_ffn else MLP_LINEAR_NAMES
        return ATTENTION_LINEAR_NAMES + mlp

    # ----- presets -----
    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> LoraTrackerConfig:
        """Official preset, e.g. `LoraTrackerConfig.from_variant("B-224")` (S/B/L/g x 224/378).

        Keyword arguments override the preset's fields; `dinov2_overrides={...}` overrides backbone fields.
        """
        try:
            size, resolution = variant.split("-")
            spec, (template_px, search_px, search_factor) = BACKBONES[size], GEOMETRIES[resolution]
        except (ValueError, KeyError):
            raise ValueError(f"Unknown LoRAT variant {variant!r}; choose one of {', '.join(VARIANTS)}.") from None
        dinov2_kwargs = dict(
            hidden_size=spec.hidden_size,
            num_hidden_layers=spec.num_hidden_layers,
            num_attention_heads=spec.num_attention_heads,
            use_swiglu_ffn=spec.use_swiglu_ffn,
            drop_path_rate=spec.drop_path_rate,
            mlp_ratio=4,
            image_size=518,
            patch_size=14,
            layer_norm_eps=1e-6,
            layerscale_value=1e-5,
            qkv_bias=True,
            use_mask_token=False,
        )
        dinov2_kwargs.update(kwargs.pop("dinov2_overrides", {}))
        preset = dict(
            dinov2_config=Dinov2Config(**dinov2_kwargs),
            backbone_name_or_path=spec.checkpoint,
            variant=variant,
            template_size=template_px,
            search_size=search_px,
            search_area_factor=search_factor,
        )
        preset.update(kwargs)
        return cls(**preset)

    @classmethod
    def from_dinov2_config(cls, dinov2_config: Dinov2Config, **kwargs) -> LoraTrackerConfig:
        """A tracker config around an existing DINOv2 config (e.g. of a local checkpoint)."""
        dinov2_config = copy.deepcopy(dinov2_config)
        return cls(dinov2_config=dinov2_config, **kwargs)


__all__ = ["LoraTrackerConfig", "VARIANTS", "BACKBONES", "GEOMETRIES"]
