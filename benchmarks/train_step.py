#!/usr/bin/env python
"""Training-step speed and peak memory: LoRA versus full fine-tuning, tiny recipe and the B-224 geometry.

    python benchmarks/train_step.py                  # measure, print a table, update benchmarks/RESULTS.md
    python benchmarks/train_step.py --quick          # fewer steps, no B-224 full fine-tuning (< 1 min)
    python benchmarks/train_step.py --memory-table   # the estimated per-GPU memory table of examples/README.md

Each case runs in a FRESH subprocess (so peak memory is that case's alone) and times the optimizer step of
examples/train.py's loop (forward with labels -> official loss -> backward -> clip -> AdamW with the official
parameter groups) on random inputs: data loading is benchmarked separately (benchmarks/data_pipeline.py). Weights are
random (`LoraTrackerConfig.from_variant`, nothing downloaded). Peak memory is the process's maximum resident set
size (`resource.getrusage`, which sees torch's allocations; tracemalloc does not) on CPU, and
`torch.cuda.max_memory_allocated` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from results_md import RESULTS_FILE, update_results_section

REPO = Path(__file__).resolve().parents[1]
SECTION = "train_step"

CASES = {
    # name: (recipe, overrides of the recipe, bf16 mixed precision as train.py runs it)
    "tiny LoRA": ("tiny-synthetic.yaml", [], False),
    "tiny full fine-tuning": ("tiny-synthetic.yaml", ["--full_finetune", "--layer_decay", "0.7"], False),
    "B-224 LoRA": ("B-224.yaml", [], False),
    "B-224 full fine-tuning": ("baseline-B-224.yaml", [], False),
    "B-224 LoRA, bf16": ("B-224.yaml", [], True),
    "B-224 full fine-tuning, bf16": ("baseline-B-224.yaml", [], True),
}
QUICK_SKIP = ("B-224 full fine-tuning", "B-224 LoRA, bf16", "B-224 full fine-tuning, bf16")


def run_case(name: str, batch_size: int, steps: int, warmup: int, gradient_checkpointing: bool) -> dict:
    """Measure one case in this process (called in a fresh subprocess)."""
    import torch

    from lorat_hf import count_parameters
    from lorat_hf.training import (
        build_tracker,
        cast_for_mixed_precision_,
        create_optimizer,
        parse_train_args,
        tracker_config_from_args,
    )
    from lorat_hf.training.builders import enable_activation_checkpointing

    rss_before_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # interpreter + torch + imports
    recipe, overrides, mixed_precision = CASES[name]
    config = parse_train_args(["--config", str(REPO / "examples" / "configs" / recipe), *overrides])
    tracker_config = tracker_config_from_args(config.model, config.peft)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_tracker(tracker_config, config.peft).to(device).train()
    if gradient_checkpointing:
        enable_activation_checkpointing(model.get_base_model() if hasattr(model, "get_base_model") else model)
    if mixed_precision:  # what train.py does under --mixed_precision bf16: frozen matrices bf16, trainable fp32
        cast_for_mixed_precision_(model, torch.bfloat16)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision)
    optimizer = create_optimizer(
        model, config.training.learning_rate, config.training.weight_decay, layer_decay=config.peft.layer_decay
    )
    total, trainable = count_parameters(model)
    (zw, zh), (xw, xh) = tracker_config.template_size_wh, tracker_config.search_size_wh
    (gw, gh) = tracker_config.template_grid_wh
    generator = torch.Generator().manual_seed(0)
    batch = {
        "template_pixel_values": torch.randn(batch_size, 3, zh, zw, generator=generator),
        "search_pixel_values": torch.randn(batch_size, 3, xh, xw, generator=generator),
        "template_token_type_ids": torch.randint(0, 2, (batch_size, gh, gw), generator=generator),
        "labels": torch.tensor([[0.35, 0.30, 0.62, 0.71]]).repeat(batch_size, 1),
    }
    batch = {key: value.to(device) for key, value in batch.items()}
    trainable_parameters = [p for p in model.parameters() if p.requires_grad]
    rss_after_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def step() -> float:
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable_parameters, config.training.max_grad_norm or 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    durations = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        durations.append(time.perf_counter() - start)
    fastest = min(durations)  # like timeit: the least disturbed step, as other processes compete for the CPU
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "case": name,
        "device": str(device),
        "batch_size": batch_size,
        "steps": steps,
        "steps_per_second": 1.0 / fastest,
        "pairs_per_second": batch_size / fastest,
        "median_step_seconds": sorted(durations)[len(durations) // 2],
        "peak_memory_mib": peak,
        "memory_before_build_mib": rss_before_build if device.type == "cpu" else 0.0,
        "memory_after_build_mib": rss_after_build,
        "total_parameters": total,
        "trainable_parameters": trainable,
        "gradient_checkpointing": gradient_checkpointing,
        "torch_threads": torch.get_num_threads(),
    }


def measure(name: str, batch_size: int, steps: int, warmup: int, gradient_checkpointing: bool) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--batch-size",
        str(batch_size),
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
    ] + (["--gradient-checkpointing"] if gradient_checkpointing else [])
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------------------------
# Estimated per-GPU memory (README table)
# ----------------------------------------------------------------------------------------------------------------

GIB = 2**30


def estimate_memory(
    variant: str,
    full_finetune: bool,
    per_gpu_batch: int,
    strategy: str,
    num_gpus: int = 8,
    gradient_checkpointing: bool = False,
) -> dict[str, float]:
    """Per-GPU training memory estimate (GiB) under bf16 autocast. See `memory_table` for the method."""
    import torch

    from lorat_hf import count_parameters
    from lorat_hf.configuration_lora_tracker import LoraTrackerConfig
    from lorat_hf.training import PeftArguments, build_tracker

    config = LoraTrackerConfig.from_variant(variant)
    peft = PeftArguments(full_finetune=full_finetune, layer_decay=0.8 if full_finetune else None)
    with torch.device("meta"):
        model = build_tracker(config, peft)
    total, trainable = count_parameters(model)
    frozen = total - trainable
    sharded = strategy in ("fsdp2", "zero3")
    # FSDP/DeepSpeed keep every weight fp32 (their mixed precision casts for compute); DDP stores frozen weights bf16.
    weights = (frozen * (4 if sharded else 2) + trainable * 4) / (num_gpus if sharded else 1)
    grads = trainable * 4 / (num_gpus if strategy in ("fsdp2", "zero2", "zero3") else 1)
    adam = trainable * 8 / (num_gpus if strategy in ("fsdp2", "zero2", "zero3") else 1)
    dinov2 = config.dinov2_config
    (zw, zh), (xw, xh) = config.template_grid_wh, config.search_grid_wh
    tokens = zw * zh + xw * xh
    layer_bytes = 34 * tokens * dinov2.hidden_size * per_gpu_batch  # bf16 activations of one layer (SDPA: no s^2 term)
    if gradient_checkpointing:
        activations = dinov2.num_hidden_layers * 2 * tokens * dinov2.hidden_size * per_gpu_batch + layer_bytes
    else:
        activations = dinov2.num_hidden_layers * layer_bytes
    parts = {"weights": weights, "gradients": grads, "adam": adam, "activations": activations}
    parts = {key: value / GIB for key, value in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def memory_table() -> str:
    """Markdown table of estimated per-GPU memory for every variant, LoRA vs full fine-tuning, per strategy."""
    rows = [
        "| variant | training | per-GPU batch | DDP | DDP + grad. checkpointing | FSDP2 (8 GPUs) | ZeRO-2 (8 GPUs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in ("S-224", "S-378", "B-224", "B-378", "L-224", "L-378", "g-224", "g-378"):
        for full in (False, True):
            cells = []
            for strategy, checkpointing in (("ddp", False), ("ddp", True), ("fsdp2", False), ("zero2", False)):
                cells.append(f"{estimate_memory(variant, full, 16, strategy, 8, checkpointing)['total']:.1f}")
            rows.append(f"| {variant} | {'full fine-tuning' if full else 'LoRA'} | 16 | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------


def machine_description() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU: {os.cpu_count()} cores, no GPU ({platform.processor() or platform.machine()})"


def render(results: list[dict], machine: str, command: str) -> str:
    lines = [
        "## Training step (examples/train.py loop)",
        "",
        f"Machine: {machine}. Command: `{command}`. Random weights, random inputs (no data loading), fp32 unless "
        "marked bf16 (frozen matrices stored bf16, trainable weights fp32, bf16 autocast: train.py's mixed precision), "
        "forward + official loss + backward + clip + AdamW; each case in a fresh process. steps/s comes from the "
        "fastest timed step (the machine is shared; see the load average). Peak RSS is the process maximum; 'training "
        "memory' subtracts the RSS before the model was built (interpreter, torch, imports: ~0.35 GiB), leaving "
        "weights + gradients + AdamW states + activations. For the tiny model LoRA r=64 has more trainable parameters "
        "than the model itself (peft also keeps a trainable copy of the head), so only B-224 compares meaningfully.",
        "",
        "| case | batch | trainable / total params | steps/s | pairs/s | peak RSS (MiB) | training memory (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['batch_size']} | {r['trainable_parameters']:,} / {r['total_parameters']:,} | "
            f"{r['steps_per_second']:.3f} | {r['pairs_per_second']:.2f} | {r['peak_memory_mib']:.0f} | "
            f"{r['peak_memory_mib'] - r['memory_before_build_mib']:.0f} |"
        )
    by_case = {r["case"]: r for r in results}
    for label, suffix in (("tiny", ""), ("B-224", ""), ("B-224 bf16", ", bf16")):
        size = label.split()[0]
        lora, full = by_case.get(f"{size} LoRA{suffix}"), by_case.get(f"{size} full fine-tuning{suffix}")
        if lora and full:
            lines.append("")
            lora_mib = lora["peak_memory_mib"] - lora["memory_before_build_mib"]
            full_mib = full["peak_memory_mib"] - full["memory_before_build_mib"]
            lines.append(
                f"{label}: training memory LoRA {lora_mib:.0f} MiB vs full fine-tuning {full_mib:.0f} MiB "
                f"(full / LoRA = {full_mib / lora_mib:.2f}x); steps/s {lora['steps_per_second']:.3f} vs "
                f"{full['steps_per_second']:.3f}."
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 timed steps; skip B-224 full fine-tuning")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--tiny-batch", type=int, default=32)
    parser.add_argument("--b224-batch", type=int, default=2)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update RESULTS.md")
    parser.add_argument("--memory-table", action="store_true", help="print the README memory estimate table")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_case(args.worker, args.batch_size, args.steps, args.warmup, args.gradient_checkpointing)))
        return 0
    if args.memory_table:
        print(memory_table())
        return 0
    steps = args.steps or (3 if args.quick else 10)
    cases = [c for c in CASES if not (args.quick and c in QUICK_SKIP)]
    results = []
    load_before = os.getloadavg()[0]  # the machine may be shared: record how busy it was
    for name in cases:
        batch = args.tiny_batch if name.startswith("tiny") else args.b224_batch
        case_steps = steps if name.startswith("tiny") else max(3, steps // 2)
        result = measure(name, batch, case_steps, args.warmup, args.gradient_checkpointing)
        results.append(result)
        print(
            f"{name:24s} batch {batch:3d}: {result['steps_per_second']:.3f} steps/s, "
            f"{result['pairs_per_second']:.2f} pairs/s, peak {result['peak_memory_mib']:.0f} MiB",
            flush=True,
        )
    command = "python benchmarks/train_step.py" + (" --quick" if args.quick else "")
    machine = f"{machine_description()}; load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    section = render(results, machine, command)
    print(section)
    if not args.no_write:
        update_results_section(SECTION, section)
        print(f"Updated {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
