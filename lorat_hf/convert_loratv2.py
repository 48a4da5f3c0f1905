"""Convert official LoRATv2 checkpoints (trackit, timm-named DINOv2-reg4 backbones) into lorat_hf folders.

    python -m lorat_hf.convert --model-type loratv2 --variant p1-B-224 --dinov2 BACKBONE --lorat model.safetensors \\
        --output loratv2-p1-b224 [--merge]

BACKBONE is a timm-named DINOv2-with-registers state dict (`.safetensors` / `.pth`) or a Hugging Face
`dinov2-with-registers` folder. CHECKPOINT is the official trainable-only `model.safetensors` or a full LoRATv2 state
dict (training-built or inference-merged). A phase-2 checkpoint holds only its own expert, head and token type: its
other streams come from the phase-1 checkpoint (`--phase1-lorat`), merged, as the official phase-2 model is built.

The output is an adapter folder (`config.json` + one peft adapter per stream, loaded by `LoraTracker.from_pretrained`)
or, with `--merge`, a plain `Loratv2Model` folder whose streams carry merged weights (`AutoModel.from_pretrained`).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

from .adapters_loratv2 import add_stream_adapters, save_stream_adapters
from .configuration_loratv2 import LORATV2_BACKBONES, LORATV2_VARIANTS, Loratv2Config
from .convert import (
    CheckpointError,
    check_output_folder,
    infer_dinov2_config,
    load_state_dict,
    name_adapter_backbone,
    official_backbone_to_hf,
    save_merged_model,
)
from .file_utils import staged_directory
from .modeling_loratv2 import Loratv2Model, check_backbone_matches

logger = logging.getLogger(__name__)

# official expert linear (inside `blocks.L.`) -> our path inside `encoder.layer.L.experts.E.`
_EXPERT_LINEARS = {
    "attn.qkv.q": "attention.q_proj",
    "attn.qkv.k": "attention.k_proj",
    "attn.qkv.v": "attention.v_proj",
    "attn.proj": "attention.o_proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_SHARED_BLOCK_PARAMS = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
}
_EXPERT_KEY = re.compile(
    r"^blocks\.(\d+)\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(\d+)\.(?:(q|k|v)\.)?(?:(linear|lora)\.)?(weight|bias|A|B)$"
)
_HEAD_KEY = re.compile(r"^heads\.(\d+)\.(cls_mlp|reg_mlp)\.layers\.(\d+)\.(weight|bias)$")


def timm_backbone_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm DINOv2-reg4 (`no_embed_class`) state dict -> `Dinov2WithRegistersModel` names.

    The timm positional table covers only the patch grid; transformers keeps a leading cls slot, filled with zeros
    here (LoRATv2 never uses it).
    """
    state = dict(state_dict)
    registers = state.pop("reg_token", None)
    if registers is None:
        raise CheckpointError("The backbone has no 'reg_token': LoRATv2 needs a DINOv2 with registers (reg4).")
    table = state.pop("pos_embed", None)
    if table is None:
        raise CheckpointError("The backbone has no 'pos_embed'.")
    out = official_backbone_to_hf(state)
    out["embeddings.register_tokens"] = registers
    out["embeddings.position_embeddings"] = torch.cat((torch.zeros_like(table[:, :1]), table), dim=1)
    out.setdefault("embeddings.cls_token", torch.zeros_like(table[:, :1]))
    out.setdefault("embeddings.mask_token", torch.zeros_like(table[0, :1]))
    return out


def load_backbone(
    path: str | os.PathLike, num_heads: int
) -> tuple[dict[str, torch.Tensor], Dinov2WithRegistersConfig]:
    """Backbone weights (`Dinov2WithRegistersModel` names) and config from a timm file or a Hugging Face folder."""
    path = str(path)
    if os.path.isdir(path):
        model = Dinov2WithRegistersModel.from_pretrained(path)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}, model.config
    state = timm_backbone_to_hf(load_state_dict(path))
    plain = infer_dinov2_config(state, num_heads)
    config = Dinov2WithRegistersConfig(
        hidden_size=plain.hidden_size,
        num_hidden_layers=plain.num_hidden_layers,
        num_attention_heads=num_heads,
        patch_size=plain.patch_size,
        image_size=plain.image_size,
        use_swiglu_ffn=plain.use_swiglu_ffn,
        mlp_ratio=4,
        layer_norm_eps=1e-6,
        layerscale_value=1e-5,
        qkv_bias=plain.qkv_bias,
        num_register_tokens=state["embeddings.register_tokens"].shape[1],
    )
    return state, config


