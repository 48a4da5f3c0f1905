"""Evaluation speed: scoring a LaSOT-sized benchmark with each protocol, result-file I/O, and the OPE runner.

    python benchmarks/evaluation.py            # full sizes (LaSOT test: 280 sequences x 2,500 frames)
    python benchmarks/evaluation.py --quick    # 56 sequences, a shorter runner run

Three measurements:

* scoring: `evaluate_sequences` on synthetic arrays (random-walk GT, noisy predictions, 10 % invisible frames) per
  protocol; the target is well under a minute for a whole LaSOT test set on 2 CPU cores;
* files: writing the pytracking-style result files of that set atomically, then `load_results` parsing them back;
* runner: `run_evaluation` end to end (frame decoding, crops, batched forwards, atomic writes) with the tiny random
  test model on synthetic generic-layout videos, for several batch sizes, in frames per second. The tiny model makes
  this a measure of the runner's own overhead, not of LoRAT's network.

Results are printed and written to the "Evaluation" section of benchmarks/RESULTS.md (`--no-write` to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results_md import RESULTS_FILE, update_results_section

REPO = Path(__file__).resolve().parents[1]
SECTION = "Evaluation"


def synthetic_benchmark(num_sequences: int, num_frames: int, seed: int = 0):
    """`SequenceData` with random-walk 1-based integer GT, noisy predictions and LaSOT-style visibility."""
    from lorat_hf.evaluation import SequenceData

    rng = np.random.default_rng(seed)
    sequences = []
    for index in range(num_sequences):
        steps = rng.normal(0, 3, (num_frames, 2)).cumsum(axis=0)
        gt = np.empty((num_frames, 4))
        gt[:, :2] = np.clip(200 + steps, 1, 1000).round()
        gt[:, 2:] = rng.integers(20, 120, 2)
        prediction = gt + rng.normal(0, 6, gt.shape)
        prediction[:, 2:] = np.abs(prediction[:, 2:]) + 1
        visible = rng.random(num_frames) > 0.1
        sequences.append(
            SequenceData(f"seq-{index}", gt, [prediction], visible=visible, cover=visible * 8, image_size=(1280, 720))
        )
    return sequences


def bench_scoring(sequences) -> list[tuple[str, float, float]]:
    from lorat_hf.evaluation import PROTOCOLS, evaluate_sequences

    rows = []
    for protocol in PROTOCOLS:
        begin = time.perf_counter()
        result = evaluate_sequences(protocol, sequences, dataset="lasot")
        elapsed = time.perf_counter() - begin
        headline = next(iter(result.metrics.values()))
        rows.append((protocol, elapsed, headline))
    return rows


def bench_files(sequences, folder: Path) -> tuple[float, float]:
    from lorat_hf.evaluation import load_results, write_pytracking_result

    begin = time.perf_counter()
    for sequence in sequences:
        write_pytracking_result(folder, sequence.name, sequence.predictions[0])
    written = time.perf_counter() - begin
    begin = time.perf_counter()
    load_results(folder, [s.name for s in sequences])
    return written, time.perf_counter() - begin


def bench_runner(
    work: Path, num_sequences: int, num_frames: int, batch_sizes: list[int]
) -> list[tuple[int, float, float]]:
    """`(batch size, tracking-loop frames/s, end-to-end seconds)` per batch size, after one warm-up run."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import tiny_config
    from data_factories import make_generic

    import lorat_hf.evaluation.runner as runner
    from lorat_hf import LoraTrackerModel

    torch.manual_seed(0)
    LoraTrackerModel(tiny_config()).save_pretrained(work / "model")
    names = [f"video{i}" for i in range(num_sequences)]
    make_generic(work / "data", names=names, num_frames=num_frames, size_wh=(320, 240), extension="jpg")
    loop_seconds = []
    track_jobs = runner._track_jobs

    def timed(*args, **kwargs):  # the tracking loop alone: decoding, crops, forwards, result writes
        begin = time.perf_counter()
        track_jobs(*args, **kwargs)
        loop_seconds.append(time.perf_counter() - begin)

    runner._track_jobs = timed
    try:
        common = dict(cache_dir=work / "cache", progress=False)
        runner.run_evaluation(work / "model", "generic", work / "data", work / "warm-up", batch_size=4, **common)
        rows = []
        for batch_size in batch_sizes:
            begin = time.perf_counter()
            runner.run_evaluation(
                work / "model", "generic", work / "data", work / f"out-{batch_size}", batch_size=batch_size, **common
            )
            total = time.perf_counter() - begin
            rows.append((batch_size, num_sequences * num_frames / loop_seconds[-1], total))
    finally:
        runner._track_jobs = track_jobs
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="56 sequences and a shorter runner run")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    num_sequences, num_frames = (56, 2500) if args.quick else (280, 2500)
    runner_sequences, runner_frames = (4, 20) if args.quick else (8, 60)

    sequences = synthetic_benchmark(num_sequences, num_frames)
    scoring = bench_scoring(sequences)
    with tempfile.TemporaryDirectory() as scratch:
        written, read = bench_files(sequences, Path(scratch) / "results")
        runner = bench_runner(Path(scratch), runner_sequences, runner_frames, [1, 4, 8])
        shutil.rmtree(scratch, ignore_errors=True)

    machine = f"CPU: {os.cpu_count()} cores, no GPU ({platform.processor() or platform.machine()}), torch {torch.__version__}"
    lines = [
        "## Evaluation",
        "",
        f"`python benchmarks/evaluation.py{' --quick' if args.quick else ''}` — {machine}; "
        f"load average at start {os.getloadavg()[0]:.1f} (other jobs shared the cores).",
        "",
        f"Scoring {num_sequences} sequences x {num_frames} frames ({num_sequences * num_frames:,} frames, one run):",
        "",
        "| protocol | seconds | first metric |",
        "|---|---|---|",
        *(f"| {protocol} | {seconds:.2f} | {value:.3f} |" for protocol, seconds, value in scoring),
        "",
        f"Result files: write {num_sequences} pytracking files {written:.2f} s, parse them back {read:.2f} s.",
        "",
        f"`run_evaluation`, tiny random model (width 32, 2 layers), {runner_sequences} videos x {runner_frames} frames "
        "at 320x240 (after a warm-up run): frames/s of the tracking loop (JPEG decoding, crops, batched forwards, "
        "atomic writes) and the whole call (plus model load, scoring, report, plots). On a shared machine these "
        "figures move several-fold with its load; the scoring and file figures barely do.",
        "",
        "| batch size | tracking loop, frames/s | whole call, s |",
        "|---|---|---|",
        *(f"| {batch} | {fps:.1f} | {total:.2f} |" for batch, fps, total in runner),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        update_results_section(SECTION, markdown)
        print(f"Updated {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
