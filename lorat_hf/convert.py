"""Convert official LoRAT checkpoints (and official DINOv2 weights) into lorat_hf adapter or model folders.

    lorat-convert --dinov2 dinov2_vitb14_pretrain.pth --lorat base.bin --output lorat-b224 --variant B-224

`--dinov2` takes an official DINOv2 state dict (`.pth` or `.safetensors`, official key names) or a Hugging Face
DINOv2 folder. `--lorat` takes an official release file (safetensors despite the `.bin` name: trainable tensors only,
LoRA unmerged, optional `lora_alpha`/`use_rslora` scalars) or a full official LoRAT state dict. Width, depth, FFN type
and LoRA rank are read from the tensors; the number of heads comes from `--variant` or `--num-heads`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import Dinov2Config, Dinov2Model, PretrainedConfig, PreTrainedModel

from .adapters import add_adapters, save_adapter_folder, tie_swiglu_lora_a_
from .configuration_lora_tracker import BACKBONES, GEOMETRIES, LoraTrackerConfig
from .file_utils import staged_directory
from .modeling_lora_tracker import LoraTrackerModel, check_backbone_matches

logger = logging.getLogger(__name__)

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
# official per-block module path -> transformers >= 5 Dinov2Layer path (fused qkv and w12 are handled separately)
_BLOCK_MODULES = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attn.proj": "attention.o_proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "mlp.w3": "mlp.down_proj",
    "attn.qkv.q": "attention.q_proj",
    "attn.qkv.k": "attention.k_proj",
    "attn.qkv.v": "attention.v_proj",
}
_META_KEYS = ("lora_alpha", "use_rslora")


class CheckpointError(ValueError):
    """A checkpoint whose keys or shapes do not fit what the converter expects."""


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a `.safetensors` file (whatever its suffix, e.g. the official `.bin` releases) or a `.pth` state dict."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file at {path!r}.")
    with open(path, "rb") as handle:
        head = handle.read(16)
    looks_like_zip = head[:2] == b"PK"
    if not looks_like_zip:
        try:
            return load_file(path)
        except Exception as error:  # safetensors raises its own error types
            if path.endswith(".safetensors"):
                raise CheckpointError(
                    f"{path!r} is not a readable safetensors file ({error}); is it truncated?"
                ) from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path!r} is neither a safetensors file nor a torch state dict ({error}).") from error
    for key in ("model", "state_dict", "net"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path!r} does not hold a flat state dict of tensors.")
    return state


def _strip_linear(suffix: str) -> str:
    """`attn.proj.linear.weight` (LoRAT training names) -> `attn.proj.weight`."""
    return suffix.replace(".linear.", ".")


def official_backbone_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official DINOv2 (or the frozen part of an official LoRAT state dict) -> `Dinov2Model` keys (transformers >= 5).

    Raises `CheckpointError` listing keys it cannot place.
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    top_level = {
        "cls_token": "embeddings.cls_token",
        "mask_token": "embeddings.mask_token",
        "pos_embed": "embeddings.position_embeddings",
        "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
        "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
        "norm.weight": "layernorm.weight",
        "norm.bias": "layernorm.bias",
    }
    for key, tensor in state_dict.items():
        if key in top_level:
            out[top_level[key]] = tensor
            continue
        match = _BLOCK.match(key)
        if match is None:
            unknown.append(key)
            continue
        index, suffix = match.group(1), _strip_linear(match.group(2))
        prefix = f"encoder.layer.{index}."
        module, _, param = suffix.rpartition(".")
        if ".lora." in f".{suffix}" or suffix.endswith((".A", ".B")):
            continue  # LoRA tensors are handled by `official_trainable_to_tracker`
        if module in ("ls1", "ls2") and param == "gamma":
            out[f"{prefix}layer_scale{module[-1]}.lambda1"] = tensor
        elif module == "attn.qkv":
            for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0), strict=True):
                out[f"{prefix}attention.{name}.{param}"] = part.clone()
        elif module == "mlp.w12":
            gate, up = tensor.chunk(2, dim=0)
            out[f"{prefix}mlp.gate_proj.{param}"] = gate.clone()
            out[f"{prefix}mlp.up_proj.{param}"] = up.clone()
        elif module in _BLOCK_MODULES:
            out[f"{prefix}{_BLOCK_MODULES[module]}.{param}"] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"Unrecognised DINOv2 keys: {sorted(unknown)[:20]}{' ...' if len(unknown) > 20 else ''}")
    return out


def infer_dinov2_config(hf_state: dict[str, torch.Tensor], num_heads: int) -> Dinov2Config:
    """Read width, depth, FFN type, patch size and position grid from `Dinov2Model`-named tensors."""
    try:
        projection = hf_state["embeddings.patch_embeddings.projection.weight"]
        table = hf_state["embeddings.position_embeddings"]
    except KeyError as error:
        raise CheckpointError(f"The DINOv2 weights lack {error.args[0]!r}.") from None
    hidden, patch = projection.shape[0], projection.shape[-1]
    depth = 1 + max((int(k.split(".")[2]) for k in hf_state if k.startswith("encoder.layer.")), default=-1)
    swiglu = "encoder.layer.0.mlp.gate_proj.weight" in hf_state
    mlp_hidden = hf_state[
        "encoder.layer.0.mlp.gate_proj.weight" if swiglu else "encoder.layer.0.mlp.fc1.weight"
    ].shape[0]
    grid = int(round((table.shape[1] - 1) ** 0.5))
    if hidden % num_heads:
        raise CheckpointError(f"Width {hidden} is not divisible by num_heads={num_heads}.")
    config = Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=depth,
        num_attention_heads=num_heads,
        patch_size=patch,
        image_size=grid * patch,
        use_swiglu_ffn=swiglu,
        mlp_ratio=4,
        layer_norm_eps=1e-6,
        qkv_bias="encoder.layer.0.attention.q_proj.bias" in hf_state,
        use_mask_token="embeddings.mask_token" in hf_state,
    )
    expected = (int(hidden * 4 * 2 / 3) + 7) // 8 * 8 if swiglu else hidden * 4
    if mlp_hidden != expected:
        raise CheckpointError(
            f"MLP hidden size {mlp_hidden} differs from what transformers' Dinov2 builds for width {hidden} "
            f"({expected}); only mlp_ratio=4 backbones are supported."
        )
    return config


def load_dinov2(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """DINOv2 weights from an official file or a Hugging Face folder, as `Dinov2Model` keys."""
    path = str(path)
    if os.path.isdir(path):
        model = Dinov2Model.from_pretrained(path)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    return official_backbone_to_hf(load_state_dict(path))


def split_official_lorat(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """Split an official LoRAT file into (trainable tensors, frozen backbone tensors, meta scalars)."""
    trainable, frozen, meta = {}, {}, {}
    for key, tensor in state.items():
        if key in _META_KEYS:
            meta[key] = tensor.item()
        elif key == "token_type_embed" or key.startswith("head.") or ".lora." in key:
            trainable[key] = tensor
        else:
            frozen[key] = tensor
    return trainable, frozen, meta


def official_trainable_to_tracker(
    trainable: dict[str, torch.Tensor], swiglu_hidden: int | None
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """Map official trainable tensors to tracker names.

    Returns `(plain, lora)`: `plain` maps tracker parameter names (token-type embedding, head) to tensors; `lora`
    maps tracker Linear paths to `{"A": (r, in), "B": (out, r)}`. A LoRA on the fused `w12` becomes LoRAs on
    `gate_proj` and `up_proj` that share `A` and take the two row halves of `B`.
    """
    plain: dict[str, torch.Tensor] = {}
    lora: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    head_names = {"cls_mlp": "score_mlp", "reg_mlp": "box_mlp"}
    for key, tensor in trainable.items():
        if key == "token_type_embed":
            plain["embeddings.token_type_embeddings.weight"] = tensor
            continue
        head = re.match(r"^head\.(cls_mlp|reg_mlp)\.layers\.(\d+)\.(weight|bias)$", key)
        if head:
            plain[f"tracker_head.{head_names[head.group(1)]}.layers.{head.group(2)}.{head.group(3)}"] = tensor
            continue
        block = re.match(r"^blocks\.(\d+)\.(.+)\.lora\.(A|B)$", key)
        if block is None:
            unknown.append(key)
            continue
        index, module, which = block.groups()
        prefix = f"encoder.layer.{index}."
        if module == "mlp.w12":
            if swiglu_hidden is None:
                unknown.append(key)
                continue
            if which == "A":
                lora.setdefault(prefix + "mlp.gate_proj", {})["A"] = tensor
                lora.setdefault(prefix + "mlp.up_proj", {})["A"] = tensor
            else:
                lora.setdefault(prefix + "mlp.gate_proj", {})["B"] = tensor[:swiglu_hidden]
                lora.setdefault(prefix + "mlp.up_proj", {})["B"] = tensor[swiglu_hidden:]
        elif module in _BLOCK_MODULES:
            lora.setdefault(prefix + _BLOCK_MODULES[module], {})[which] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"Unrecognised LoRAT keys: {sorted(unknown)}")
    return plain, lora


def build_tracker_config(
    dinov2_config: Dinov2Config,
    variant: str | None,
    template_size: int | None,
    search_size: int | None,
    lora_r: int,
    lora_alpha: float,
    use_rslora: bool,
    search_area_factor: float | None = None,
) -> LoraTrackerConfig:
    """Tracker config for a converted checkpoint: the variant's preset (checked against the tensors) or explicit sizes."""
    if variant is not None:
        preset = LoraTrackerConfig.from_variant(variant)
        check_backbone_matches(preset.dinov2_config, dinov2_config, source="the DINOv2 weights")
        config = LoraTrackerConfig.from_variant(
            variant,
            dinov2_overrides=dict(
                image_size=dinov2_config.image_size,
                use_mask_token=False,
                qkv_bias=dinov2_config.qkv_bias,
            ),
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            use_rslora=use_rslora,
        )
    else:
        template_size = template_size or 112
        search_size = search_size or 224
        if search_area_factor is None:
            search_area_factor = next((f for t, s, f in GEOMETRIES.values() if s == search_size), 4.0)
        dinov2_config.use_mask_token = False
        config = LoraTrackerConfig(
            dinov2_config=dinov2_config,
            template_size=template_size,
            search_size=search_size,
            search_area_factor=search_area_factor,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            use_rslora=use_rslora,
        )
    if search_area_factor is not None:
        config.search_area_factor = search_area_factor
    for name, size in (("template_size", template_size), ("search_size", search_size)):
        if size is not None and variant is not None and getattr(config, name) != size:
            raise ValueError(
                f"--{name.replace('_', '-')} {size} contradicts variant {variant} ({getattr(config, name)})."
            )
    return config