@dataclass
class Loratv2Weights:
    """An official LoRATv2 file in lorat_hf names.

    `plain`: `Loratv2Model` tensors it holds outright (heads, norms, token types, un-adapted or merged expert weights,
    backbone parts). `lora`: per stream index, `{expert Linear path: {"A": (r, in), "B": (out, r)}}`, unscaled.
    """

    plain: dict[str, torch.Tensor] = field(default_factory=dict)
    lora: dict[int, dict[str, dict[str, torch.Tensor]]] = field(default_factory=dict)

    @property
    def streams_with_lora(self) -> set[int]:
        return set(self.lora)

    def expert_streams(self) -> set[int]:
        """Streams whose expert weights the file holds (plain or LoRA)."""
        found = set(self.lora)
        for key in self.plain:
            match = re.match(r"^encoder\.layer\.\d+\.experts\.(\d+)\.", key)
            if match:
                found.add(int(match.group(1)))
        return found


def parse_official_loratv2(state: dict[str, torch.Tensor]) -> Loratv2Weights:
    """Map an official LoRATv2 state dict (trainable-only, training-built or inference-merged) to lorat_hf names.

    Fused `qkv` plain weights are split into q/k/v row blocks; `.linear` base weights of LoRA-wrapped experts are
    kept as that expert's plain weight. Raises `CheckpointError` listing keys it cannot place.
    """
    weights = Loratv2Weights()
    unknown = []
    head_names = {"cls_mlp": "score_mlp", "reg_mlp": "box_mlp"}
    for key, tensor in state.items():
        if key == "template_token_type_embed":
            weights.plain["embeddings.template_token_type_embeddings.weight"] = tensor
        elif key.startswith("search_region_token_type_embed."):
            region = key.split(".")[1]
            weights.plain[f"embeddings.search_token_type_embeddings.{region}.weight"] = tensor.reshape(1, -1)
        elif (head := _HEAD_KEY.match(key)) is not None:
            region, branch, layer, param = head.groups()
            weights.plain[f"heads.{region}.{head_names[branch]}.layers.{layer}.{param}"] = tensor
        elif key.startswith("norms."):
            _, region, param = key.split(".")
            weights.plain[f"layernorms.{region}.{param}"] = tensor
        elif key == "patch_embed.proj.weight":
            weights.plain["embeddings.patch_embeddings.projection.weight"] = tensor
        elif key == "patch_embed.proj.bias":
            weights.plain["embeddings.patch_embeddings.projection.bias"] = tensor
        elif key == "pos_embed":
            weights.plain["embeddings.position_embeddings"] = tensor
        elif key == "reg_token":
            weights.plain["embeddings.register_tokens"] = tensor
        elif key in ("cls_token", "norm.weight", "norm.bias"):
            continue  # unused by LoRATv2 (norms.i are copies of `norm`)
        elif (expert := _EXPERT_KEY.match(key)) is not None:
            layer, module, stream, part, kind, param = expert.groups()
            stream = int(stream)
            prefix = f"encoder.layer.{layer}.experts.{stream}."
            if kind == "lora":
                path = prefix + _EXPERT_LINEARS[f"{module}.{part}" if part else module]
                weights.lora.setdefault(stream, {}).setdefault(path, {})[param] = tensor
            elif module == "attn.qkv" and part is None:  # plain fused qkv: split into q, k, v row blocks
                for name, piece in zip(("q", "k", "v"), tensor.chunk(3, dim=0), strict=True):
                    weights.plain[f"{prefix}{_EXPERT_LINEARS['attn.qkv.' + name]}.{param}"] = piece.clone()
            else:
                weights.plain[f"{prefix}{_EXPERT_LINEARS[f'{module}.{part}' if part else module]}.{param}"] = tensor
        elif (block := re.match(r"^blocks\.(\d+)\.(.+)$", key)) is not None and block.group(2) in _SHARED_BLOCK_PARAMS:
            weights.plain[f"encoder.layer.{block.group(1)}.{_SHARED_BLOCK_PARAMS[block.group(2)]}"] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"Unrecognised LoRATv2 keys: {sorted(unknown)[:20]}{' ...' if len(unknown) > 20 else ''}"
        )
    for stream, paths in weights.lora.items():
        for path, factors in paths.items():
            if set(factors) != {"A", "B"}:
                raise CheckpointError(f"{path} (stream {stream}) has LoRA {sorted(factors)} but needs both A and B.")
    return weights


