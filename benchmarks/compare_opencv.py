"""The embedded demo tracker against OpenCV's classic trackers (CSRT, KCF, MIL) on held-out synthetic videos.

    python benchmarks/compare_opencv.py            # 24 held-out videos; updates benchmarks/RESULTS.md
    python benchmarks/compare_opencv.py --quick    # 2 short videos, table only (a smoke test)

The test videos come from `lorat_hf.data.synthetic` with the SAME generator settings as the tracker's training videos
(frame size and length from its `train_config.json`, every other knob the "medium" preset: occlusions, look-alike
distractors, scale and aspect change, leaving the frame, blur, illumination change, camera pan), but another seed
(refused when it is one of the training / validation seeds).

Every tracker starts from the first ground-truth box and runs one pass without re-initialisation:

* LoRAT: `lorat_hf.evaluation.run_evaluation` (what `lorat-eval run` does);
* OpenCV (`cv2.TrackerCSRT_create`, `cv2.TrackerKCF_create`, `cv2.TrackerMIL_create` of opencv-contrib): default
  parameters, BGR frames as OpenCV reads them, the first box rounded to whole pixels (their `init` takes integers);
  when `update` reports a failure the previous box is kept (the kindest reading of a lost track).

All results are written as pytracking-style files and scored by the same `score_results` call: the `ostrack` protocol
(`lorat-eval score --protocol ostrack`) in pytracking's `uav` mode, which is that protocol with ground truth allowed to
be NaN: the generator marks frames where the target is entirely outside the image with NaN boxes, and those frames
count as failures for every tracker. Fully occluded targets keep their (hidden) box, as in LaSOT.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from results_md import RESULTS_FILE, update_results_section

REPO = Path(__file__).resolve().parents[1]
SECTION = "compare_opencv"
OPENCV_TRACKERS = {
    "csrt": ("CSRT", "TrackerCSRT_create"),
    "kcf": ("KCF", "TrackerKCF_create"),
    "mil": ("MIL", "TrackerMIL_create"),
}
PROTOCOL, MODE = "ostrack", "uav"
DEFAULT_SEED = 2024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="tracker folder or Hub id (default: the embedded demo tracker)")
    parser.add_argument("--output-dir", type=Path, default=REPO / "outputs" / "compare_opencv", help="work folder")
    parser.add_argument("--num-sequences", type=int, default=24, help="held-out videos (default 24)")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per video (default: as in training)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"run seed of the test videos ({DEFAULT_SEED})")
    parser.add_argument("--preset", default="medium", choices=("easy", "medium", "hard"), help="generator preset")
    parser.add_argument("--trackers", nargs="+", default=list(OPENCV_TRACKERS), choices=list(OPENCV_TRACKERS))
    parser.add_argument("--batch-size", type=int, default=8, help="LoRAT: videos per batched forward")
    parser.add_argument("--quick", action="store_true", help="2 videos x 16 frames; RESULTS.md is not touched")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_sequences, args.num_frames, args.no_write = 2, args.num_frames or 16, True
    if args.num_sequences < 1:
        parser.error(f"--num-sequences must be at least 1, got {args.num_sequences}")
    if args.num_frames is not None and args.num_frames < 2:
        parser.error(f"--num-frames must be at least 2, got {args.num_frames}")
    return args


def integer_box(box_xywh: np.ndarray) -> tuple[int, int, int, int]:
    """The nearest whole-pixel `x, y, w, h` (corners rounded; at least 1 px wide and high)."""
    x1, y1 = round(box_xywh[0]), round(box_xywh[1])
    x2, y2 = round(box_xywh[0] + box_xywh[2]), round(box_xywh[1] + box_xywh[3])
    return int(x1), int(y1), int(max(x2 - x1, 1)), int(max(y2 - y1, 1))


def run_opencv_tracker(factory_name: str, sequences, folder: Path, progress) -> float:
    """Track every sequence one pass with a fresh OpenCV tracker; write `<folder>/<seq>.txt` (+ `_time.txt`).

    Returns frames per second over the timed calls (JPEG decoding + `init`/`update`), as `run_evaluation` times LoRAT.
    """
    from lorat_hf.evaluation import write_pytracking_result

    factory = getattr(cv2, factory_name)
    frames_done, seconds = 0, 0.0
    for sequence in sequences:
        first_box = np.asarray(sequence.groundtruth_xywh[0], dtype=np.float64)
        boxes = np.empty((len(sequence.frame_paths), 4))
        times = np.zeros(len(sequence.frame_paths))
        boxes[0] = first_box
        tracker = factory()
        start = time.perf_counter()
        tracker.init(cv2.imread(sequence.frame_paths[0]), integer_box(first_box))
        times[0] = time.perf_counter() - start
        for index, path in enumerate(sequence.frame_paths[1:], start=1):
            start = time.perf_counter()
            found, box = tracker.update(cv2.imread(path))
            times[index] = time.perf_counter() - start
            boxes[index] = np.asarray(box, dtype=np.float64) if found else boxes[index - 1]
            progress.update(1)
        progress.update(1)
        write_pytracking_result(folder, sequence.name, boxes, times)
        frames_done += len(times)
        seconds += float(times.sum())
    return frames_done / max(seconds, 1e-9)


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| tracker | success AUC | precision | normalised precision | success rate @0.5 | frames/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['tracker']} | {row['success_auc']:.1f} | {row['precision']:.1f} | "
            f"{row['normalized_precision']:.1f} | {row['success_rate_50']:.1f} | {row['fps']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from tqdm.auto import tqdm

    from lorat_hf.assets import default_model_path, synthetic_training_videos
    from lorat_hf.data.synthetic import SyntheticVideoConfig, write_generic_layout
    from lorat_hf.evaluation import load_ground_truth, run_evaluation, save_plots, score_results

    cv2.setNumThreads(1)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = args.model or default_model_path()
    settings, training_seeds = synthetic_training_videos(model) or ({}, ())
    if args.seed in training_seeds:
        raise SystemExit(
            f"compare_opencv: error: seed {args.seed} made this tracker's training/validation videos "
            f"(seeds {training_seeds}); choose another --seed for a held-out test."
        )
    if args.num_frames is not None:
        settings["num_frames"] = args.num_frames
    video_config = SyntheticVideoConfig.preset(args.preset, **settings)
    output_dir = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    frame_w, frame_h = video_config.frame_size
    test_root = output_dir / (
        f"testset-{args.preset}-{frame_w}x{frame_h}-{video_config.num_frames}f-seed{args.seed}-n{args.num_sequences}"
    )
    print(
        f"Writing (or reusing) {args.num_sequences} held-out '{args.preset}' videos (seed {args.seed}) in {test_root}"
    )
    write_generic_layout(test_root, args.num_sequences, video_config, seed=args.seed)
    sequences = load_ground_truth("generic", test_root)
    num_frames = sum(len(sequence.frame_paths) for sequence in sequences)

    results_root = output_dir / "results"
    if results_root.exists():
        shutil.rmtree(results_root)  # this script's own folder: every run re-tracks, never reuses stale results
    reports, rows = {}, []

    print(f"LoRAT ({model}) on {len(sequences)} videos, {num_frames} frames")
    lorat_dir = results_root / "LoRAT"
    start = time.perf_counter()
    lorat_report = run_evaluation(
        model,
        "generic",
        test_root,
        lorat_dir,
        batch_size=args.batch_size,
        protocol=PROTOCOL,
        mode=MODE,
        device="cpu" if not torch.cuda.is_available() else None,
    )
    lorat_seconds = time.perf_counter() - start
    lorat_tracking_seconds = sum(
        float(np.loadtxt(path, delimiter=",").sum()) for path in (lorat_dir / "results").glob("*_time.txt")
    )
    label = "LoRAT (embedded demo tracker)" if args.model is None else f"LoRAT ({Path(model).name})"
    reports[label] = lorat_report  # already scored with PROTOCOL / MODE
    rows.append({"tracker": label, "fps": num_frames / max(lorat_tracking_seconds, 1e-9), **reports[label]["metrics"]})

    for key in args.trackers:
        label, factory_name = OPENCV_TRACKERS[key]
        folder = results_root / f"OpenCV-{label}"
        with tqdm(total=num_frames, desc=f"OpenCV {label}", unit="frame") as progress:
            fps = run_opencv_tracker(factory_name, sequences, folder, progress)
        label = f"OpenCV {label}"
        reports[label] = score_results(folder, sequences, dataset="generic", protocol=PROTOCOL, mode=MODE)
        rows.append({"tracker": label, "fps": fps, **reports[label]["metrics"]})

    table = markdown_table(rows)
    best_opencv = max((row for row in rows[1:]), key=lambda row: row["success_auc"], default=None)
    summary = {
        "model": model,
        "protocol": PROTOCOL,
        "mode": MODE,
        "seed": args.seed,
        "preset": args.preset,
        "video_config": video_config.to_dict(),
        "test_videos": os.fspath(test_root),
        "sequences": [sequence.name for sequence in sequences],
        "num_frames": num_frames,
        "lorat_wall_seconds": lorat_seconds,
        "rows": rows,
    }
    (output_dir / "comparison.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (output_dir / "comparison.md").write_text(table + "\n", encoding="utf-8")
    plots = save_plots(reports, output_dir)
    print(table)
    if best_opencv is not None:
        margin = rows[0]["success_auc"] - best_opencv["success_auc"]
        print(f"LoRAT - best OpenCV ({best_opencv['tracker']}): {margin:+.1f} success AUC")
    print(f"Results, plots and the table are in {output_dir} ({', '.join(Path(p).name for p in plots)})")

    if not args.no_write:
        note = (
            f"`python benchmarks/compare_opencv.py` — CPU: {os.cpu_count()} cores, no GPU ({platform.machine()}), "
            f"torch {torch.__version__}, OpenCV {cv2.__version__}.\n\n"
            f"{len(sequences)} held-out synthetic videos ({num_frames} frames, {frame_w}x{frame_h}): "
            f"`lorat_hf.data.synthetic` preset '{args.preset}' with the training videos' frame size and length, run "
            f"seed {args.seed} (training used seeds {', '.join(map(str, training_seeds)) or 'unknown'}). "
            f"Protocol `{PROTOCOL}` in pytracking's `{MODE}` mode (frames whose target is entirely outside the "
            "image have NaN ground truth and count as failures for every tracker), one pass from the first "
            "ground-truth box. LoRAT = the embedded demo tracker through `lorat_hf.evaluation.run_evaluation` "
            f"(fp32, batch {args.batch_size}); OpenCV trackers with default parameters, first box rounded to "
            "whole pixels, the previous box kept when `update` fails. frames/s = frames / timed seconds (JPEG "
            "decoding + tracking; LoRAT advances 8 videos per batched forward, so its time per frame is a batch "
            "step divided by the videos in it) on a shared machine.\n"
        )
        update_results_section(
            SECTION, f"## Embedded demo tracker vs OpenCV (`benchmarks/compare_opencv.py`)\n\n{note}\n{table}"
        )
        print(f"Updated {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
