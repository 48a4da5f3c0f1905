"""`lorat-export`: export a LoRAT tracker to ONNX, checked against torch with ONNX Runtime, optionally int8.

A LoRATv2 folder is exported as its template and search steps (phase 2: also the reference step) with the KV cache as
explicit inputs/outputs, checked over several streamed steps (`lorat_hf.export_onnx_loratv2`).

    lorat-export --model path/or/hub-id --output tracker-onnx
    lorat-export --model path/or/hub-id --output tracker-onnx --quantize dynamic
    lorat-track clip.mp4 --box 120,80,60,40 --model tracker-onnx --backend onnxruntime

The export refuses to finish (exit status 1, no folder written) when ONNX Runtime's outputs differ from torch's
beyond tolerance; input problems exit with status 2. Needs `pip install "lorat_hf[onnx]"`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..export_onnx import DEFAULT_OPSET, FP32_TOLERANCE, INT8_TOLERANCE, QUANTIZE_CHOICES, ExportParityError

PROG = "lorat-export"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Export a LoRAT or LoRATv2 tracker to ONNX (checked with ONNX Runtime)."
    )
    parser.add_argument(
        "--model", default=None, help="tracker folder or Hub repo id (default: the embedded demo tracker)"
    )
    parser.add_argument("--revision", help="Hub revision of --model")
    parser.add_argument("--output", required=True, type=Path, help="export folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        default="none",
        help="also write model_int8.onnx: dynamic int8, or static int8 calibrated on synthetic crops "
        "(per-channel encoder MatMuls; the head stays fp32)",
    )
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument(
        "--atol-score",
        type=float,
        default=FP32_TOLERANCE["score_map"],
        help="largest fp32 score-map (logit) difference accepted",
    )
    parser.add_argument(
        "--atol-box-px",
        type=float,
        default=FP32_TOLERANCE["box_px"],
        help="largest fp32 box difference accepted, search-crop px",
    )
    parser.add_argument(
        "--int8-atol-box-px",
        type=float,
        default=INT8_TOLERANCE["box_px"],
        help="largest int8 box difference accepted at the best cell, search-crop px",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `lorat-export`; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lorat_hf").setLevel(logging.INFO)  # not onnxruntime.quantization's per-tensor INFO lines
    from ..assets import default_model_path
    from ..export_onnx import export_onnx

    try:
        model = args.model or default_model_path()
        report = export_onnx(
            model,
            args.output,
            quantize=args.quantize,
            opset=args.opset,
            tolerance={"score_map": args.atol_score, "box_px": args.atol_box_px},
            int8_tolerance={"box_px": args.int8_atol_box_px},
            overwrite=args.overwrite,
            **({"revision": args.revision} if args.revision else {}),
        )
    except ExportParityError as error:
        print(f"{PROG}: parity check failed: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError, TypeError, ImportError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.output} (fp32 vs torch: score map {report.fp32.score_map_max_abs:.2e}, boxes "
        f"{report.fp32.box_px_max:.3f} px)"
    )
    if report.int8 is not None:
        print(
            f"int8 ({report.quantize}) vs torch fp32: best-cell boxes {report.int8.best_cell_box_px_max:.2f} px, same "
            f"best cell in {report.int8.best_cell_agreement:.0%} of the checks"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