def lora_rank(*weights: Loratv2Weights) -> int | None:
    """The single LoRA rank of the given files (None when they hold no LoRA)."""
    ranks = {f["A"].shape[0] for w in weights for paths in w.lora.values() for f in paths.values()}
    if len(ranks) > 1:
        raise CheckpointError(f"Expected one LoRA rank across the checkpoints, found {sorted(ranks)}.")
    return ranks.pop() if ranks else None


@torch.no_grad()
def _load_plain(model: Loratv2Model, plain: dict[str, torch.Tensor], source: str) -> None:
    own = model.state_dict()
    unexpected = sorted(k for k in plain if k not in own)
    mismatched = sorted(
        f"{k}: {tuple(plain[k].shape)} vs model {tuple(own[k].shape)}"
        for k in plain
        if k in own and plain[k].shape != own[k].shape
    )
    if unexpected or mismatched:
        raise CheckpointError(
            f"{source} does not fit the LoRATv2 config:\n"
            + (f"  tensors the model does not have: {unexpected[:20]}\n" if unexpected else "")
            + (f"  mis-shaped: {mismatched[:20]}\n" if mismatched else "")
            + "Check --num-heads, --template-size and --search-size against the checkpoint."
        )
    for key, tensor in plain.items():
        own[key].copy_(tensor)


@torch.no_grad()
def _merge_lora(model: Loratv2Model, lora: dict[str, dict[str, torch.Tensor]], scaling: float) -> None:
    """`W += scaling * B A` for each listed Linear (the official load-time merge)."""
    for path, factors in lora.items():
        linear = model.get_submodule(path)
        linear.weight += scaling * (factors["B"] @ factors["A"])


def low_rank_factors(delta: torch.Tensor, rank: int, scaling: float) -> dict[str, torch.Tensor]:
    """LoRA factors with `scaling * B A == delta` for a weight change of rank <= `rank` (exact up to rounding).

    Used when a file gives a stream's merged weight but not its LoRA (the phase-1 streams of a full phase-2 state
    dict): the change from the backbone is `(alpha / r) B A`, so a rank-`rank` SVD recovers it.
    """
    u, s, vh = torch.linalg.svd(delta.double() / scaling, full_matrices=False)
    root = s[:rank].sqrt()
    residual = (s[rank:].max() if s.numel() > rank else s.new_zeros(())).item()
    if residual > 1e-5 * max(s[0].item(), 1e-12):
        raise CheckpointError(
            f"A merged expert weight differs from the backbone by a rank > {rank} change (singular value "
            f"{residual:.3g}); it cannot be an adapter. Convert with --merge instead."
        )
    return {"B": (u[:, :rank] * root).to(delta.dtype), "A": (root[:, None] * vh[:rank]).to(delta.dtype)}


