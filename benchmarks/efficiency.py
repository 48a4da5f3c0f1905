"""The paper's efficiency table for every LoRAT variant: parameters, FLOPs and latency, merged and unmerged.

    python benchmarks/efficiency.py            # counts + FLOPs for all 8 variants, CPU latency up to L-224
    python benchmarks/efficiency.py --quick    # latency for S-224 and B-224 only

* Parameters: `lorat_hf.count_parameters` on the meta device (no memory): total and trainable of the unmerged
  PeftModel (what trains), and total of the merged model (what runs). Checked against the official numbers where the
  paper/code give them (B-224, L-224, g-378; 378 variants: + (729 - 256) * width frozen position entries).
* FLOPs of one batch-1 forward with `torch.utils.flop_counter.FlopCounterMode` on the meta device. GMACs = GFLOPs / 2
  is the unit of the paper's table (fvcore counts a multiply-add as one).
* Latency: model-only forward, batch 1, fp32, on the available device (median). On a CPU the variants above
  `--max-latency-variant` are skipped: the larger ones take minutes per forward and several GB of weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference import (  # noqa: E402
    add_timing_arguments,
    environment_line,
    interleaved_medians,
    machine_description,
    model_inputs,
    run_metered,
    timing_device,
)
from results_md import RESULTS_FILE, update_results_section  # noqa: E402

from lorat_hf import VARIANTS, LoraTrackerConfig, LoraTrackerModel, add_adapters, count_parameters  # noqa: E402
from lorat_hf.configuration_lora_tracker import BACKBONES  # noqa: E402

# Official (total, trainable) parameter counts of the unmerged training model at 224 px (B-224 and L-224 as given;
# g-224 from the given g-378 minus its larger frozen position table).
OFFICIAL_224 = {
    "B": (98_708_741, 12_985_349),
    "L": (335_744_005, 32_518_149),
    "g": (1_215_727_621 - (729 - 256) * 1536, 80_234_501),
}
# The paper's table (MACs of one forward, ECCV version) where available.
# L-378: the LoRATv2 paper's figure for the same model (325 G).
PAPER_GMACS = {"B-224": 30, "L-224": 103, "L-378": 325, "g-378": 1161}
LATENCY_ORDER = ("S-224", "B-224", "S-378", "B-378", "L-224", "L-378", "g-224", "g-378")


def official_counts(variant: str) -> tuple[int, int] | None:
    size, resolution = variant.split("-")
    if size not in OFFICIAL_224:
        return None
    total, trainable = OFFICIAL_224[size]
    if resolution == "378":
        total += (729 - 256) * BACKBONES[size].hidden_size  # the larger frozen shared position table
    return total, trainable


def count_and_flops(variant: str) -> dict:
    """Parameter counts and forward FLOPs of a variant, merged and unmerged, without allocating weights."""
    config = LoraTrackerConfig.from_variant(variant)
    with torch.device("meta"):
        unmerged = add_adapters(LoraTrackerModel(config)).eval()
        merged = copy.deepcopy(unmerged).merge_and_unload().eval()
    inputs = model_inputs(config, 1, "meta")
    flops = {}
    for name, model in (("merged", merged), ("unmerged", unmerged)):
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(**inputs)
        flops[name] = counter.get_total_flops()
    total, trainable = count_parameters(unmerged)
    merged_total, _ = count_parameters(merged)
    return {
        "variant": variant,
        "total_params": total,
        "trainable_params": trainable,
        "merged_params": merged_total,
        "official": official_counts(variant),
        "flops_merged": flops["merged"],
        "flops_unmerged": flops["unmerged"],
    }


def latency(variant: str, repeats: int, warmup: int, device: torch.device) -> dict:
    config = LoraTrackerConfig.from_variant(variant)
    torch.manual_seed(0)
    unmerged = add_adapters(LoraTrackerModel(config)).eval()
    merged = copy.deepcopy(unmerged).merge_and_unload().eval().to(device)
    unmerged = unmerged.to(device)
    inputs = model_inputs(config, 1, device)
    with torch.inference_mode():
        result = interleaved_medians(
            {"merged": lambda: merged(**inputs), "unmerged": lambda: unmerged(**inputs)}, repeats, warmup, device
        )
    return result


def to_markdown(rows: list[dict], latencies: dict, skipped: list[str], repeats: int, conditions: str) -> str:
    lines = [
        "## Efficiency (`benchmarks/efficiency.py`)",
        "",
        f"{environment_line()}. Parameters and FLOPs on the meta device (batch 1, one forward); latency = model-only "
        f"forward, batch 1, fp32, median of {repeats}, merged and unmerged timed in turn; {conditions}.",
        "",
        "| variant | total params (unmerged) | trainable | merged params | official total / trainable | GFLOPs merged | GFLOPs unmerged | GMACs merged (paper) | latency merged | latency unmerged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        variant = row["variant"]
        official = row["official"]
        official_text = (
            "—"
            if official is None
            else (
                f"{official[0]:,} / {official[1]:,} "
                + ("✓" if official == (row["total_params"], row["trainable_params"]) else "✗ MISMATCH")
            )
        )
        timing = latencies.get(variant)
        merged_ms = f"{timing['merged'] * 1e3:.0f} ms" if timing else "skipped"
        unmerged_ms = f"{timing['unmerged'] * 1e3:.0f} ms" if timing else "skipped"
        paper = PAPER_GMACS.get(variant)
        paper_text = f" ({paper})" if paper else ""
        lines.append(
            f"| {variant} | {row['total_params']:,} | {row['trainable_params']:,} | {row['merged_params']:,} | {official_text} "
            f"| {row['flops_merged'] / 1e9:.1f} | {row['flops_unmerged'] / 1e9:.1f} "
            f"| {row['flops_merged'] / 2e9:.1f}{paper_text} | {merged_ms} | {unmerged_ms} |"
        )
    lines += [
        "",
        "* Trainable = LoRA A/B (r = 64 on every Linear of every layer) + token-type embedding + head; the merged model "
        "has no LoRA parameter left, so it costs the FLOPs of the plain architecture.",
        "* Official counts: B-224, L-224 and g-378 as given for the official code/paper; B-378, L-378 and g-224 follow by "
        "the official rule (only the frozen position table differs: (729 - 256) x width). S has no official figure.",
    ]
    if skipped:
        by_variant = {row["variant"]: row for row in rows}
        measured = [by_variant[v]["flops_merged"] / t["merged"] for v, t in latencies.items() if v in by_variant]
        throughput = sum(measured) / len(measured) if measured else None
        estimates = ", ".join(
            f"{v} ~{by_variant[v]['flops_merged'] / throughput:.1f} s"
            for v in skipped
            if throughput and v in by_variant
        )
        lines.append(
            f"* Latency not measured for {', '.join(skipped)} to keep the run to a few minutes (building each model "
            "allocates its fp32 weights twice, merged and unmerged: ~10 GB for g). "
            + (
                f"At the {throughput / 1e9:.0f} GFLOP/s measured above, one merged forward would take {estimates}. "
                if estimates
                else ""
            )
            + "Time them with `--max-latency-variant g-378` (the default on a GPU)."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser, repeats=3, warmup=1)
    parser.add_argument(
        "--max-latency-variant",
        choices=LATENCY_ORDER,
        help="largest variant to time (default: L-224 on CPU, g-378 on GPU)",
    )
    parser.add_argument("--quick", action="store_true", help="time S-224 and B-224 only, 2 repeats")
    args = parser.parse_args(argv)
    device = timing_device(args)
    if args.quick:
        args.repeats, args.max_latency_variant = 2, args.max_latency_variant or "B-224"
    largest = args.max_latency_variant or ("g-378" if device.type == "cuda" else "L-224")
    timed = LATENCY_ORDER[: LATENCY_ORDER.index(largest) + 1]

    print(f"{machine_description()}; FLOPs/params on meta, latency on {device}")
    rows, latencies, mismatches = [], {}, []
    for variant in VARIANTS:
        row = count_and_flops(variant)
        rows.append(row)
        if row["official"] is not None and row["official"] != (row["total_params"], row["trainable_params"]):
            mismatches.append(variant)
        print(
            f"{variant}: params {row['total_params']:,} (trainable {row['trainable_params']:,}, merged {row['merged_params']:,}), "
            f"GFLOPs merged {row['flops_merged'] / 1e9:.1f} / unmerged {row['flops_unmerged'] / 1e9:.1f}"
        )

    def time_variants() -> None:
        for variant in LATENCY_ORDER:
            if variant in timed:
                latencies[variant] = latency(variant, args.repeats, args.warmup, device)
                print(
                    f"{variant}: latency merged {latencies[variant]['merged'] * 1e3:.0f} ms, unmerged {latencies[variant]['unmerged'] * 1e3:.0f} ms"
                )

    _, others, conditions = run_metered(time_variants)
    skipped = [v for v in LATENCY_ORDER if v not in timed]
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_description(),
                    "rows": rows,
                    "latency_s": latencies,
                    "skipped": skipped,
                    "repeats": args.repeats,
                    "other_processes_cpu_share": others,
                    "conditions": conditions,
                },
                indent=2,
            )
        )
    if not args.no_write:
        update_results_section(
            "efficiency",
            to_markdown(rows, latencies, skipped, args.repeats, conditions),
        )
        print(f"Updated {RESULTS_FILE}")
    if mismatches:
        print(f"Parameter counts differ from the official ones for {mismatches}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
