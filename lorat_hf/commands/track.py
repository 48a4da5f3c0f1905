"""`lorat-track`: track one object through a video file, a frame folder, a webcam or a stream.

    lorat-track clip.mp4 --box 120,80,60,40 --model path/or/hub-id --output tracked.mp4 --save-boxes boxes.csv
    lorat-track frames/ --box 10,20,110,90 --box-format xyxy --model ... --max-frames 300
    lorat-track 0 --box 200,150,80,80 --model ... --output webcam.mp4        # camera 0; stop with Ctrl+C

Input problems (missing or unreadable video, empty video, a box outside the first frame, an output that exists
without --overwrite, a model that cannot be loaded) exit with status 2 and one message saying what to fix.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..assets import default_model_path
from ..file_utils import write_text_atomic

logger = logging.getLogger("lorat_hf.track")

PROG = "lorat-track"
BOX_FILE_SUFFIXES = (".csv", ".json")
USAGE_ERROR = 2
INCOMPLETE_VIDEO = 3  # the video ended before its stated frame count; the frames read were tracked and written


class UsageError(Exception):
    """A problem with the command's input; reported as one line and exit status 2."""


def parse_box(text: str) -> list[float]:
    """`"x,y,w,h"` (commas or spaces) -> 4 floats."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"the box must be 4 numbers like 10,20,50,40; got {text!r}") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"the box must be 4 numbers like 10,20,50,40; got {len(values)} in {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Track one object through a video with LoRAT.",
        epilog="Boxes are pixels of the first frame; xywh = top-left corner, width, height. Write a box with a "
        "negative coordinate as --box=-5,10,40,30.",
    )
    parser.add_argument("video", help="video file, folder of frames, webcam index (0) or stream URL (rtsp://...)")
    parser.add_argument(
        "--box",
        required=True,
        type=parse_box,
        help="the object on the first frame: x,y,w,h (or x1,y1,x2,y2 with --box-format xyxy)",
    )
    parser.add_argument(
        "--box-format",
        choices=("xywh", "xyxy"),
        default="xywh",
        help="format of --box and of the saved boxes (default xywh)",
    )
    parser.add_argument(
        "--model",
        help="tracker folder or Hub repo id (adapter folder or merged model); default: the demo tracker embedded in "
        "the package (trained on synthetic videos only)",
    )
    parser.add_argument("--revision", help="Hub revision of --model")
    parser.add_argument("--output", type=Path, help="write the video with the box and score drawn (.mp4, .avi, ...)")
    parser.add_argument("--save-boxes", type=Path, help="write the per-frame boxes and scores (.csv or .json)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --output / --save-boxes files")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        default="float32",
        help="compute dtype: bfloat16 converts the weights once (fastest on CPUs with bf16 units); float16 runs under "
        "autocast (the official GPU setting)",
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "onnxruntime-int8"),
        default="torch",
        help="run the model with torch, or the model.onnx / model_int8.onnx of a lorat-export folder given as --model",
    )
    parser.add_argument(
        "--onednn-kernels",
        action="store_true",
        help="torch backend: run the fused layers' matrix multiplies through oneDNN (faster on AMD CPUs; equal within "
        "float rounding, not bit for bit)",
    )
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--fps", type=float, help="frame rate of --output when the source has none (default 30)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="exit with status 0 when a damaged video ends before the frame count its container states (default: "
        f"status {INCOMPLETE_VIDEO}, after writing what was tracked)",
    )
    return parser


def _check_output_path(path: Path | None, overwrite: bool, what: str) -> None:
    if path is None:
        return
    if path.exists() and not overwrite:
        raise UsageError(f"{what} {str(path)!r} already exists; pass --overwrite to replace it.")
    if path.is_dir():
        raise UsageError(f"{what} {str(path)!r} is a folder; give a file name.")
    if not path.parent.exists():
        raise UsageError(f"The folder of {what} {str(path.parent)!r} does not exist.")


def box_rows(frame_boxes: Sequence[tuple[int, np.ndarray, float]]) -> list[dict]:
    return [{"frame_index": i, "box": [float(v) for v in box], "score": float(score)} for i, box, score in frame_boxes]


def write_box_file(path: Path, rows: list[dict], box_format: str, video: str) -> None:
    """Write boxes as CSV (`frame_index,x,y,w,h,score` or `frame_index,x1,y1,x2,y2,score`) or JSON, atomically."""
    if path.suffix.lower() == ".json":
        header = json.dumps({"video": video, "box_format": box_format})[:-1]
        text = header + ', "frames": [\n' + ",\n".join(json.dumps(row) for row in rows) + "\n]}\n"  # a frame per line
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            ["frame_index", *(("x", "y", "w", "h") if box_format == "xywh" else ("x1", "y1", "x2", "y2")), "score"]
        )
        for row in rows:
            writer.writerow([row["frame_index"], *(f"{v:.4f}" for v in row["box"]), f"{row['score']:.6f}"])
        text = buffer.getvalue()
    write_text_atomic(path, text)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..boxes import check_init_box, to_xyxy
    from ..tracking import LoraTracker
    from ..video_io import DEFAULT_FPS, IncompleteVideoWarning, VideoReader, VideoSourceError, VideoWriter, draw_box

    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {args.max_frames}.")
    if args.save_boxes is not None and args.save_boxes.suffix.lower() not in BOX_FILE_SUFFIXES:
        raise UsageError(f"--save-boxes must end in .csv or .json, got {str(args.save_boxes)!r}.")
    _check_output_path(args.output, args.overwrite, "The output video")
    _check_output_path(args.save_boxes, args.overwrite, "The boxes file")

    try:
        reader = VideoReader(args.video, max_frames=args.max_frames)
    except VideoSourceError as error:
        raise UsageError(str(error)) from None
    info = reader.info
    try:
        check_init_box(to_xyxy(args.box, args.box_format), (info.width, info.height), args.box_format)
    except ValueError as error:
        reader.close()
        raise UsageError(str(error)) from None

    try:
        model = args.model or default_model_path()
    except FileNotFoundError as error:
        reader.close()
        raise UsageError(str(error)) from None
    if args.model is None:
        logger.info("No --model given: using the demo tracker embedded in the package (%s).", model)
    hub_kwargs = {"revision": args.revision} if args.revision else {}
    try:
        tracker = LoraTracker.from_pretrained(
            model,
            device=args.device,
            dtype=args.dtype,
            box_format=args.box_format,
            backend=args.backend,
            onednn_kernels=args.onednn_kernels,
            **hub_kwargs,
        )
    except (OSError, ValueError, ImportError) as error:
        reader.close()
        raise UsageError(f"Cannot load the tracker from {model!r}: {error}") from None
    logger.info("Tracking %s %s (%dx%d) on %s", info.kind, args.video, info.width, info.height, tracker.device)

    writer = None
    if args.output is not None:
        try:
            writer = VideoWriter(args.output, fps=info.fps or args.fps or DEFAULT_FPS, overwrite=args.overwrite)
        except (ValueError, OSError) as error:
            reader.close()
            raise UsageError(str(error)) from None

    frame_boxes: list[tuple[int, np.ndarray, float]] = []
    interrupted = False
    start = time.perf_counter()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", IncompleteVideoWarning)  # reported below, in the command's own words
            for item in tracker.track_video(reader, args.box, show_progress=not args.quiet):
                frame_boxes.append((item.frame_index, item.box, item.score))
                if writer is not None:
                    box_xyxy = to_xyxy(item.box, args.box_format)
                    writer.write(draw_box(item.frame, box_xyxy, item.score))
    except KeyboardInterrupt:
        interrupted = True
        logger.warning("Interrupted: keeping the %d frames tracked so far.", len(frame_boxes))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    elapsed = time.perf_counter() - start

    if writer is not None:
        if frame_boxes:
            writer.close()
        else:
            writer.abort()
    if args.save_boxes is not None and frame_boxes:
        write_box_file(args.save_boxes, box_rows(frame_boxes), args.box_format, str(args.video))
    fps = len(frame_boxes) / elapsed if elapsed > 0 else float("inf")
    print(
        f"Tracked {len(frame_boxes)} frames in {elapsed:.2f} s: {fps:.1f} FPS (reading, tracking"
        f"{', drawing and writing' if writer is not None else ''}; device {tracker.device})."
        + (" Stopped early by Ctrl+C." if interrupted else "")
    )
    for path, label in ((args.output, "Video"), (args.save_boxes, "Boxes")):
        if path is not None and frame_boxes:
            print(f"{label} written to {path}")
    if reader.missing_frames:
        if args.allow_incomplete:
            print(f"{PROG}: warning: {reader.incomplete_message}", file=sys.stderr)
            return 0
        print(
            f"{PROG}: error: {reader.incomplete_message} The {len(frame_boxes)} frames read were tracked and written; "
            "pass --allow-incomplete to accept a partial track.",
            file=sys.stderr,
        )
        return INCOMPLETE_VIDEO
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        return run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