@torch.no_grad()
def _load_trainable(peft_model, plain: dict[str, torch.Tensor], lora: dict[str, dict[str, torch.Tensor]]) -> None:
    tracker = peft_model.get_base_model()
    problems = []
    expected_lora = {name for name, module in tracker.named_modules() if hasattr(module, "lora_A")}
    missing = sorted(expected_lora - set(lora))
    extra = sorted(set(lora) - expected_lora)
    if missing or extra:
        problems.append(f"LoRA layers missing from the checkpoint: {missing}" if missing else "")
        problems.append(f"LoRA layers the model does not have: {extra}" if extra else "")
    for path, tensors in lora.items():
        if path not in expected_lora:
            continue
        module = tracker.get_submodule(path)
        for which, attr in (("A", "lora_A"), ("B", "lora_B")):
            if which not in tensors:
                problems.append(f"{path}: no LoRA {which}")
                continue
            target = getattr(module, attr)["default"].weight
            if target.shape != tensors[which].shape:
                problems.append(
                    f"{path} LoRA {which}: checkpoint {tuple(tensors[which].shape)} vs model {tuple(target.shape)}"
                )
            else:
                target.copy_(tensors[which])
    expected_plain = {}
    for name, module in tracker.named_modules():
        if hasattr(module, "modules_to_save"):
            for param_name, param in module.modules_to_save["default"].named_parameters():
                expected_plain[f"{name}.{param_name}"] = param
    for key in sorted(set(expected_plain) - set(plain)):
        problems.append(f"missing trainable tensor {key}")
    for key in sorted(set(plain) - set(expected_plain)):
        problems.append(f"unexpected trainable tensor {key}")
    for key, tensor in plain.items():
        if key in expected_plain:
            if expected_plain[key].shape != tensor.shape:
                problems.append(f"{key}: checkpoint {tuple(tensor.shape)} vs model {tuple(expected_plain[key].shape)}")
            else:
                expected_plain[key].copy_(tensor)
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointError("The LoRAT checkpoint does not fit the model:\n  " + "\n  ".join(problems))