def assemble_streams(
    config: Loratv2Config,
    backbone_state: dict[str, torch.Tensor],
    checkpoint: Loratv2Weights,
    phase1: Loratv2Weights | None = None,
) -> tuple[Loratv2Model, dict[int, dict[str, dict[str, torch.Tensor]]]]:
    """Build the un-adapted model (backbone in every expert, then the files' plain tensors) and collect LoRA per stream.

    Phase 2: streams the phase-2 file lacks come from `phase1` (its streams 0..n-1 are the same streams here).
    Returns the model and `{stream index: {Linear path: {"A", "B"}}}`.
    """
    model = Loratv2Model(config)
    model.load_backbone_state_dict(backbone_state)
    num_streams = len(config.stream_names)
    lora: dict[int, dict[str, dict[str, torch.Tensor]]] = {}
    sources = [(phase1, "the phase-1 checkpoint")] if phase1 is not None else []
    sources.append((checkpoint, "the checkpoint"))
    for weights, name in sources:
        _load_plain(model, weights.plain, name)
        for stream, paths in weights.lora.items():
            if stream >= num_streams:
                raise CheckpointError(f"{name} has LoRA for stream {stream} but the config has {num_streams} streams.")
            lora[stream] = paths
    held = checkpoint.expert_streams() | (phase1.expert_streams() if phase1 is not None else set())
    missing = [config.stream_names[s] for s in range(num_streams) if s not in held]
    if missing:
        raise CheckpointError(
            f"No weights for the streams {missing}: a phase-2 checkpoint holds only its own expert, so pass the "
            "phase-1 checkpoint too (--phase1-lorat)."
        )
    return model, lora


def build_merged_model(
    config: Loratv2Config,
    backbone_state: dict[str, torch.Tensor],
    checkpoint: Loratv2Weights,
    phase1: Loratv2Weights | None = None,
) -> Loratv2Model:
    """The inference model: every stream's LoRA merged into its expert with `config.lora_scaling` (= alpha / r)."""
    model, lora = assemble_streams(config, backbone_state, checkpoint, phase1)
    for paths in lora.values():
        _merge_lora(model, paths, config.lora_scaling)
    return model.eval()


@torch.no_grad()
def build_adapter_model(
    config: Loratv2Config,
    backbone_state: dict[str, torch.Tensor],
    checkpoint: Loratv2Weights,
    phase1: Loratv2Weights | None = None,
):
    """A `PeftModel` with one adapter per stream on the plain backbone experts.

    A stream given only as merged weights (no LoRA factors) is re-factorised from its difference to the backbone.
    """
    model, lora = assemble_streams(config, backbone_state, checkpoint, phase1)
    reference = Loratv2Model(config)
    reference.load_backbone_state_dict(backbone_state)
    reference_state = reference.state_dict()
    own = model.state_dict()
    for stream in range(len(config.stream_names)):
        prefix = ".experts." + str(stream) + "."
        factors = lora.setdefault(stream, {})
        for key in [k for k in own if prefix in k and k.endswith(".weight")]:
            path = key.removesuffix(".weight")
            delta = own[key] - reference_state[key]
            if not torch.equal(own[path + ".bias"], reference_state[path + ".bias"]):
                raise CheckpointError(f"{path}: its bias differs from the backbone's, which LoRA cannot express.")
            if path in factors:
                if delta.abs().max() > 0:
                    raise CheckpointError(f"{path}: holds both LoRA and a base weight that differs from the backbone.")
            elif delta.abs().max() > 0:
                factors[path] = low_rank_factors(delta, config.lora_r, config.lora_scaling)
            own[key].copy_(reference_state[key])
    peft_model = add_stream_adapters(model, init_lora_weights=False)
    for stream, paths in lora.items():
        name = config.stream_names[stream]
        for path, tensors in paths.items():
            module = peft_model.get_base_model().get_submodule(path)
            for which, attr in (("A", "lora_A"), ("B", "lora_B")):
                target = getattr(module, attr)[name].weight
                if target.shape != tensors[which].shape:
                    raise CheckpointError(
                        f"{path} LoRA {which}: checkpoint {tuple(tensors[which].shape)} vs model {tuple(target.shape)}"
                    )
                target.copy_(tensors[which])
    return peft_model.eval()


