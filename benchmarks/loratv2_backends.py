"""LoRATv2 inference backends, interleaved in one run: merged (unfused) fp32, fused fp32, fused bf16 weights, ONNX
Runtime fp32 and dynamic int8, batch 1.

    python benchmarks/loratv2_backends.py                  # p1-B-224, 2 threads, 20 repeats
    python benchmarks/loratv2_backends.py --quick --no-write

Random weights (speed does not depend on them). Each backend runs LoRATv2's streaming API over a one-row KV cache:
the per-frame step (`track_region` of the tracked region over the cache) and the template init (`init_template`, once
per target), all candidates timed round-robin (a, b, c, a, b, c, ...) in one process so that every one sees the same
machine load. The ONNX graphs come from `lorat_hf.export_onnx.export_onnx` (its streamed parity check included); the
fused and bf16 rows report their distance to the unfused model on the same calls (logits, boxes in search-crop px).
Results are printed and written to the "LoRATv2 backends" section of benchmarks/RESULTS.md (`--no-write` to skip).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch
from inference import OtherProcessesMeter, environment_line, interleaved_medians, load_average
from loratv2_efficiency import loratv2_inputs, streaming_calls
from results_md import RESULTS_FILE, update_results_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lorat_hf.configuration_loratv2 import LORATV2_VARIANTS, Loratv2Config  # noqa: E402
from lorat_hf.engine.backend_onnxruntime_loratv2 import OnnxLoratv2Network  # noqa: E402
from lorat_hf.export_onnx import export_onnx  # noqa: E402
from lorat_hf.modeling_lora_tracker_fused import fuse_for_inference  # noqa: E402
from lorat_hf.modeling_loratv2 import Loratv2Model  # noqa: E402

MACHINE = "2-core CPU, shared"


def cast_inputs(inputs: dict, dtype: torch.dtype) -> dict:
    """The random crops in `dtype` (token types stay integers)."""
    return {
        "template_pixel_values": inputs["template_pixel_values"].to(dtype),
        "search_pixel_values": [pixels.to(dtype) for pixels in inputs["search_pixel_values"]],
        "template_token_type_ids": inputs["template_token_type_ids"],
    }


def distance(reference, output, search_size: int) -> tuple[float, float]:
    """Largest logit difference and largest box difference (search-crop px) of two `track_region` outputs."""
    score = float((output.score_map.float() - reference.score_map).abs().max())
    boxes = float((output.pred_boxes.float() - reference.pred_boxes).abs().max()) * search_size
    return score, boxes


def run(variant: str, repeats: int, warmup: int, threads: int, int8: bool, export_dir: Path) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = Loratv2Config.from_variant(variant)
    eager = Loratv2Model(config).eval()
    models = {
        "merged, unfused fp32": (eager, torch.float32),
        "fused fp32": (fuse_for_inference(copy.deepcopy(eager)), torch.float32),
        "fused, bf16 weights": (fuse_for_inference(copy.deepcopy(eager)).to(torch.bfloat16), torch.bfloat16),
    }
    print(f"exporting {variant} to ONNX (with the streamed parity check) ...", flush=True)
    started = time.perf_counter()
    report = export_onnx(
        models["fused fp32"][0], export_dir, quantize="dynamic" if int8 else "none", num_check_samples=2
    )
    print(f"exported in {time.perf_counter() - started:.0f} s", flush=True)
    models["ONNX Runtime fp32"] = (OnnxLoratv2Network(export_dir, num_threads=threads), torch.float32)
    if int8:
        models["ONNX Runtime int8 (dynamic)"] = (OnnxLoratv2Network(export_dir, True, threads), torch.float32)
    inputs = loratv2_inputs(config, "cpu")
    search_size = max(config.search_size_wh)
    functions, distances = {}, {}
    with torch.inference_mode():
        reference = None
        for name, (model, dtype) in models.items():
            calls = streaming_calls(model, cast_inputs(inputs, dtype))
            calls["init"]()
            output = calls["track"]()
            reference = output if reference is None else reference
            distances[name] = distance(reference, output, search_size)
            functions[f"{name}|track"], functions[f"{name}|init"] = calls["track"], calls["init"]
        load_before = load_average()
        meter = OtherProcessesMeter().start()
        medians = interleaved_medians(functions, repeats, warmup, torch.device("cpu"))
        others = meter.stop()
    conditions = (
        f"other processes used {'n/a' if others is None else f'{others:.0%}'} of the CPUs during the timing "
        f"(1-min load average {load_before} before, {load_average()} after)"
    )
    rows = [
        {
            "backend": name,
            "track_s": medians[f"{name}|track"],
            "init_s": medians[f"{name}|init"],
            "logit_diff": distances[name][0],
            "box_px_diff": distances[name][1],
        }
        for name in models
    ]
    return {"variant": variant, "rows": rows, "report": report, "conditions": conditions, "others": others}


def to_markdown(result: dict, repeats: int, threads: int) -> str:
    rows, report = result["rows"], result["report"]
    base_track, base_init = rows[0]["track_s"], rows[0]["init_s"]
    lines = [
        "## LoRATv2 backends (`benchmarks/loratv2_backends.py`)",
        "",
        f"Machine: {MACHINE}. {environment_line()}. LoRATv2-{result['variant']}, random weights, batch 1, one KV-cache "
        f"row, median of {repeats} rounds, every candidate timed round-robin in one run ({threads} threads); "
        f"{result['conditions']}.",
        "",
        "| backend | per frame (`track_region`) | vs unfused | template init | vs unfused | max logit diff | max box diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['track_s'] * 1e3:.0f} ms | {row['track_s'] / base_track:.2f}x "
            f"| {row['init_s'] * 1e3:.0f} ms | {row['init_s'] / base_init:.2f}x | {row['logit_diff']:.2g} "
            f"| {row['box_px_diff']:.2g} px |"
        )
    fp32 = report.fp32
    lines += [
        "",
        "* Ratios are times relative to the merged, unfused fp32 model (lower is faster). Differences are to the unfused "
        "model on the same first frame (box differences in search-crop px).",
        f"* The export's own streamed parity check (2 synthetic targets: template, then 3 tracked frames over each "
        f"runtime's own cache, batch 1 and 2): ONNX Runtime fp32 vs torch max logit diff {fp32.score_map_max_abs:.2g}, box "
        f"{fp32.box_px_max:.2g} px, KV cache {fp32.kv_cache_max_abs:.2g}"
        + (
            f"; int8 box at torch's best cell {report.int8.best_cell_box_px_max:.2g} px."
            if report.int8 is not None
            else "."
        ),
    ]
    if result["others"] is not None and result["others"] >= 0.10:
        lines.append(
            f"* Disturbed run: other processes used {result['others']:.0%} of the CPUs, so the absolute times are far "
            "above a quiet machine's and the ratios are indicative only; rerun on a quiet machine."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="p1-B-224", choices=list(LORATV2_VARIANTS))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    parser.add_argument("--no-int8", action="store_true", help="skip the dynamic int8 graph")
    parser.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up round")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    with tempfile.TemporaryDirectory() as scratch:
        result = run(args.variant, args.repeats, args.warmup, args.threads, not args.no_int8, Path(scratch) / "onnx")
    for row in result["rows"]:
        print(
            f"{row['backend']:30s} frame {row['track_s'] * 1e3:7.1f} ms  init {row['init_s'] * 1e3:7.1f} ms  "
            f"logit diff {row['logit_diff']:.2g}  box diff {row['box_px_diff']:.2g} px"
        )
    print(result["conditions"])
    if not args.no_write:
        update_results_section("loratv2-backends", to_markdown(result, args.repeats, args.threads))
        print(f"Updated {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