def check_output_folder(output: str | os.PathLike, overwrite: bool) -> Path:
    """`output` as a Path; `FileExistsError` when it is a non-empty folder and `overwrite` is not set."""
    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output} exists and is not empty; pass --overwrite to replace it.")
    return output


def save_merged_model(model: PreTrainedModel, staging: Path, backbone_id: str | None) -> None:
    """Save a merged converted model into `staging`, naming `backbone_id` as its backbone when given."""
    model.config.backbone_name_or_path = backbone_id or model.config.backbone_name_or_path
    model.save_pretrained(staging)


def name_adapter_backbone(
    config: PretrainedConfig,
    staging: Path,
    dinov2: str | os.PathLike,
    backbone_id: str | None,
    converted_backbone: Callable[[], PreTrainedModel],
) -> None:
    """Set the backbone an adapter folder names: `backbone_id`, else the `dinov2` folder when it is a Hugging Face
    folder, else a converted copy (`converted_backbone()`) saved in `staging/backbone`."""
    if backbone_id:
        config.backbone_name_or_path = backbone_id
    elif os.path.isdir(str(dinov2)):
        config.backbone_name_or_path = os.path.abspath(str(dinov2))
    else:
        converted_backbone().save_pretrained(staging / "backbone")
        config.backbone_name_or_path = "backbone"


