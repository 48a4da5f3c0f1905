"""LoRATv2 efficiency: parameters and FLOPs of every variant, and per-frame streaming latency against LoRAT.

    python benchmarks/loratv2_efficiency.py            # counts + FLOPs for the 4 variants, CPU latency of B-224
    python benchmarks/loratv2_efficiency.py --quick    # B variants only, fewer repeats

* Parameters (meta device, no memory): total and trainable of the training model (frozen backbone + one LoRA
  adapter per stream; phase 2 trains only its new stream) and the total of the merged inference model, whose every
  stream carries its own merged copy of the backbone Linears.
* FLOPs (`torch.utils.flop_counter.FlopCounterMode`, batch 1, merged weights): `init_template` (once per target),
  one tracked frame (`track_region` on the last region over the KV cache) and, in phase 2, one reference update
  (`update_region(0)`, only after a frame with confidence > 0.9). The streaming API checks its cache rows by value,
  which the meta device cannot do, so the calls run on the CPU with zero weights (up to ~4 GB for p2-L-378).
* Latency (random weights, fp32, batch 1, merged weights, medians, all candidates timed round-robin in ONE run):
  LoRATv2-B-224 per frame with the KV cache (`track_region`), the same model without the cache (the training-path
  forward, which re-encodes the template every frame), LoRAT-B-224 per frame (its one-stream forward re-encodes its
  112 px template every frame), and LoRATv2-B-224's template init.
"""

from __future__ import annotations

import argparse
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

from lorat_hf import LoraTrackerConfig, LoraTrackerModel, count_parameters  # noqa: E402
from lorat_hf.adapters_loratv2 import add_stream_adapters  # noqa: E402
from lorat_hf.configuration_loratv2 import LORATV2_VARIANTS, Loratv2Config  # noqa: E402
from lorat_hf.modeling_loratv2 import Loratv2Model  # noqa: E402

# The LoRATv2 paper's figures (loratv2-spec.md, "Reported results"): L-378 268 G MACs; speed on an RTX 5090.
PAPER_GMACS = {"p2-L-378": 268}
PAPER_FPS = {"p1-B-224": 713, "p2-L-378": 202}


