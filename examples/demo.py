#!/usr/bin/env python
"""`make demo`: track a held-out synthetic clip with the tracker embedded in the package, offline, in about a minute.

    python examples/demo.py                                  # outputs in demo_outputs/
    python examples/demo.py --output-dir /tmp/demo --frames 30 --seed 11

What it does, with the public API only:

1. writes a synthetic clip (`lorat_hf.data.synthetic`, the same generator settings as the tracker's training videos,
   a seed training never used): `clip.mp4`, its frames and exact ground truth (`clip/<name>/groundtruth.txt`);
2. tracks the target from its first-frame box with the `lorat-track` command (`lorat_hf.commands.track.main`):
   `tracked.mp4` (boxes and scores drawn), `boxes.csv` and `boxes.json`;
3. scores the boxes against the ground truth with `lorat-eval score` (`ostrack` protocol): `report.json`, the
   success and precision plots, and prints the success AUC;
4. draws a few frames side by side (green: tracker, white: ground truth) into `demo.png`.

Re-running replaces the demo's own files in the output folder and nothing else; a folder that holds other files and
was not made by this script is refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

DEMO_SEED = 31
MARKER = ".lorat-demo"
OUTPUT_FILES = (
    "clip.mp4",
    "tracked.mp4",
    "boxes.csv",
    "boxes.json",
    "report.json",
    "success.png",
    "precision.png",
    "normalized_precision.png",
    "demo.png",
)
OUTPUT_DIRS = ("clip", "results", "cache")
GT_COLOR = (255, 255, 255)
TRACKER_COLOR = (0, 255, 0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("demo_outputs"), help="where to write (demo_outputs)")
    parser.add_argument("--frames", type=int, default=None, help="clip length (default: the training videos' length)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help=f"clip seed (default {DEMO_SEED}; held out)")
    parser.add_argument("--model", default=None, help="tracker folder or Hub id (default: the embedded demo tracker)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--picture-frames", type=int, default=4, help="frames side by side in demo.png (default 4)")
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 2:
        parser.error(f"--frames must be at least 2, got {args.frames}")
    if args.picture_frames < 1:
        parser.error(f"--picture-frames must be at least 1, got {args.picture_frames}")
    return args


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def claim_output_dir(folder: Path) -> None:
    """Create the output folder, or accept it when this script made it (marker file) or it is empty."""
    if folder.exists() and not folder.is_dir():
        raise SystemExit(f"demo: error: {folder} exists and is not a folder; choose another --output-dir.")
    if folder.is_dir() and not (folder / MARKER).is_file() and any(folder.iterdir()):
        raise SystemExit(
            f"demo: error: {folder} already holds files that this demo did not write; choose another --output-dir "
            "(or an empty or new folder)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("Folder written by examples/demo.py; its files are replaced on every run.\n")


def remove_previous_outputs(folder: Path) -> None:
    import shutil

    for name in OUTPUT_FILES:
        (folder / name).unlink(missing_ok=True)
    for name in OUTPUT_DIRS:
        if (folder / name).is_dir():
            shutil.rmtree(folder / name)


def write_clip(folder: Path, num_frames: int | None, seed: int, fps: float):
    """The held-out clip: frames + ground truth in the generic layout under `folder/clip`, and `folder/clip.mp4`.

    Returns the `TrackingSequence` of the clip and the `SyntheticVideoConfig` used.
    """
    from lorat_hf.assets import check_held_out_seed, demo_video_config
    from lorat_hf.data.synthetic import write_generic_layout
    from lorat_hf.evaluation import load_ground_truth
    from lorat_hf.video_io import VideoWriter, read_image_rgb

    check_held_out_seed(seed)
    config = demo_video_config(**({} if num_frames is None else {"num_frames": num_frames}))
    # PNG frames: the mp4 is then the only lossy step, as with a real camera clip
    write_generic_layout(folder / "clip", 1, config, seed=seed, image_format="png")
    (sequence,) = load_ground_truth("generic", folder / "clip", cache_dir=folder / "cache")
    with VideoWriter(folder / "clip.mp4", fps=fps, overwrite=True) as writer:
        for path in sequence.frame_paths:
            writer.write(read_image_rgb(path))
    return sequence, config


def read_box_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`(N, 4)` xywh boxes and `(N,)` scores from `lorat-track --save-boxes boxes.csv`."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    boxes = np.array([[float(row[key]) for key in ("x", "y", "w", "h")] for row in rows])
    scores = np.array([float(row["score"]) for row in rows])
    return boxes, scores


def draw_picture(sequence, boxes_xywh: np.ndarray, scores: np.ndarray, count: int, path: Path) -> None:
    """`count` evenly spaced frames side by side: tracker box (green, with score) over the ground truth (white)."""
    from lorat_hf.boxes import xywh_to_xyxy
    from lorat_hf.file_utils import write_text_atomic
    from lorat_hf.video_io import draw_box, read_image_rgb

    indices = np.unique(np.linspace(0, len(boxes_xywh) - 1, count).round().astype(int))
    gt = np.asarray(sequence.groundtruth_xywh, dtype=np.float64)
    tiles = []
    for index in indices:
        frame = read_image_rgb(sequence.frame_paths[index])
        if np.isfinite(gt[index]).all():
            frame = draw_box(frame, xywh_to_xyxy(gt[index]), color=GT_COLOR, thickness=1)
        frame = draw_box(frame, xywh_to_xyxy(boxes_xywh[index]), scores[index], color=TRACKER_COLOR)
        label_origin = (6, frame.shape[0] - 8)
        cv2.putText(frame, f"frame {index}", label_origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(
            frame, f"frame {index}", label_origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA
        )
        tiles.append(frame)
    gap = np.full((tiles[0].shape[0], 4, 3), 255, dtype=np.uint8)
    row = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
    encoded, png = cv2.imencode(".png", cv2.cvtColor(row, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not encoded:
        raise OSError(f"Could not encode {path} as PNG.")
    write_text_atomic(path, png.tobytes())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    begin = time.perf_counter()
    from lorat_hf.assets import default_model_path
    from lorat_hf.commands import evaluate as lorat_eval
    from lorat_hf.commands import track as lorat_track
    from lorat_hf.evaluation import load_report, write_pytracking_result

    output = args.output_dir
    claim_output_dir(output)
    remove_previous_outputs(output)
    model = args.model or default_model_path()

    step(f"Writing a held-out synthetic clip (seed {args.seed}) to {output / 'clip.mp4'}")
    fps = 25.0
    sequence, config = write_clip(output, args.frames, args.seed, fps)
    gt = np.asarray(sequence.groundtruth_xywh, dtype=np.float64)
    print(
        f"{sequence.name}: {len(sequence.frame_paths)} frames {config.frame_size[0]}x{config.frame_size[1]}, "
        f'"{json.loads((Path(sequence.frame_paths[0]).parents[1] / "synthetic.json").read_text())["description"]}"; '
        f"first box x,y,w,h = {', '.join(f'{v:.1f}' for v in gt[0])}"
    )

    step(f"Tracking it with lorat-track (model: {'embedded demo tracker' if args.model is None else model})")
    box = ",".join(f"{value:.3f}" for value in gt[0])
    track_argv = [
        str(output / "clip.mp4"), f"--box={box}", "--output", str(output / "tracked.mp4"),
        "--save-boxes", str(output / "boxes.csv"), "--device", args.device, "--overwrite",
    ]  # fmt: skip
    if args.model is not None:
        track_argv += ["--model", args.model]
    print("lorat-track " + " ".join(track_argv))
    status = lorat_track.main(track_argv)
    if status != 0:
        print(f"demo: lorat-track failed with status {status}", file=sys.stderr)
        return status
    boxes, scores = read_box_csv(output / "boxes.csv")
    rows = lorat_track.box_rows([(i, b, s) for i, (b, s) in enumerate(zip(boxes, scores, strict=True))])
    lorat_track.write_box_file(output / "boxes.json", rows, "xywh", str(output / "clip.mp4"))

    step("Scoring the boxes against the ground truth with lorat-eval (ostrack protocol)")
    write_pytracking_result(output / "results", sequence.name, boxes)
    eval_argv = [
        "score", "--dataset", "generic", "--dataset-root", str(output / "clip"), "--results", str(output / "results"),
        "--protocol", "ostrack", "--mode", "uav", "--output", str(output / "report.json"), "--overwrite",
        "--plots-dir", str(output), "--cache-dir", str(output / "cache"),
    ]  # fmt: skip
    status = lorat_eval.main(eval_argv)
    if status != 0:
        print(f"demo: lorat-eval failed with status {status}", file=sys.stderr)
        return status
    metrics = load_report(output / "report.json")["metrics"]

    draw_picture(sequence, boxes, scores, args.picture_frames, output / "demo.png")
    step(f"Done in {time.perf_counter() - begin:.0f} s")
    print(
        f"Success AUC {metrics['success_auc']:.1f}, precision {metrics['precision']:.1f}, normalised precision "
        f"{metrics['normalized_precision']:.1f} (ostrack protocol, {len(boxes)} frames of {sequence.name})"
    )
    for name, what in (
        ("tracked.mp4", "annotated video"),
        ("boxes.csv", "boxes (CSV)"),
        ("boxes.json", "boxes (JSON)"),
        ("success.png", "success plot"),
        ("report.json", "evaluation report"),
        ("demo.png", "frames side by side (green: tracker, white: ground truth)"),
        ("clip.mp4", "input clip; ground truth in clip/"),
    ):
        print(f"  {what:<58} {output / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