def convert(
    dinov2: str | os.PathLike,
    lorat: str | os.PathLike,
    output: str | os.PathLike,
    variant: str | None = None,
    num_heads: int | None = None,
    template_size: int | None = None,
    search_size: int | None = None,
    lora_alpha: float | None = None,
    merge: bool = False,
    backbone_id: str | None = None,
    overwrite: bool = False,
    search_area_factor: float | None = None,
) -> Path:
    """Convert official weights into `output` (an adapter folder, or a merged model folder with `merge=True`).

    The adapter folder names its backbone: `backbone_id` when given (e.g. `facebook/dinov2-base`), the folder when
    `dinov2` is a Hugging Face folder, otherwise a converted copy saved in `output/backbone`. Written atomically.
    """
    output = check_output_folder(output, overwrite)
    if variant is None and num_heads is None:
        raise ValueError("The number of attention heads is not stored in the tensors: pass --variant or --num-heads.")
    heads = num_heads or BACKBONES[variant.split("-")[0]].num_attention_heads if variant else num_heads

    backbone_state = load_dinov2(dinov2)
    if variant is not None:
        _check_variant_shape(backbone_state, variant)
    dinov2_config = infer_dinov2_config(backbone_state, heads)
    trainable, frozen, meta = split_official_lorat(load_state_dict(lorat))
    if not trainable:
        raise CheckpointError(f"{lorat} holds no LoRAT trainable tensors (token_type_embed, head.*, *.lora.A/B).")
    ranks = {t.shape[0] for k, t in trainable.items() if k.endswith(".lora.A")}
    if len(ranks) != 1:
        raise CheckpointError(f"Expected one LoRA rank across the checkpoint, found {sorted(ranks)}.")
    rank = ranks.pop()
    if lora_alpha is None:
        # Without the meta scalar the official merge uses scaling 1, i.e. alpha = r.
        lora_alpha = float(meta.get("lora_alpha", rank))
    use_rslora = bool(meta.get("use_rslora", False))
    _check_frozen_matches(frozen, backbone_state)

    config = build_tracker_config(
        dinov2_config, variant, template_size, search_size, rank, lora_alpha, use_rslora, search_area_factor
    )
    swiglu_hidden = (
        backbone_state["encoder.layer.0.mlp.gate_proj.weight"].shape[0] if dinov2_config.use_swiglu_ffn else None
    )
    plain, lora = official_trainable_to_tracker(trainable, swiglu_hidden)

    model = LoraTrackerModel(config)
    model.load_backbone_state_dict(backbone_state)
    peft_model = add_adapters(model, init_lora_weights=False)
    _load_trainable(peft_model, plain, lora)
    tie_swiglu_lora_a_(peft_model)
    peft_model.eval()

    def converted_backbone() -> Dinov2Model:
        mask_token = "embeddings.mask_token" in backbone_state
        backbone = Dinov2Model(Dinov2Config(**{**dinov2_config.to_dict(), "use_mask_token": mask_token}))
        backbone.load_state_dict(backbone_state)
        return backbone

    with staged_directory(output, overwrite=overwrite) as staging:
        if merge:
            save_merged_model(peft_model.merge_and_unload(), staging, backbone_id)
        else:
            name_adapter_backbone(config, staging, dinov2, backbone_id, converted_backbone)
            save_adapter_folder(peft_model, staging)
    return output


