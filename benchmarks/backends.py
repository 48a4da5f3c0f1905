"""Inference backends side by side, interleaved in one run: official LoRAT, eager, fused, bf16, ONNX Runtime fp32/int8.

    python benchmarks/backends.py --official-code DIR      # B-224, 2 threads; DIR holds the official `trackit/`
    LORAT_OFFICIAL_CODE=DIR python benchmarks/backends.py --quick

Random weights (speed does not depend on them). One process times, round-robin (a, b, c, a, b, c, ...), so that every
candidate sees the same machine load:

* model forward at batch 1 and 8: the official `LoRAT_DINOv2` built from its own code (`--official-code` or
  `$LORAT_OFFICIAL_CODE`, a folder holding the official repository's `trackit` package; skipped with a note when
  absent), the merged lorat_hf model (eager transformers layers), the fused model (`fuse_for_inference`), the fused
  model with bf16 weights, and the ONNX Runtime graph in fp32 and dynamic int8 (`lorat_hf.export_onnx`);
* a large fp32 and bf16 matrix multiply in the same rounds, through torch's BLAS (MKL) and through oneDNN: the faster
  of the two is the machine's measured matmul peak, to which each forward's FLOP rate is compared;
* end-to-end tracking (crop + forward + decoding) frames/s with `LoraTracker` for each lorat_hf backend.

Accuracy of the lower-precision paths is measured too: box error in px against the official fixtures' merged outputs
(tests/fixtures/lorat-official, 4 tiny models), and success AUC of the embedded demo tracker on the held-out synthetic
test set of `benchmarks/compare_opencv.py` (24 videos, seed 2024) with each backend, at 2 and at 1 thread(s): a
tracker runs closed-loop, so rounding differences of the int8 kernels between thread counts change trajectories and
the AUC by up to ~1.5 points; the table gives both runs and their mean.

Results are printed and written to the "Backends" section of benchmarks/RESULTS.md (`--no-write` to skip).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from inference import (
    OtherProcessesMeter,
    environment_line,
    forward_flops,
    interleaved_times,
    load_average,
    model_inputs,
    synthetic_sequences,
)
from results_md import RESULTS_FILE, update_results_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lorat_hf import LoraTrackerConfig, LoraTrackerModel, load_tracker_model  # noqa: E402
from lorat_hf.engine.backend_onnxruntime import OnnxRuntimeBackend  # noqa: E402
from lorat_hf.export_onnx import (  # noqa: E402
    ONNX_INT8_MODEL_NAME,
    ONNX_MODEL_NAME,
    compare_outputs,
    export_onnx,
    quantize_int8,
    synthetic_tracker_inputs,
)
from lorat_hf.modeling_lora_tracker_fused import fuse_for_inference  # noqa: E402
from lorat_hf.tracking import LoraTracker  # noqa: E402

SECTION = "backends"
OFFICIAL_FIXTURES = REPO / "tests" / "fixtures" / "lorat-official"
FIXTURE_CASES = ("model_a_224_gelu", "model_b_378_gelu", "model_c_224_swiglu", "model_d_224_gelu_alpha_eq_r")
TEST_SET = dict(preset="medium", seed=2024, num_sequences=24)  # benchmarks/compare_opencv.py's held-out videos
MATMUL_SIZE = 2048


# ----- models -----


def official_model(code_dir: str | None, config: LoraTrackerConfig):
    """The official `LoRAT_DINOv2` (merged inference structure: fused qkv, no LoRA) for `config`, or None with the
    reason when the official code is not available."""
    if not code_dir:
        return None, "no --official-code / $LORAT_OFFICIAL_CODE given"
    if not (Path(code_dir) / "trackit").is_dir():
        return None, f"{code_dir} has no trackit/ package"
    sys.path.insert(0, str(Path(code_dir).resolve()))
    try:
        from trackit.models.backbone.dinov2.builder import build_dino_v2_backbone
        from trackit.models.methods.LoRAT.lorat import LoRAT_DINOv2
    except ImportError as error:
        return None, f"the official code does not import here ({error})"
    names = {384: "ViT-S/14", 768: "ViT-B/14", 1024: "ViT-L/14", 1536: "ViT-g/14"}
    torch.manual_seed(0)
    backbone = build_dino_v2_backbone(names[config.hidden_size], load_pretrained=False)
    model = LoRAT_DINOv2(backbone, config.template_grid_wh, config.search_grid_wh).eval()
    return model, "built from the official code (trackit, commit in the folder given)"


def matmul_candidates() -> dict:
    """`MATMUL_SIZE`^3 fp32 and bf16 GEMMs through torch's BLAS (`a @ b`) and through oneDNN (the kernel of the fused
    layers): on AMD CPUs MKL's GEMM is not the machine's fastest."""
    generator = torch.Generator().manual_seed(0)
    candidates = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(dtype) for _ in range(2))
        candidates[f"matmul {name}"] = lambda a=a, b=b: a @ b
        if torch.backends.mkldnn.is_available():  # a @ b.T: the same FLOPs
            candidates[f"matmul {name} oneDNN"] = lambda a=a, b=b: torch.ops.mkldnn._linear_pointwise(
                a, b, None, "none", [], "none"
            )
    return candidates


# ----- accuracy -----


def fixture_box_errors(work: Path) -> list[dict]:
    """Box error (search-crop px, every cell / the official best cell) of bf16 weights, ONNX Runtime fp32 and dynamic
    int8 against the official merged outputs of each fixture model."""
    from safetensors.torch import load_file

    from lorat_hf.convert import convert

    rows = []
    for name in FIXTURE_CASES:
        case = OFFICIAL_FIXTURES / name
        config = json.loads((case / "config.json").read_text())
        io = load_file(case / "io.safetensors")
        folder = convert(
            case / "dinov2.safetensors",
            case / "lorat_release.safetensors",
            work / name / "merged",
            num_heads=config["backbone"]["num_heads"],
            template_size=config["geometry"]["template_size_wh"][0],
            search_size=config["geometry"]["search_size_wh"][0],
            merge=True,
        )
        model = fuse_for_inference(load_tracker_model(folder))
        search_px = config["geometry"]["search_size_wh"][0]
        inputs = {
            "template_pixel_values": io["z"],
            "search_pixel_values": io["x"],
            "template_token_type_ids": io["z_feat_mask"],
        }
        reference = (io["score_map_merged"], io["boxes_merged"])
        export_onnx(
            model,
            work / name / "onnx",
            quantize="dynamic",
            int8_tolerance={"box_px": float("inf")},
            num_check_samples=2,
        )
        bf16 = copy.deepcopy(model).to(torch.bfloat16)
        with torch.inference_mode():
            half = bf16(**{k: v.bfloat16() if v.is_floating_point() else v for k, v in inputs.items()})
            fp32 = model(**inputs)
        outputs = {"fused fp32": (fp32.score_map, fp32.pred_boxes), "bf16 weights": (half.score_map, half.pred_boxes)}
        for label, file_name in (("ORT fp32", ONNX_MODEL_NAME), ("ORT int8 (dynamic)", ONNX_INT8_MODEL_NAME)):
            backend = OnnxRuntimeBackend(work / name / "onnx", file_name)
            outputs[label] = backend.run(io["z"], io["x"], io["z_feat_mask"])
        for label, output in outputs.items():
            result = compare_outputs(reference, tuple(t.float().numpy() for t in output), search_px)
            rows.append({"case": name, "path": label, **result.__dict__})
    return rows


def test_set_auc(work: Path, thread_counts: list[int]) -> tuple[list[dict], str]:
    """Success AUC of the embedded demo tracker on the compare_opencv held-out videos, per backend and thread count."""
    from lorat_hf.assets import default_model_path, synthetic_training_videos
    from lorat_hf.data.synthetic import SyntheticVideoConfig, write_generic_layout
    from lorat_hf.evaluation import load_ground_truth, run_evaluation

    model = default_model_path()
    settings, _ = synthetic_training_videos(model) or ({}, ())
    video_config = SyntheticVideoConfig.preset(TEST_SET["preset"], **settings)
    test_root = work / "testset"
    write_generic_layout(test_root, TEST_SET["num_sequences"], video_config, seed=TEST_SET["seed"])
    num_frames = sum(len(s.frame_paths) for s in load_ground_truth("generic", test_root))
    onnx_dir = work / "demo-onnx"
    export_onnx(model, onnx_dir, quantize="dynamic")
    static_dir = work / "demo-onnx-static"  # the same export with a statically calibrated int8 graph
    shutil.copytree(onnx_dir, static_dir)
    calibration = synthetic_tracker_inputs(LoraTrackerConfig.from_pretrained(model), 32, seed=3)
    quantize_int8(onnx_dir / ONNX_MODEL_NAME, static_dir / ONNX_INT8_MODEL_NAME, "static", calibration)
    plain_dir = work / "demo-onnx-per-tensor"  # the first int8 setting: per-tensor scales, every weight MatMul int8
    shutil.copytree(onnx_dir, plain_dir)
    quantize_int8(onnx_dir / ONNX_MODEL_NAME, plain_dir / ONNX_INT8_MODEL_NAME, per_channel=False, fp32_modules=())
    runs = {
        "fused fp32": dict(model=model),
        "bf16 weights": dict(model=model, dtype="bfloat16"),
        "ORT fp32": dict(model=onnx_dir, backend="onnxruntime"),
        "ORT int8 (dynamic)": dict(model=onnx_dir, backend="onnxruntime-int8"),
        "ORT int8 (static)": dict(model=static_dir, backend="onnxruntime-int8"),
        "ORT int8 (dynamic, per-tensor, head int8)": dict(model=plain_dir, backend="onnxruntime-int8"),
    }
    rows, threads = [], torch.get_num_threads()
    for label, options in runs.items():
        aucs = {}
        for count in thread_counts:
            torch.set_num_threads(count)  # ONNX Runtime sessions take torch's thread count
            report = run_evaluation(
                options["model"], "generic", test_root, work / "results" / f"{label.replace(' ', '_')}-{count}",
                batch_size=8, protocol="ostrack", mode="uav", device="cpu", progress=False,
                **{k: v for k, v in options.items() if k != "model"},
            )  # fmt: skip
            aucs[count] = report["metrics"]["success_auc"]
        torch.set_num_threads(threads)
        rows.append({"path": label, "auc": statistics.mean(aucs.values()), "by_threads": aucs})
    return rows, f"{TEST_SET['num_sequences']} videos, {num_frames} frames"


# ----- speed -----


def speed(args, config: LoraTrackerConfig, work: Path) -> dict:
    torch.manual_seed(0)
    eager = LoraTrackerModel(config).eval()
    fused = fuse_for_inference(copy.deepcopy(eager))
    bf16 = fuse_for_inference(copy.deepcopy(eager)).to(torch.bfloat16)
    onednn = {  # the fused layers' matrix multiplies through oneDNN (opt-in: not bit for bit with F.linear)
        "fused fp32 oneDNN": fuse_for_inference(copy.deepcopy(eager), onednn_kernels=True),
        "fused bf16 weights oneDNN": fuse_for_inference(copy.deepcopy(eager), onednn_kernels=True).to(torch.bfloat16),
    }
    official, official_note = official_model(args.official_code, config)
    print(f"official LoRAT: {official_note}")
    start = time.perf_counter()
    try:  # the parity check of one crop is enough here: accuracy is measured on the fixtures and the test set
        export_onnx(
            fused, work / "onnx", quantize="dynamic", int8_tolerance={"box_px": float("inf")}, num_check_samples=1
        )
        ort = {
            "ORT fp32": OnnxRuntimeBackend(work / "onnx", ONNX_MODEL_NAME, num_threads=args.threads),
            "ORT int8 (dynamic)": OnnxRuntimeBackend(work / "onnx", ONNX_INT8_MODEL_NAME, num_threads=args.threads),
        }
        ort_note = f"ONNX export + parity check + int8 quantisation took {time.perf_counter() - start:.0f} s"
    except ImportError as error:
        ort, ort_note = {}, f"ONNX Runtime paths skipped: {error}"
    print(ort_note)
    flops = forward_flops(args.variant)["merged"]
    matmuls = matmul_candidates()
    load_start = load_average()
    meter = OtherProcessesMeter().start()
    times = {}
    for batch in args.batch_sizes:
        inputs = model_inputs(config, batch)
        candidates = {**forward_candidates(inputs, official, eager, fused, bf16, ort), **matmuls}
        half = {k: v.bfloat16() if v.is_floating_point() else v for k, v in inputs.items()}
        for label, model in onednn.items():
            feed = half if "bf16" in label else inputs
            candidates[label] = lambda model=model, feed=feed: model(**feed)
        print(f"batch {batch}: timing {len(candidates)} candidates x {args.repeats} rounds")
        with torch.inference_mode():
            warmup = args.warmup if batch == args.batch_sizes[0] else 0  # the first batch size warmed everything up
            times[batch] = interleaved_times(candidates, args.repeats, warmup, torch.device("cpu"))
        print({k: f"{statistics.median(v) * 1e3:.0f} ms" for k, v in times[batch].items()})
    fps = tracking_fps(args, fused, bf16, eager, ort)
    busy = meter.stop()
    return {
        "times": times,
        "flops": flops,
        "fps": fps,
        "official_note": official_note,
        "ort_note": ort_note,
        "others_busy": busy,
        "load": (load_start, load_average()),
    }


def forward_candidates(inputs: dict, official, eager, fused, bf16, ort: dict) -> dict:
    """One call per path on the same inputs (bf16 inputs for the bf16 model)."""
    half = {k: v.bfloat16() if v.is_floating_point() else v for k, v in inputs.items()}
    ordered = [inputs[k] for k in ("template_pixel_values", "search_pixel_values", "template_token_type_ids")]
    candidates = {"official fp32": lambda: official(*ordered)} if official is not None else {}
    candidates["eager fp32"] = lambda: eager(**inputs)
    candidates["fused fp32"] = lambda: fused(**inputs)
    candidates["fused bf16 weights"] = lambda: bf16(**half)
    for label, backend in ort.items():
        candidates[label] = lambda backend=backend: backend.run(*ordered)
    return candidates


def tracking_fps(args, fused, bf16, eager, ort) -> dict[str, float]:
    """Frames/s of `LoraTracker.track` per backend, one frame at a time, interleaved frame by frame."""
    (video,), boxes = synthetic_sequences(1, args.fps_frames + 1, seed=1)
    trackers = {
        "eager fp32": LoraTracker(eager, box_format="xyxy"),
        "fused fp32": LoraTracker(fused, box_format="xyxy"),
        "fused bf16 weights": LoraTracker(bf16, box_format="xyxy"),
        **{label: LoraTracker(backend, box_format="xyxy") for label, backend in ort.items()},
    }
    for tracker in trackers.values():
        tracker.init(video[0], boxes[0])
    seconds = dict.fromkeys(trackers, 0.0)
    for frame in video[1:]:
        for label, tracker in trackers.items():
            start = time.perf_counter()
            tracker.track(frame)
            seconds[label] += time.perf_counter() - start
    return {label: args.fps_frames / value for label, value in seconds.items()}


# ----- report -----


def speed_table(result: dict, batch_sizes: list[int]) -> str:
    """Median time per path; the ratio to the official forward is the median of the per-round ratios (both timed in the
    same round), which a load burst spanning part of a round disturbs less than a ratio of medians."""
    flops = result["flops"]
    lines = [
        "| path | batch | ms / forward | ms / sample | vs official fp32 | GFLOP/s | % of matmul peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in batch_sizes:
        rounds = result["times"][batch]
        medians = {label: statistics.median(values) for label, values in rounds.items()}
        gemm = {
            label: 2 * MATMUL_SIZE**3 / seconds for label, seconds in medians.items() if label.startswith("matmul")
        }
        peak = {dtype: max(rate for label, rate in gemm.items() if dtype in label) for dtype in ("fp32", "bf16")}
        official = rounds.get("official fp32")
        for label, seconds in medians.items():
            if label.startswith("matmul"):
                continue
            rate = flops * batch / seconds
            dtype = "bf16" if "bf16" in label else "fp32"
            ratio = "n/a"
            if official:
                ratio = f"{statistics.median(t / o for t, o in zip(rounds[label], official, strict=True)):.2f}x"
            lines.append(
                f"| {label} | {batch} | {seconds * 1e3:.0f} | {seconds * 1e3 / batch:.0f} | {ratio} | "
                f"{rate / 1e9:.0f} | {100 * rate / peak[dtype]:.0f}% ({dtype}) |"
            )
        for label, seconds in medians.items():
            if label.startswith("matmul"):
                dtype = "bf16" if "bf16" in label else "fp32"
                lines.append(
                    f"| {label} ({MATMUL_SIZE}^3) | - | {seconds * 1e3:.0f} | - | - | {gemm[label] / 1e9:.0f} | "
                    f"{100 * gemm[label] / peak[dtype]:.0f}% ({dtype}) |"
                )
    return "\n".join(lines)


def to_markdown(args, result: dict, fixture_rows: list[dict], auc_rows: list[dict], test_set: str) -> str:
    fps = " · ".join(f"{label} {value:.2f}" for label, value in result["fps"].items())
    busy = result["others_busy"]
    fixture_lines = [
        "| fixture | path | box px, every cell (max) | box px, best cell | same best cell |",
        "|---|---|---|---|---|",
    ]
    for row in fixture_rows:
        fixture_lines.append(
            f"| {row['case']} | {row['path']} | {row['box_px_max']:.3f} | {row['best_cell_box_px_max']:.3f} | "
            f"{row['best_cell_agreement']:.0%} |"
        )
    reference_auc = next((row["auc"] for row in auc_rows if row["path"] == "fused fp32"), None)
    counts = list(auc_rows[0]["by_threads"]) if auc_rows else []
    auc_lines = [
        f"| path | success AUC, mean | at {' / '.join(str(c) for c in counts)} thread(s) | mean vs fp32 |",
        "|---|---|---|---|",
    ]
    for row in auc_rows:
        delta = f"{row['auc'] - reference_auc:+.2f}" if reference_auc is not None else "n/a"
        each = " / ".join(f"{auc:.2f}" for auc in row["by_threads"].values())
        auc_lines.append(f"| {row['path']} | {row['auc']:.2f} | {each} | {delta} |")
    return f"""## Backends: official LoRAT vs fused, bf16, ONNX Runtime fp32/int8 (`benchmarks/backends.py`, {args.variant})

