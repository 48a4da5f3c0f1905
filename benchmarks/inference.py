"""Inference speed of the LoRAT tracker: merged vs unmerged LoRA, vs a plain DINOv2, batch 1 vs batched sequences.

    python benchmarks/inference.py            # B-224, a few minutes on 2 CPU cores
    python benchmarks/inference.py --quick    # fewer repeats, under a minute or two

Random weights (speed does not depend on them), fp32, the model built from `LoraTrackerConfig.from_variant(...)`.
Measures, on the available device:

* model-only forward latency at batch 1 (median): the merged tracker, the unmerged PeftModel, and a plain
  `Dinov2Model` fed the same number of patch tokens (template + search) as the baseline;
* end-to-end tracking FPS (search crop + forward + decoding + state update) with `LoraTracker` one frame at a time,
  and with the batched engine (`track_step`) stepping several sequences per forward.

Results are printed and written to the "Inference" section of benchmarks/RESULTS.md (`--no-write` to skip).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from results_md import RESULTS_FILE, update_results_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lorat_hf import LoraTrackerConfig, LoraTrackerModel, add_adapters  # noqa: E402
from lorat_hf.tracking import LoraTracker, initialize_targets, track_step  # noqa: E402

# ----- shared helpers (also used by efficiency.py) -----

T = TypeVar("T")


def machine_description() -> str:
    """E.g. `CPU: 2 cores (2 torch threads), no GPU` or the GPU name."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU: {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), no GPU"


def environment_line() -> str:
    return (
        f"{machine_description()}; torch {torch.__version__}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(
    functions: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Wall time of each function in each of `repeats` rounds, timed round-robin (a, b, c, a, b, c, ...) so that every
    candidate sees the same machine conditions (a shared machine's load changes between back-to-back blocks of runs)."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(
    functions: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device
) -> dict[str, float]:
    """Median wall time of each function over interleaved rounds (`interleaved_times`)."""
    times = interleaved_times(functions, repeats, warmup, device)
    return {name: statistics.median(values) for name, values in times.items()}


class OtherProcessesMeter:
    """Share of the machine's CPU time used by OTHER processes between `start()` and `stop()` (Linux `/proc/stat`
    minus this process's own CPU time); None where `/proc/stat` is unavailable. On a shared machine this says how
    much the figures were disturbed."""

    def __init__(self):
        self._start: tuple[float, float, float] | None = None

    @staticmethod
    def _snapshot() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as handle:
                fields = [float(v) for v in handle.readline().split()[1:]]
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - fields[4]) / ticks  # everything but idle and iowait, in seconds
        own = sum(os.times()[:4])  # user + system time of this process and its children
        return sum(fields) / ticks, busy, own

    def start(self) -> OtherProcessesMeter:
        self._start = self._snapshot()
        return self

    def stop(self) -> float | None:
        end = self._snapshot()
        if self._start is None or end is None:
            return None
        total, busy, own = (b - a for a, b in zip(self._start, end, strict=True))
        return max(0.0, busy - own) / total if total > 0 else None


def load_average() -> str:
    """The 1-minute load average, or "n/a" where the OS does not report it."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        return "n/a"


def add_timing_arguments(parser: argparse.ArgumentParser, repeats: int, warmup: int) -> None:
    """`--device`, `--repeats`, `--warmup`, `--threads`, `--no-write`, `--json`: the options of a timing benchmark."""
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this JSON file")


def timing_device(args: argparse.Namespace) -> torch.device:
    """The device `add_timing_arguments`' `--device` names (CUDA when available), with `--threads` applied."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def run_metered(timed: Callable[[], T]) -> tuple[T, float | None, str]:
    """Run `timed()`: its result, the share of the CPUs other processes used meanwhile (None where not measurable)
    and a sentence saying how busy the machine was. Warns when others used 10 % of the CPUs or more."""
    load_before = load_average()
    meter = OtherProcessesMeter().start()
    result = timed()
    others = meter.stop()
    conditions = (
        f"other processes used {'n/a' if others is None else f'{others:.0%}'} of the CPUs during the timing "
        f"(1-min load average {load_before} before, {load_average()} after)"
    )
    if others is not None and others >= 0.10:
        print(f"WARNING: other processes used {others:.0%} of the CPUs: the latencies are disturbed.")
    return result, others, conditions


