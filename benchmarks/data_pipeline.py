"""Training-pair throughput: the fast crop path versus the plain exact path, and their pixel difference.

Generates 1280x720 JPEG synthetic sequences once (`lorat_hf.data.synthetic`, reused on later runs), then measures:

* crop parity: mean absolute difference (grey levels, 0..255) between `fast_crop` on a reduced decode and the
  official cropper on the full frame, for template and jittered search crops of random frames;
* throughput: training pairs per second of `TrackingPairDataset` (B-224 geometry: 112 / 224 px, all official
  augmentations) through `build_train_dataloader` with 1 and 2 workers, fast path (`exact=False`) and the plain
  baseline (`exact=True`: full-frame decode, then the exact crop), in the same run.

Prints a table and writes it into `benchmarks/RESULTS.md` (its own section, replaced on every run).

    python benchmarks/data_pipeline.py     # defaults: 6 sequences x 60 frames, 768 pairs per run, 3 repeats
    python benchmarks/data_pipeline.py --samples 256 --no-write
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from results_md import RESULTS_FILE, update_results_section
from tqdm.auto import tqdm

from lorat_hf import LoraTrackerImageProcessor
from lorat_hf.cropping import crop_image, jittered_crop_params, siamfc_crop_params
from lorat_hf.data.fast_crop import decode_reduction, fast_crop
from lorat_hf.data.pairs import TrackingPairDataset, build_train_dataloader
from lorat_hf.data.sampling import SequenceTable
from lorat_hf.data.synthetic import SyntheticVideoConfig, synthetic_sequences_dataset
from lorat_hf.video_io import decode_frame, read_image_rgb

logger = logging.getLogger("data_pipeline")
SECTION = "data_pipeline"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir",
        default=os.path.join(os.path.expanduser("~"), ".cache", "lorat_hf", "bench_pairs"),
        help="where the synthetic JPEG sequences are written (reused when present)",
    )
    parser.add_argument("--num-sequences", type=int, default=6)
    parser.add_argument("--num-frames", type=int, default=60)
    parser.add_argument("--samples", type=int, default=768, help="training pairs per throughput run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--parity-crops", type=int, default=200, help="crops compared fast vs exact")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the median is reported")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="results file to update (RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch RESULTS.md")
    return parser.parse_args()


def crop_parity(sequences, processor: LoraTrackerImageProcessor, count: int, seed: int = 0) -> dict[str, float]:
    """Fast vs exact crops of random visible frames: per-crop mean absolute difference statistics."""
    table = SequenceTable(sequences)
    rng = np.random.default_rng(seed)
    differences, reduced = [], []
    for _ in tqdm(range(count), desc="crop parity", leave=False):
        row = int(rng.integers(len(table)))
        track = table.track(row)
        frame = int(rng.choice(np.flatnonzero(track.valid)))
        box = track.boxes_xyxy[frame]
        if rng.random() < 0.5:
            params, size = (
                siamfc_crop_params(box, processor.template_area_factor, processor.template_size_wh),
                processor.template_size_wh,
            )
        else:
            size = processor.search_size_wh
            params, _ = jittered_crop_params(box, processor.search_area_factor, size, 0.25, 3.0, rng)
        path = table.frame_path(row, frame)
        reduction = decode_reduction(params)
        fast = fast_crop(decode_frame(path, reduction, track.image_wh), params, size).image
        exact = crop_image(read_image_rgb(path), params, size).image
        differences.append(float((fast - exact).abs().mean()))
        reduced.append(reduction > 1)
    differences, reduced = np.array(differences), np.array(reduced)
    return {
        "mean": float(differences.mean()),
        "max": float(differences.max()),
        "mean_reduced": float(differences[reduced].mean()) if reduced.any() else float("nan"),
        "reduced_fraction": float(reduced.mean()),
    }


def throughput(dataset: TrackingPairDataset, batch_size: int, num_workers: int, label: str) -> float:
    """Pairs per second after the first batch (worker start-up and warm-up excluded)."""
    loader = build_train_dataloader(dataset, batch_size, num_workers=num_workers)
    iterator = iter(loader)
    next(iterator)
    start, pairs = time.perf_counter(), 0
    for batch in tqdm(iterator, total=len(loader) - 1, desc=label, leave=False):
        pairs += batch["labels"].shape[0]
    elapsed = time.perf_counter() - start
    del iterator, loader
    return pairs / elapsed


def cpu_throughput(dataset: TrackingPairDataset, count: int) -> float:
    """Pairs per CPU-second in this process (one torch thread): insensitive to other load on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset[count]  # warm-up (schedule, Arrow columns)
        start = time.process_time()
        for index in range(count):
            dataset[index]
        return count / (time.process_time() - start)
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = SyntheticVideoConfig(frame_size=(1280, 720), num_frames=args.num_frames)
    logger.info("Synthetic sequences in %s", args.data_dir)
    sequences = synthetic_sequences_dataset(
        args.data_dir, args.num_sequences, config, seed=0, cache_dir=os.path.join(args.data_dir, ".cache")
    )
    processor = LoraTrackerImageProcessor(template_size=112, search_size=224, search_area_factor=4.0)

    parity = crop_parity(sequences, processor, args.parity_crops)
    logger.info("fast vs exact crop: mean |diff| %.3f (max %.3f) grey levels", parity["mean"], parity["max"])

    for path in tqdm(SequenceTable(sequences).sequences["frame_paths"], desc="warming the page cache", leave=False):
        for frame in path:
            Path(frame).read_bytes()

    load_start = os.getloadavg()[0]
    samples: dict[tuple[str, int], list[float]] = {}
    for repeat in range(args.repeats):  # interleaved, so that load changes hit both paths alike
        for mode in ("exact", "fast"):
            dataset = TrackingPairDataset(
                sequences, processor, samples_per_epoch=args.samples, seed=repeat, exact=(mode == "exact")
            )
            samples.setdefault((mode, 0), []).append(cpu_throughput(dataset, min(args.samples - 1, 256)))
            for workers in args.workers:
                label = f"{mode}, {workers} worker(s), run {repeat + 1}/{args.repeats}"
                samples.setdefault((mode, workers), []).append(throughput(dataset, args.batch_size, workers, label))
            logger.info(
                "run %d, %s path: %s",
                repeat + 1,
                mode,
                {k[1]: round(v[-1], 1) for k, v in samples.items() if k[0] == mode},
            )
    rates = {key: float(np.median(values)) for key, values in samples.items()}

    rows = [
        f"| {workers} DataLoader worker(s), pairs/s (wall clock) | {rates['exact', workers]:.1f} | "
        f"{rates['fast', workers]:.1f} | {rates['fast', workers] / rates['exact', workers]:.2f}x |"
        for workers in args.workers
    ]
    rows.append(
        f"| in-process, pairs per CPU-second (1 thread) | {rates['exact', 0]:.1f} | {rates['fast', 0]:.1f} | "
        f"{rates['fast', 0] / rates['exact', 0]:.2f}x |"
    )
    text = "\n".join(
        [
            "## Data pipeline: training pairs/s (`benchmarks/data_pipeline.py`)",
            "",
            f"Machine: CPU: {os.cpu_count()} cores, no GPU ({platform.processor() or platform.machine()}); "
            f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}.",
            f"Data: {args.num_sequences} synthetic 1280x720 JPEG sequences (quality 90) x {args.num_frames} frames "
            f"(page cache warm; 1-min load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
            f"end: CPU-second figures are robust to other load, wall-clock ones are not). B-224 geometry "
            f"(template 112 px, search 224 px), official sampling, jitter and augmentations; {args.samples} pairs "
            f"per run, batch {args.batch_size}, first batch excluded; median of {args.repeats} interleaved runs.",
            "Baseline (`exact=True`): full-frame decode, then the official cropper (`lorat_hf.cropping.crop_image`). "
            "Fast (default): reduced-size JPEG decode when the crop shrinks the frame >= 2x, ROI-only cv2 resize.",
            "",
            "| measurement | baseline | fast | speed-up |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Fast vs exact crop pixels over {args.parity_crops} random template/search crops: mean |diff| "
            f"{parity['mean']:.2f} grey levels (0..255), {parity['mean_reduced']:.2f} on the "
            f"{100 * parity['reduced_fraction']:.0f}% decoded at reduced size, worst crop {parity['max']:.2f}. The "
            "synthetic targets carry high-frequency patterns (checkers, stripes) on which the exact path's bilinear "
            "downsampling without antialiasing aliases; the reduced decode box-filters instead. On natural-looking "
            "frames the difference is 0.5-1.3 on average (tests/test_fast_crop.py). The fast path is decode-bound: "
            "libjpeg's Huffman stage runs at full size even for a 1/8 decode.",
        ]
    )
    print("\n" + text)
    if not args.no_write:
        update_results_section(SECTION, text, args.results)
        logger.info("Wrote %s", args.results)


if __name__ == "__main__":
    main()