def loratv2_inputs(config: Loratv2Config, device: torch.device | str) -> dict:
    """Random normalised crops of every stream (zeros on the meta device) and template token types."""
    meta = torch.device(device).type == "meta"
    make = torch.zeros if meta else torch.randn
    (zw, zh), (gw, gh) = config.template_size_wh, config.template_grid_wh
    token_types = torch.zeros(1, gh, gw, dtype=torch.long, device=device)
    if not meta:
        token_types[:, gh // 4 : 3 * gh // 4, gw // 4 : 3 * gw // 4] = 1
    return {
        "template_pixel_values": make(1, 3, zh, zw, device=device),
        "search_pixel_values": [make(1, 3, h, w, device=device) for w, h in config.search_sizes_wh],
        "template_token_type_ids": token_types,
    }


def streaming_calls(model: Loratv2Model, inputs: dict) -> dict:
    """`{name: callable}` for the streaming API over one KV-cache row: init, per-frame track, reference update."""
    config = model.config
    cache = model.new_kv_cache(1)
    last = config.num_search_regions - 1
    calls = {
        "init": lambda: model.init_template(
            inputs["template_pixel_values"], cache, template_token_type_ids=inputs["template_token_type_ids"]
        ),
        "track": lambda: model.track_region(last, inputs["search_pixel_values"][last], cache),
    }
    if config.num_search_regions > 1:
        calls["update"] = lambda: model.update_region(0, inputs["search_pixel_values"][0], cache)
    return calls


def count_and_flops(variant: str) -> dict:
    config = Loratv2Config.from_variant(variant)
    with torch.device("meta"):
        training = add_stream_adapters(Loratv2Model(config))
        merged = Loratv2Model(config).eval()
    total, trainable = count_parameters(training)
    merged_total, _ = count_parameters(merged)
    del training
    merged = merged.to_empty(device="cpu")
    for tensor in (*merged.parameters(), *merged.buffers()):
        tensor.data.zero_()  # FLOPs depend on shapes only; zeros keep the arithmetic cheap and finite
    inputs = loratv2_inputs(config, "meta")
    inputs = {
        k: (
            [t.new_zeros(t.shape, device="cpu") for t in v]
            if isinstance(v, list)
            else v.new_zeros(v.shape, device="cpu")
        )
        for k, v in inputs.items()
    }
    flops = {}
    for name, call in streaming_calls(merged, inputs).items():
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            call()
        flops[name] = counter.get_total_flops()
    return {
        "variant": variant,
        "total_params": total,
        "trainable_params": trainable,
        "merged_params": merged_total,
        "flops": flops,
    }


def latency(repeats: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Per-frame and init latency of LoRATv2-B-224 vs LoRAT-B-224 (random merged weights), timed round-robin."""
    torch.manual_seed(0)
    v2 = Loratv2Model(Loratv2Config.from_variant("p1-B-224")).eval().to(device)
    lorat_config = LoraTrackerConfig.from_variant("B-224")
    lorat = LoraTrackerModel(lorat_config).eval().to(device)
    v2_inputs, lorat_inputs = loratv2_inputs(v2.config, device), model_inputs(lorat_config, 1, device)
    calls = streaming_calls(v2, v2_inputs)
    with torch.inference_mode():
        calls["init"]()  # the cache holds a template before frames are timed
        return interleaved_medians(
            {
                "loratv2_frame": calls["track"],
                "lorat_frame": lambda: lorat(**lorat_inputs),
                "loratv2_frame_without_cache": lambda: v2(**v2_inputs),
                "loratv2_init": calls["init"],
            },
            repeats,
            warmup,
            device,
        )


def to_markdown(rows: list[dict], timing: dict[str, float] | None, repeats: int, conditions: str) -> str:
    lines = [
        "## LoRATv2 efficiency (`benchmarks/loratv2_efficiency.py`)",
        "",
        f"{environment_line()}. Parameters counted on the meta device; FLOPs (batch 1, merged weights) of the "
        "template init (once per target), of one tracked frame over the KV cache and, in phase 2, of one "
        "reference-region update (only after a frame with confidence > 0.9).",
        "",
        "| variant | total params (training) | trainable | merged params | GFLOPs init | GFLOPs per frame | GFLOPs reference update | GMACs per frame (paper) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        flops = row["flops"]
        update = f"{flops['update'] / 1e9:.1f}" if "update" in flops else "—"
        paper = PAPER_GMACS.get(row["variant"])
        lines.append(
            f"| {row['variant']} | {row['total_params']:,} | {row['trainable_params']:,} | {row['merged_params']:,} "
            f"| {flops['init'] / 1e9:.1f} | {flops['track'] / 1e9:.1f} | {update} "
            f"| {flops['track'] / 2e9:.1f}{f' ({paper})' if paper else ''} |"
        )
    lines += [
        "",
        "* Training params: the frozen backbone (each stream has its own copy of the backbone Linears) + one LoRA "
        "adapter per stream (r = 64 on every Linear) + token types, per-region norms and heads; phase 2 trains only its "
        "new stream. Merged: every stream's LoRA folded into its copy, so inference pays no LoRA cost.",
        "* The paper's per-frame figure for L-378 (268 G MACs) is taken from the spec's reported results, unverified "
        "against the paper's table; what it counts exactly (e.g. the reference update) is not stated there.",
    ]
    if timing:
        frame, lorat, uncached, init = (
            timing["loratv2_frame"],
            timing["lorat_frame"],
            timing["loratv2_frame_without_cache"],
            timing["loratv2_init"],
        )
        lines += [
            "",
            f"Latency, CPU, random weights, fp32, batch 1, merged weights, median of {repeats}, the four candidates "
            f"timed round-robin in one run ({torch.get_num_threads()} torch thread(s)); {conditions}.",
            "",
            "| per frame / once per target | latency | vs LoRAT-B-224 per frame |",
            "|---|---|---|",
            f"| LoRATv2-B-224 per frame, KV cache (`track_region`) | {frame * 1e3:.0f} ms | {lorat / frame:.2f}x faster |",
            f"| LoRAT-B-224 per frame (one-stream forward, 112 px template re-encoded) | {lorat * 1e3:.0f} ms | 1.00x |",
            f"| LoRATv2-B-224 per frame without the cache (training-path forward) | {uncached * 1e3:.0f} ms "
            f"| {lorat / uncached:.2f}x |",
            f"| LoRATv2-B-224 template init (`init_template`, once per target) | {init * 1e3:.0f} ms | — |",
            "",
            "* The KV cache makes a LoRATv2 frame cost only its 256 search tokens (attending to the 260 cached template "
            "tokens), although its template is 224 px (256 tokens) where LoRAT's is 112 px (64 tokens) and is re-encoded "
            "with every frame. The paper reports 713 fps for B-224 on an RTX 5090 (not comparable with this CPU).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser, repeats=7, warmup=2)
    parser.add_argument(
        "--quick", action="store_true", help="B variants only (the L ones need up to ~4 GB), 3 repeats"
    )
    parser.add_argument("--no-latency", action="store_true", help="only parameters and FLOPs")
    args = parser.parse_args(argv)
    device = timing_device(args)
    if args.quick:
        args.repeats, args.warmup = 3, 1

    print(f"{machine_description()}; FLOPs/params on meta, latency on {device}")
    rows = []
    variants = [v for v in LORATV2_VARIANTS if not args.quick or "-B-" in v]
    for variant in variants:
        row = count_and_flops(variant)
        rows.append(row)
        print(
            f"{variant}: params {row['total_params']:,} (trainable {row['trainable_params']:,}, merged "
            f"{row['merged_params']:,}); GFLOPs "
            + ", ".join(f"{name} {value / 1e9:.1f}" for name, value in row["flops"].items())
        )
    timing, conditions = None, ""
    if not args.no_latency:
        timing, _, conditions = run_metered(lambda: latency(args.repeats, args.warmup, device))
        print(", ".join(f"{name} {value * 1e3:.0f} ms" for name, value in timing.items()))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine_description(), "rows": rows, "latency_s": timing}, indent=2)
        )
    if not args.no_write:
        update_results_section("loratv2-efficiency", to_markdown(rows, timing, args.repeats, conditions))
        print(f"Updated {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