def model_inputs(
    config: LoraTrackerConfig, batch_size: int, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Random normalised template/search crops and token types of the right shapes."""
    (zw, zh), (xw, xh) = config.template_size_wh, config.search_size_wh
    gzw, gzh = config.template_grid_wh
    meta = torch.device(device).type == "meta"
    make = torch.zeros if meta else torch.randn
    token_types = torch.zeros(batch_size, gzh, gzw, dtype=torch.long, device=device)
    if not meta:
        token_types[:, gzh // 4 : 3 * gzh // 4, gzw // 4 : 3 * gzw // 4] = 1
    return {
        "template_pixel_values": make(batch_size, 3, zh, zw, device=device),
        "search_pixel_values": make(batch_size, 3, xh, xw, device=device),
        "template_token_type_ids": token_types,
    }


def plain_dinov2_input_size(config: LoraTrackerConfig) -> tuple[int, int]:
    """(height, width) of an image giving a plain DINOv2 as many patch tokens as template + search together."""
    patch = config.patch_size
    tokens = (
        config.template_grid_wh[0] * config.template_grid_wh[1] + config.search_grid_wh[0] * config.search_grid_wh[1]
    )
    rows = config.search_grid_wh[1]
    columns = -(-tokens // rows)  # ceil: at least as many tokens as the tracker
    return rows * patch, columns * patch


# ----- this benchmark -----


def synthetic_sequences(count: int, frames: int, size_wh: tuple[int, int] = (640, 480), seed: int = 0):
    """`count` sequences of random-texture frames with a moving bright square, and their first boxes (xyxy)."""
    rng = np.random.default_rng(seed)
    width, height = size_wh
    sequences, boxes = [], []
    for index in range(count):
        background = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
        background = np.kron(background, np.ones((16, 16, 1), dtype=np.uint8))
        x, y, side = 100 + 20 * index, 120 + 10 * index, 60
        video = []
        for t in range(frames):
            frame = background.copy()
            frame[y + 3 * t : y + 3 * t + side, x + 4 * t : x + 4 * t + side] = (250, 30, 30)
            video.append(frame)
        sequences.append(video)
        boxes.append([x, y, x + side, y + side])
    return sequences, np.asarray(boxes, dtype=np.float64)


def build_models(variant: str, device: torch.device):
    """(merged LoraTrackerModel, unmerged PeftModel) with random weights, eval mode, on `device`."""
    config = LoraTrackerConfig.from_variant(variant)
    torch.manual_seed(0)
    peft_model = add_adapters(LoraTrackerModel(config)).eval()
    merged = copy.deepcopy(peft_model).merge_and_unload().eval()
    return config, merged.to(device), peft_model.to(device)


def forward_flops(variant: str) -> dict[str, int]:
    """FLOPs of one batch-1 forward (meta device): the merged tracker and the plain DINOv2 baseline."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import Dinov2Model

    config = LoraTrackerConfig.from_variant(variant)
    with torch.device("meta"):
        tracker, plain = LoraTrackerModel(config).eval(), Dinov2Model(config.dinov2_config).eval()
    height, width = plain_dinov2_input_size(config)
    flops = {}
    for name, model, inputs in (
        ("merged", tracker, model_inputs(config, 1, "meta")),
        ("plain_dinov2", plain, {"pixel_values": torch.zeros(1, 3, height, width, device="meta")}),
    ):
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(**inputs)
        flops[name] = counter.get_total_flops()
    return flops


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    from transformers import Dinov2Model

    meter = OtherProcessesMeter().start()
    config, merged, unmerged = build_models(args.variant, device)
    plain = Dinov2Model(config.dinov2_config).eval().to(device)
    height, width = plain_dinov2_input_size(config)
    plain_pixels = torch.randn(1, 3, height, width, device=device)
    inputs = model_inputs(config, 1, device)
    tracker_tokens = inputs["template_token_type_ids"][0].numel() + config.search_grid_wh[0] * config.search_grid_wh[1]
    print(
        f"{args.variant}: {tracker_tokens} tracker tokens; plain DINOv2 at {height}x{width} = {height // 14 * (width // 14)} patch tokens + cls"
    )

    with torch.inference_mode():
        merged_output = merged(**inputs)
        check = (merged_output.score_map - unmerged(**inputs).score_map).abs().max().item()
        search_features = merged_output.last_hidden_state
        load_before = load_average()
        latency = interleaved_medians(
            {
                "plain_dinov2": lambda: plain(pixel_values=plain_pixels),
                "merged": lambda: merged(**inputs),
                "unmerged": lambda: unmerged(**inputs),
                "head": lambda: merged.tracker_head(search_features),
            },
            args.repeats,
            args.warmup,
            device,
        )
        batch_sizes = sorted({1, 2, 4, args.sequences})
        batched_inputs = {size: model_inputs(config, size, device) for size in batch_sizes}
        sweep = interleaved_medians(
            {size: (lambda x=batched_inputs[size]: merged(**x)) for size in batch_sizes},
            args.repeats,
            1,
            device,
        )
        per_frame = {size: sweep[size] / size for size in batch_sizes}
    for name, seconds in latency.items():
        print(f"  forward batch 1  {name:13s} {seconds * 1e3:8.1f} ms")
    print(
        "  merged forward per frame by batch size: "
        + ", ".join(f"{b}: {t * 1e3:.1f} ms" for b, t in per_frame.items())
    )
    print(f"  merged vs unmerged max |score map difference|: {check:.2e}")

    # Tracking FPS. The four set-ups advance frame by frame in turn, so that they share the machine's conditions.
    sequences, first_boxes = synthetic_sequences(args.sequences, args.frames + 2)
    setups = {}
    for name, model in (("merged", merged), ("unmerged", unmerged)):
        tracker = LoraTracker(model)
        tracker.init(sequences[0][0], first_boxes[0], box_format="xyxy")
        states = initialize_targets(model, tracker.image_processor, [v[0] for v in sequences], first_boxes)
        setups[f"{name}_sequential"] = (lambda t, tracker=tracker: tracker.track(sequences[0][t]), 1)
        setups[f"{name}_batched"] = (
            lambda t, model=model, states=states, processor=tracker.image_processor: track_step(
                model, processor, states, [v[t] for v in sequences]
            ),
            args.sequences,
        )
    step_times: dict[str, list[float]] = {name: [] for name in setups}
    for t in range(1, args.frames + 2):
        for name, (step, _) in setups.items():
            start = time.perf_counter()
            step(t)
            synchronize(device)
            if t > 1:  # frame 1 warms up
                step_times[name].append(time.perf_counter() - start)
    # median step time: robust to other jobs' load spikes on a shared machine
    fps = {name: per_step / statistics.median(step_times[name]) for name, (_, per_step) in setups.items()}
    load_after = load_average()
    others = meter.stop()
    # One sequential tracking step is one batch-1 forward plus ~1 ms: if the two disagree, the machine's load changed.
    consistency = fps["merged_sequential"] * (latency["merged"] + 1e-3)
    stable = 0.85 <= consistency <= 1.15 and (others is None or others < 0.10)
    if not stable:
        print(
            f"  WARNING: other processes used {'n/a' if others is None else f'{others:.0%}'} of the CPUs and "
            f"sequential tracking ran at {consistency:.2f}x the speed the latency predicts: the figures are "
            "disturbed; rerun on a quiet machine."
        )
    for name in ("merged", "unmerged"):
        print(
            f"  tracking {name:9s} sequential {fps[f'{name}_sequential']:6.2f} FPS | "
            f"{args.sequences} sequences per forward {fps[f'{name}_batched']:6.2f} FPS"
        )
    return {
        "variant": args.variant,
        "device": str(device),
        "machine": machine_description(),
        "latency_s": latency,
        "merged_seconds_per_frame_by_batch": per_frame,
        "fps": fps,
        "merged_vs_unmerged_max_abs_diff": check,
        "plain_dinov2_tokens": height // 14 * (width // 14) + 1,
        "tracker_tokens": tracker_tokens,
        "sequences": args.sequences,
        "frames": args.frames,
        "repeats": args.repeats,
        "load_average": f"{load_before} before, {load_after} after",
        "flops": forward_flops(args.variant),
        "stable": stable,
        "other_processes_cpu_share": others,
    }


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def to_markdown(result: dict) -> str:
    latency, fps = result["latency_s"], result["fps"]
    merged_vs_plain = latency["merged"] / latency["plain_dinov2"] - 1
    backbone_vs_plain = (latency["merged"] - latency["head"]) / latency["plain_dinov2"] - 1
    unmerged_vs_merged = latency["unmerged"] / latency["merged"] - 1
    batched_gain = fps["merged_batched"] / fps["merged_sequential"]
    flops_vs_plain = result["flops"]["merged"] / result["flops"]["plain_dinov2"] - 1
    lines = [
        f"## Inference (`benchmarks/inference.py`, {result['variant']})",
        "",
        f"{environment_line()}. Random weights, fp32, `torch.inference_mode()`; latency = median of {result['repeats']} "
        f"runs; the compared set-ups are timed in turn (round-robin). Other processes used "
        f"{_share(result['other_processes_cpu_share'])} of the CPUs during the run (1-min load average "
        f"{result['load_average']}).",
        "",
        "| model-only forward, batch 1 | latency | vs plain DINOv2 |",
        "|---|---|---|",
        f"| plain `Dinov2Model`, {result['plain_dinov2_tokens']} tokens (baseline) | {latency['plain_dinov2'] * 1e3:.1f} ms | — |",
        f"| LoRAT merged ({result['tracker_tokens']} tokens + head) | {latency['merged'] * 1e3:.1f} ms | {merged_vs_plain:+.1%} |",
        f"| LoRAT merged without its head (forward − head time) | {(latency['merged'] - latency['head']) * 1e3:.1f} ms | {backbone_vs_plain:+.1%} |",
        f"| LoRAT unmerged (PeftModel, r = 64 on every Linear) | {latency['unmerged'] * 1e3:.1f} ms | {latency['unmerged'] / latency['plain_dinov2'] - 1:+.1%} |",
        "",
        "| merged forward, batch size | "
        + " | ".join(str(b) for b in result["merged_seconds_per_frame_by_batch"])
        + " |",
        "|---|" + "---|" * len(result["merged_seconds_per_frame_by_batch"]),
        "| time per frame | "
        + " | ".join(f"{t * 1e3:.1f} ms" for t in result["merged_seconds_per_frame_by_batch"].values())
        + " |",
        "",
        "| end-to-end tracking (crop + forward + decode) | merged | unmerged |",
        "|---|---|---|",
        f"| 1 sequence, one frame per forward | {fps['merged_sequential']:.2f} FPS | {fps['unmerged_sequential']:.2f} FPS |",
        f"| {result['sequences']} sequences per forward (`track_step`) | {fps['merged_batched']:.2f} FPS | {fps['unmerged_batched']:.2f} FPS |",
        "",
        f'* Target "merged costs no more than the plain backbone (within 2%)": backbone part '
        f"{'met' if backbone_vs_plain <= 0.02 else 'NOT met'} ({backbone_vs_plain:+.1%}); whole tracker "
        f"{merged_vs_plain:+.1%}, of which the MLP head ({latency['head'] * 1e3:.1f} ms, which a plain DINOv2 does not "
        f"have) is {latency['head'] / latency['plain_dinov2']:.1%}. FLOPs: {flops_vs_plain:+.1%} for the whole "
        "tracker. Merging removes the LoRA cost entirely: the merged model is a plain `LoraTrackerModel` with no "
        "adapter module left.",
        f'* Target "batched beats sequential per frame": {"met" if batched_gain > 1 else "NOT met"} '
        f"({batched_gain:.2f}x the per-frame throughput with {result['sequences']} sequences per forward, merged). "
        "On a CPU the forward is compute-bound already at batch 1, so batching gains little (see the batch-size "
        "row; large batches also push activations out of the caches); on a GPU, batch 1 leaves most of the device "
        "idle and batching many sequences is what makes evaluation fast.",
        f"* Unmerged LoRA costs {unmerged_vs_merged:+.1%} per forward over merged: load adapters with "
        "`merge=True` (the default of `LoraTracker.from_pretrained`) for inference.",
        f"* Merged and unmerged outputs agree to {result['merged_vs_unmerged_max_abs_diff']:.1e} (score-map logits).",
        *(
            []
            if result["stable"]
            else ["* **Other jobs disturbed this run (see the CPU share above): the figures are noisy.**"]
        ),
        f"* Tracking FPS = frames per step / median step time over {result['frames']} steps (after one warm-up step), "
        "640x480 synthetic frames; crop + decode cost about 1 ms per frame, the rest is the forward.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="B-224", help="official variant (default B-224)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per latency figure")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--frames", type=int, default=5, help="timed steps per FPS figure (after one warm-up step)")
    parser.add_argument("--sequences", type=int, default=8, help="sequences per forward in the batched run")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="3 repeats, 3 frames, 4 sequences")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.frames, args.sequences = 3, 1, 3, 4
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if not args.no_write:
        update_results_section("inference", to_markdown(result))
        print(f"Updated {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