`python benchmarks/backends.py --official-code DIR` — {environment_line()}, {args.threads} threads; 2-core CPU,
shared: during the timed rounds other processes used {"n/a" if busy is None else f"{busy:.0%}"} of the CPU time (1-min
load {result["load"][0]} at the start, {result["load"][1]} at the end); only the interleaved ratios are meaningful on a
loaded machine, not the absolute times. Random weights; {args.repeats} interleaved rounds (median), forward FLOPs
{result["flops"] / 1e9:.1f} GFLOP at batch 1. Official LoRAT: {result["official_note"]}. The matmul peak is the faster
of torch's BLAS (MKL) and oneDNN on a {MATMUL_SIZE}x{MATMUL_SIZE} GEMM timed in the same rounds; bf16 paths are compared
with the bf16 peak, the others with the fp32 peak. {result["ort_note"]}.

{speed_table(result, args.batch_sizes)}

End-to-end tracking (`LoraTracker.track`: crop + forward + decoding, one object, frames/s, interleaved frame by frame
over {args.fps_frames} frames): {fps}.

Accuracy of each path against the official fixtures' merged fp32 outputs (tests/fixtures/lorat-official; box error in
search-crop px):

{chr(10).join(fixture_lines) if fixture_rows else "(skipped: --skip-accuracy)"}

