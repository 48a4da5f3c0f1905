"""`lorat-convert`: official LoRAT / LoRATv2 checkpoints (with their DINOv2 weights) -> lorat_hf folders.

    lorat-convert --variant B-224 --dinov2 dinov2_vitb14_pretrain.pth --lorat base.bin --output lorat-b224
    lorat-convert --model-type loratv2 --variant p1-B-224 --dinov2 BACKBONE --lorat model.safetensors --output out

Also runs as `python -m lorat_hf.convert` (as before) or `python -m lorat_hf.commands.convert`. The conversion itself
lives in `lorat_hf.convert` (LoRAT) and `lorat_hf.convert_loratv2` (LoRATv2); this module is only the command line.
Exit status 0 on success, 2 when the inputs are refused (the message says why).
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..convert import CheckpointError, convert
from ..convert_loratv2 import convert_loratv2

PROG = "lorat-convert"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-type",
        choices=("lorat", "loratv2"),
        default="lorat",
        help="lorat (LoRAT, ECCV 2024; default) or loratv2 (LoRATv2 streaming tracker, NeurIPS 2025)",
    )
    parser.add_argument(
        "--dinov2", required=True, help="official DINOv2 .pth/.safetensors or a Hugging Face DINOv2 folder"
    )
    parser.add_argument(
        "--lorat", required=True, help="official LoRAT release file (.bin = safetensors) or full state dict"
    )
    parser.add_argument("--output", required=True, help="output folder (adapter folder, or model folder with --merge)")
    parser.add_argument("--variant", help="official variant, e.g. B-224, L-378, g-378 (LoRATv2: p1-B-224, p2-L-378)")
    parser.add_argument("--num-heads", type=int, help="attention heads (instead of --variant)")
    parser.add_argument("--template-size", type=int, help="template crop size in px (default 112, or the variant's)")
    parser.add_argument(
        "--search-size",
        type=int,
        action="append",
        help="search crop size in px (default 224, or the variant's); LoRATv2: once per search region",
    )
    parser.add_argument(
        "--search-area-factor", type=float, help="search context factor (default 4.0 at 224, 5.0 at 378)"
    )
    parser.add_argument("--lora-alpha", type=float, help="LoRA alpha when the file does not store it (default: r)")
    parser.add_argument("--merge", action="store_true", help="merge LoRA and write a plain LoraTrackerModel folder")
    parser.add_argument("--backbone-id", help="DINOv2 the adapter should name, e.g. facebook/dinov2-base")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.add_argument(
        "--phase1-lorat",
        help="LoRATv2 phase 2: the phase-1 checkpoint (its streams are merged into the phase-2 model, as officially)",
    )
    return parser


def run_lorat(args: argparse.Namespace) -> int:
    """Convert a LoRAT checkpoint from parsed arguments (one search size)."""
    try:
        output = convert(
            args.dinov2,
            args.lorat,
            args.output,
            variant=args.variant,
            num_heads=args.num_heads,
            template_size=args.template_size,
            search_size=args.search_size[0] if args.search_size else None,
            lora_alpha=args.lora_alpha,
            merge=args.merge,
            backbone_id=args.backbone_id,
            overwrite=args.overwrite,
            search_area_factor=args.search_area_factor,
        )
    except (CheckpointError, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    loader = "LoraTrackerModel.from_pretrained" if args.merge else "LoraTracker.from_pretrained"
    print(f"Wrote {output}. Load it with {loader}({str(output)!r}).")
    return 0


def run_loratv2(args: argparse.Namespace) -> int:
    """Convert a LoRATv2 checkpoint from parsed arguments (one search size per region)."""
    if args.search_area_factor is not None:
        print("error: LoRATv2 uses the official area factors (4 for region 0, 5 for region 1).", file=sys.stderr)
        return 2
    try:
        output = convert_loratv2(
            dinov2=args.dinov2,
            lorat=args.lorat,
            output=args.output,
            variant=args.variant,
            num_heads=args.num_heads,
            template_size=args.template_size,
            search_sizes=args.search_size,
            lora_alpha=args.lora_alpha,
            phase1_lorat=args.phase1_lorat,
            merge=args.merge,
            backbone_id=args.backbone_id,
            overwrite=args.overwrite,
        )
    except (CheckpointError, ValueError, FileNotFoundError, FileExistsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kind = "merged Loratv2Model folder" if args.merge else "LoRATv2 adapter folder"
    print(f"Wrote {kind} to {output}")
    return 0


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.model_type == "loratv2":
        return run_loratv2(args)
    if args.phase1_lorat is not None:
        parser.error("--phase1-lorat is a LoRATv2 option (--model-type loratv2).")
    if args.search_size is not None and len(args.search_size) > 1:
        parser.error("LoRAT has one search region: give --search-size once.")
    return run_lorat(args)


if __name__ == "__main__":
    sys.exit(main())