def _check_variant_shape(backbone_state: dict[str, torch.Tensor], variant: str) -> None:
    """Raise when the DINOv2 tensors do not have the width, depth or FFN type of `variant`."""
    try:
        spec = BACKBONES[variant.split("-")[0]]
    except KeyError:
        raise ValueError(f"Unknown variant {variant!r}.") from None
    hidden = backbone_state["embeddings.patch_embeddings.projection.weight"].shape[0]
    depth = 1 + max((int(k.split(".")[2]) for k in backbone_state if k.startswith("encoder.layer.")), default=-1)
    swiglu = "encoder.layer.0.mlp.gate_proj.weight" in backbone_state
    found = (hidden, depth, swiglu)
    expected = (spec.hidden_size, spec.num_hidden_layers, spec.use_swiglu_ffn)
    if found != expected:
        raise ValueError(
            f"The DINOv2 weights (width {hidden}, {depth} layers, {'SwiGLU' if swiglu else 'GELU'} MLP) do not match "
            f"variant {variant} (width {expected[0]}, {expected[1]} layers, {'SwiGLU' if expected[2] else 'GELU'} MLP)."
        )


def _check_frozen_matches(frozen: dict[str, torch.Tensor], backbone_state: dict[str, torch.Tensor]) -> None:
    """A full official state dict also carries the frozen DINOv2 tensors: warn if they differ from `--dinov2`."""
    if not frozen:
        return
    frozen = {k: v for k, v in frozen.items() if k != "pos_embed"}  # LoRAT keeps a resampled copy
    converted = official_backbone_to_hf(frozen)
    differing = [k for k, v in converted.items() if k in backbone_state and not torch.equal(v, backbone_state[k])]
    if differing:
        logger.warning(
            "%d frozen tensors of the LoRAT state dict differ from the --dinov2 weights (e.g. %s); the --dinov2 "
            "weights are used.",
            len(differing),
            differing[0],
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m lorat_hf.convert`: the `lorat-convert` command (`lorat_hf.commands.convert`), under its old name."""
    from .commands.convert import main as convert_command

    return convert_command(argv, prog="python -m lorat_hf.convert")


if __name__ == "__main__":
    sys.exit(main())
