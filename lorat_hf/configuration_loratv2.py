"""Configuration of the LoRATv2 streaming tracker (`model_type="loratv2"`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from transformers import Dinov2WithRegistersConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_lora_tracker import LORA_INIT_CHOICES, _as_wh

TEMPLATE_STREAM = "template"


def search_stream_name(region: int) -> str:
    """Name of the stream (and of its peft adapter) that processes search region `region`: `"search_<region>"`."""
    return f"search_{region}"


@dataclass(frozen=True)
class Loratv2BackboneSpec:
    """Shape of one official DINOv2-with-registers backbone (ViT-x/14, 4 registers)."""

    checkpoint: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    drop_path_rate: float


LORATV2_BACKBONES: dict[str, Loratv2BackboneSpec] = {
    "B": Loratv2BackboneSpec("facebook/dinov2-with-registers-base", 768, 12, 12, 0.0),
    "L": Loratv2BackboneSpec("facebook/dinov2-with-registers-large", 1024, 24, 16, 0.1),
}
# Official variants (`config/LoRATv2/<variant>`): phase -> search regions as (size px, area factor).
LORATV2_PHASES: dict[str, list[tuple[int, float]]] = {
    "p1": [(224, 4.0)],
    "p2": [(224, 4.0), (378, 5.0)],
}
LORATV2_VARIANTS = ("p1-B-224", "p1-L-224", "p2-B-378", "p2-L-378")


class Loratv2Config(PreTrainedConfig):
    r"""Configuration of a [`Loratv2Model`].

    The token sequence is `[registers + template | search region 0 | search region 1 | ...]`; chunk `j` of it is
    processed by stream `j` (its own LoRA expert) and attends to chunks `0..j` only.

    Args:
        dinov2_config (`Dinov2WithRegistersConfig` or `dict`, *optional*): the frozen ViT (width, depth, heads,
            registers, patch size). Its `image_size / patch_size` grid is the positional table every image slices.
        backbone_name_or_path (`str`, *optional*): Hub id or folder of the backbone weights (adapter folders need it).
        variant (`str`, *optional*): official variant name such as `"p1-B-224"` (informational).
        template_size (`int` or `[width, height]`): template crop in pixels (224 officially).
        search_sizes (`list`): one crop size per search region (`[224]` in phase 1, `[224, 378]` in phase 2).
        template_area_factor (`float`): template crop context (2.0).
        search_area_factors (`list[float]`): crop context per search region (`[4.0]`, `[4.0, 5.0]`).
        trainable_streams (`list[str]`, *optional*): streams whose LoRA, token type and head train; default all
            (phase 1); phase 2 trains only its last region (`["search_1"]`).
        head_num_layers (`int`), head_hidden_size (`int`, *optional*): MLP head depth (3) and width (backbone width).
        lora_r, lora_alpha, lora_dropout: LoRA hyper-parameters of every stream (official: 64, 64, 0). The update
            is scaled by `alpha / r` in training and in merged inference alike.
        lora_init (`str`): `"official"` (A and B trunc-normal, std 0.02) or `"peft"` (zero B).
        window_penalty (`float`): Hann-window weight in the inference score (0.45).
        min_object_size (`float`): the previous box is grown to at least this many pixels before a search crop (10).
        reference_update_threshold (`float`): phase 2 refreshes its reference region when the tracked frame's
            confidence is strictly above this (0.9).
        initializer_range (`float`): std of the trunc-normal init of the new parts (0.02).
    """

    model_type = "loratv2"
    sub_configs_defaults = {"dinov2_config": SubConfigSpec(config_class=Dinov2WithRegistersConfig)}

    dinov2_config: dict | PreTrainedConfig | None = None
    backbone_name_or_path: str | None = None
    variant: str | None = None
    template_size: int | list[int] = 224
    search_sizes: list | None = None
    template_area_factor: float = 2.0
    search_area_factors: list[float] | None = None
    trainable_streams: list[str] | None = None
    head_num_layers: int = 3
    head_hidden_size: int | None = None
    lora_r: int = 64
    lora_alpha: float = 64
    lora_dropout: float = 0.0
    lora_init: str = "official"
    window_penalty: float = 0.45
    min_object_size: float = 10.0
    reference_update_threshold: float = 0.9
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if isinstance(self.template_size, tuple):
            self.template_size = list(self.template_size)
        if self.search_sizes is None:
            self.search_sizes = [224]
        self.search_sizes = [list(s) if isinstance(s, tuple) else s for s in self.search_sizes]
        if self.search_area_factors is None:
            self.search_area_factors = [4.0, 5.0, 5.0, 5.0][: len(self.search_sizes)]
        self.search_area_factors = [float(f) for f in self.search_area_factors]
        if not self.search_sizes:
            raise ValueError("LoRATv2 needs at least one search region (search_sizes=[224]).")
        if len(self.search_area_factors) != len(self.search_sizes):
            raise ValueError(
                f"search_area_factors has {len(self.search_area_factors)} entries but search_sizes has "
                f"{len(self.search_sizes)}: give one area factor per search region."
            )
        if self.lora_init not in LORA_INIT_CHOICES:
            raise ValueError(f"lora_init must be one of {LORA_INIT_CHOICES}, got {self.lora_init!r}.")
        if self.trainable_streams is not None:
            unknown = sorted(set(self.trainable_streams) - set(self.stream_names))
            if unknown:
                raise ValueError(f"trainable_streams names unknown streams {unknown}; streams: {self.stream_names}.")
        self.validate_geometry()

    def validate_geometry(self) -> None:
        """Raise if a crop does not tile into whole patches or its grid exceeds the positional table."""
        patch = self.patch_size
        table_w, table_h = self.position_grid_wh
        sizes = [("template_size", self.template_size_wh)]
        sizes += [(f"search_sizes[{i}]", wh) for i, wh in enumerate(self.search_sizes_wh)]
        for name, (w, h) in sizes:
            if w % patch or h % patch or w <= 0 or h <= 0:
                raise ValueError(f"{name}={[w, h]} must be positive multiples of the patch size {patch}.")
            if w // patch > table_w or h // patch > table_h:
                raise ValueError(
                    f"{name}={[w, h]} needs a {w // patch}x{h // patch} token grid but the backbone's positional "
                    f"table is {table_w}x{table_h} (image_size {self.dinov2_config.image_size}); LoRATv2 slices it "
                    "without interpolation, so use smaller crops or a backbone with a larger image_size."
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
    def num_register_tokens(self) -> int:
        return self.dinov2_config.num_register_tokens

    @property
    def position_grid_wh(self) -> tuple[int, int]:
        """Grid of the backbone's positional table (37 x 37 for 518 px / 14)."""
        width, height = _as_wh(self.dinov2_config.image_size)
        return (width // self.patch_size, height // self.patch_size)

    @property
    def template_size_wh(self) -> tuple[int, int]:
        return _as_wh(self.template_size)

    @property
    def search_sizes_wh(self) -> list[tuple[int, int]]:
        return [_as_wh(size) for size in self.search_sizes]

    @property
    def template_grid_wh(self) -> tuple[int, int]:
        width, height = self.template_size_wh
        return (width // self.patch_size, height // self.patch_size)

    @property
    def search_grids_wh(self) -> list[tuple[int, int]]:
        """Token grid (= response map) of each search region."""
        return [(w // self.patch_size, h // self.patch_size) for w, h in self.search_sizes_wh]

    @property
    def num_search_regions(self) -> int:
        return len(self.search_sizes)

    @property
    def stream_names(self) -> list[str]:
        """`["template", "search_0", ...]`: stream `j` processes token chunk `j`."""
        return [TEMPLATE_STREAM] + [search_stream_name(i) for i in range(self.num_search_regions)]

    @property
    def chunk_sizes(self) -> list[int]:
        """Tokens per chunk: registers + template, then each search region."""
        zw, zh = self.template_grid_wh
        return [self.num_register_tokens + zw * zh] + [w * h for w, h in self.search_grids_wh]

    @property
    def chunk_offsets(self) -> list[int]:
        """Start position of each chunk in the full sequence (and in the KV cache)."""
        offsets = [0]
        for size in self.chunk_sizes[:-1]:
            offsets.append(offsets[-1] + size)
        return offsets

    @property
    def trained_streams(self) -> list[str]:
        """Streams that train (`trainable_streams`, default every stream)."""
        return list(self.trainable_streams) if self.trainable_streams is not None else self.stream_names

    @property
    def lora_scaling(self) -> float:
        return self.lora_alpha / self.lora_r

    # Single-region views used by the crop/processor code shared with LoRAT (the tracked region is the last one).
    @property
    def search_size(self) -> int | list[int]:
        return self.search_sizes[-1]

    @property
    def search_area_factor(self) -> float:
        return self.search_area_factors[-1]

    @property
    def search_size_wh(self) -> tuple[int, int]:
        return self.search_sizes_wh[-1]

    @property
    def search_grid_wh(self) -> tuple[int, int]:
        return self.search_grids_wh[-1]

    # ----- presets -----
    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> Loratv2Config:
        """Official preset: `"p1-B-224"`, `"p1-L-224"`, `"p2-B-378"` or `"p2-L-378"`.

        Keyword arguments override the preset's fields; `dinov2_overrides={...}` overrides backbone fields.
        """
        try:
            phase, size, _ = variant.split("-")
            spec, regions = LORATV2_BACKBONES[size], LORATV2_PHASES[phase]
        except (ValueError, KeyError):
            raise ValueError(
                f"Unknown LoRATv2 variant {variant!r}; choose one of {', '.join(LORATV2_VARIANTS)}."
            ) from None
        if variant not in LORATV2_VARIANTS:
            raise ValueError(f"Unknown LoRATv2 variant {variant!r}; choose one of {', '.join(LORATV2_VARIANTS)}.")
        backbone_kwargs = dict(
            hidden_size=spec.hidden_size,
            num_hidden_layers=spec.num_hidden_layers,
            num_attention_heads=spec.num_attention_heads,
            drop_path_rate=spec.drop_path_rate,
            mlp_ratio=4,
            image_size=518,
            patch_size=14,
            layer_norm_eps=1e-6,
            layerscale_value=1e-5,
            qkv_bias=True,
            num_register_tokens=4,
        )
        backbone_kwargs.update(kwargs.pop("dinov2_overrides", {}))
        preset = dict(
            dinov2_config=Dinov2WithRegistersConfig(**backbone_kwargs),
            backbone_name_or_path=spec.checkpoint,
            variant=variant,
            template_size=224,
            search_sizes=[size for size, _ in regions],
            search_area_factors=[factor for _, factor in regions],
            trainable_streams=None if phase == "p1" else [search_stream_name(len(regions) - 1)],
        )
        preset.update(kwargs)
        return cls(**preset)

    @classmethod
    def from_dinov2_config(cls, dinov2_config: Dinov2WithRegistersConfig, **kwargs) -> Loratv2Config:
        """A LoRATv2 config around an existing DINOv2-with-registers config (e.g. of a local checkpoint)."""
        return cls(dinov2_config=copy.deepcopy(dinov2_config), **kwargs)


__all__ = ["Loratv2Config", "LORATV2_VARIANTS", "LORATV2_BACKBONES", "TEMPLATE_STREAM", "search_stream_name"]