Success AUC of the embedded demo tracker on the held-out synthetic test set of `benchmarks/compare_opencv.py`
({test_set}, protocol ostrack/uav, batch 8):

{chr(10).join(auc_lines) if auc_rows else "(skipped: --skip-accuracy)"}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="B-224")
    parser.add_argument("--official-code", default=os.environ.get("LORAT_OFFICIAL_CODE"), help="folder with trackit/")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--fps-frames", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="S-224, 2 rounds, batch 1 and 2; RESULTS.md untouched")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--skip-accuracy", action="store_true", help="speed only")
    parser.add_argument("--auc-threads", type=int, nargs="+", default=[2, 1], help="thread counts of the AUC runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.variant, args.repeats, args.batch_sizes, args.fps_frames, args.no_write = "S-224", 2, [1, 2], 2, True
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = LoraTrackerConfig.from_variant(args.variant)
    with tempfile.TemporaryDirectory(prefix="lorat-backends-") as folder:
        work = Path(folder)
        result = speed(args, config, work)
        fixture_rows, auc_rows, test_set = [], [], "skipped"
        if not args.skip_accuracy:
            fixture_rows = fixture_box_errors(work / "fixtures")
            auc_rows, test_set = test_set_auc(work / "auc", args.auc_threads)
    markdown = to_markdown(args, result, fixture_rows, auc_rows, test_set)
    print(markdown)
    if not args.no_write:
        update_results_section(SECTION, markdown, RESULTS_FILE)
        print(f"updated {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