def build_config(
    dinov2_config: Dinov2WithRegistersConfig,
    variant: str | None,
    template_size: int | None,
    search_sizes: list[int] | None,
    lora_r: int,
    lora_alpha: float,
) -> Loratv2Config:
    """The config of a converted checkpoint: the variant's preset (checked against the tensors) or explicit sizes."""
    if variant is not None:
        preset = Loratv2Config.from_variant(variant)
        check_backbone_matches(preset.dinov2_config, dinov2_config, source="the backbone weights")
        for name, given, expected in (
            ("--template-size", template_size, preset.template_size),
            ("--search-size", search_sizes, preset.search_sizes),
        ):
            if given and given != expected:
                raise ValueError(f"{name} {given} contradicts variant {variant} ({expected}).")
        return Loratv2Config.from_variant(
            variant,
            dinov2_overrides=dict(qkv_bias=dinov2_config.qkv_bias),
            lora_r=lora_r,
            lora_alpha=lora_alpha,
        )
    search_sizes = search_sizes or [224]
    factors = [4.0, 5.0, 5.0, 5.0][: len(search_sizes)]
    return Loratv2Config(
        dinov2_config=dinov2_config,
        template_size=template_size or 224,
        search_sizes=search_sizes,
        search_area_factors=factors,
        trainable_streams=None if len(search_sizes) == 1 else [f"search_{len(search_sizes) - 1}"],
        lora_r=lora_r,
        lora_alpha=lora_alpha,
    )


def convert_loratv2(
    dinov2: str | os.PathLike,
    lorat: str | os.PathLike,
    output: str | os.PathLike,
    variant: str | None = None,
    num_heads: int | None = None,
    template_size: int | None = None,
    search_sizes: list[int] | None = None,
    lora_alpha: float | None = None,
    phase1_lorat: str | os.PathLike | None = None,
    merge: bool = False,
    backbone_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert official LoRATv2 weights into `output` (adapter folder, or merged model folder with `merge=True`).

    `lora_alpha` defaults to r (the official configs use alpha = r = 64). The adapter folder names its backbone:
    `backbone_id`, the folder when `dinov2` is a Hugging Face folder, or a converted copy in `output/backbone`.
    """
    output = check_output_folder(output, overwrite)
    if variant is not None and variant not in LORATV2_VARIANTS:
        raise ValueError(f"Unknown LoRATv2 variant {variant!r}; choose one of {', '.join(LORATV2_VARIANTS)}.")
    if variant is None and num_heads is None:
        raise ValueError("The number of attention heads is not stored in the tensors: pass --variant or --num-heads.")
    heads = num_heads or LORATV2_BACKBONES[variant.split("-")[1]].num_attention_heads
    backbone_state, dinov2_config = load_backbone(dinov2, heads)
    checkpoint = parse_official_loratv2(load_state_dict(lorat))
    phase1 = parse_official_loratv2(load_state_dict(phase1_lorat)) if phase1_lorat is not None else None
    rank = lora_rank(checkpoint, *([phase1] if phase1 is not None else []))
    if rank is None and not merge:
        raise CheckpointError(
            f"{lorat} holds no LoRA tensors (an inference-merged state dict?); convert it with --merge."
        )
    rank = rank or 64
    config = build_config(dinov2_config, variant, template_size, search_sizes, rank, lora_alpha or float(rank))

    def converted_backbone() -> Dinov2WithRegistersModel:
        backbone = Dinov2WithRegistersModel(dinov2_config)
        backbone.load_state_dict(backbone_state)
        return backbone

    with staged_directory(output, overwrite=overwrite) as staging:
        if merge:
            save_merged_model(build_merged_model(config, backbone_state, checkpoint, phase1), staging, backbone_id)
        else:
            peft_model = build_adapter_model(config, backbone_state, checkpoint, phase1)
            name_adapter_backbone(config, staging, dinov2, backbone_id, converted_backbone)
            save_stream_adapters(peft_model, staging)
    return output


__all__ = [
    "convert_loratv2",
    "timm_backbone_to_hf",
    "load_backbone",
    "parse_official_loratv2",
    "build_merged_model",
    "build_adapter_model",
    "low_rank_factors",
    "Loratv2Weights",
]
