"""`lorat-vot`: a TraX tracker server, so that the VOT toolkit (or any TraX client) can run a lorat_hf tracker.

    lorat-vot                                # the embedded demo tracker
    lorat-vot --model path/or/hub-id --device cuda --dtype float16

The client starts this command and talks TraX over its standard input/output: an `initialize` request carries the
first image (a file path) and one region per object, each `frame` request the next image; every reply gives one
rectangle and a `confidence` property per object. All objects of a sequence share each batched forward.

Regions in: rectangles are used as they are; a polygon becomes the bounding box of its points and a mask the bounding
box of its nonzero pixels (LoRAT is a box tracker). Regions out: always rectangles, `x, y, w, h` in pixels. An empty
region, an unreadable image or a model that cannot be loaded ends the session with a TraX quit message that says
what is wrong, which the client shows.

A VOT workspace's `trackers.ini` entry:

    [lorat]
    label = LoRAT (lorat_hf)
    protocol = trax
    command = lorat-vot

Needs the `vot` extra (`pip install "lorat_hf[vot]"`, the TraX bindings from PyPI `vot-trax`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger("lorat_hf.vot")

PROG = "lorat-vot"
CONFIDENCE_PROPERTY = "confidence"


class VotInputError(ValueError):
    """A region or image from the client that cannot be tracked."""


def _import_trax():
    try:
        import trax
    except ImportError:
        raise SystemExit(
            f"{PROG}: error: the TraX bindings are not installed; install them with: pip install 'lorat_hf[vot]'"
        ) from None
    return trax


def region_to_xywh(region: Any) -> np.ndarray:
    """A TraX region (rectangle, polygon or mask) -> its bounding box `(4,)` float64 `x, y, w, h` in pixels.

    Raises `VotInputError` for an empty region (a zero-size rectangle, a mask with no pixel set, a degenerate
    polygon), which has no box to track.
    """
    from trax import Region

    kind = region.type
    if kind == Region.RECTANGLE:
        box = np.asarray(region.bounds(), dtype=np.float64)
    elif kind == Region.POLYGON:
        points = np.asarray(list(region), dtype=np.float64)
        low, high = points.min(axis=0), points.max(axis=0)
        box = np.concatenate([low, high - low])
    elif kind == Region.MASK:
        mask = region.array(normalize=True)  # offset applied: pixel coordinates of the image
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            raise VotInputError("The initial mask is empty (no pixel set): there is no object to track.")
        box = np.array([cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1], float)
    else:
        raise VotInputError(f"Unsupported initial region type {kind!r}: send a rectangle, polygon or mask.")
    if not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise VotInputError(f"The initial region has no area (bounding box x, y, w, h = {box.tolist()}).")
    return box


def _image_path(images: dict) -> str:
    from trax import Image

    color = images.get("color")
    if color is None or color.type() != Image.PATH:
        raise VotInputError("Expected the colour channel as an image file path (TraX image type 'path').")
    return color.path()


class VotSession:
    """The tracker side of one TraX session: `initialize` on the first image, `frame` on every following one.

    Boxes in and out are `x, y, w, h` pixels; several objects are tracked in one batched forward.
    """

    def __init__(self, tracker):
        self.tracker = tracker
        self.num_objects = 0

    def initialize(self, image_path: str, boxes_xywh: Sequence[np.ndarray]) -> list[tuple[np.ndarray, float]]:
        from .video_io import read_image_rgb

        if not boxes_xywh:
            raise VotInputError("The initialize request holds no object.")
        frame = read_image_rgb(image_path)
        ids = list(range(len(boxes_xywh)))
        self.tracker.init(frame, boxes=np.stack(boxes_xywh), object_ids=ids, box_format="xywh")
        self.num_objects = len(ids)
        return [(np.asarray(box, dtype=np.float64), 1.0) for box in boxes_xywh]

    def frame(self, image_path: str) -> list[tuple[np.ndarray, float]]:
        from .video_io import read_image_rgb

        predictions = self.tracker.track(read_image_rgb(image_path))
        return [predictions[index] for index in range(self.num_objects)]


def serve(tracker, log: bool = False) -> int:
    """Answer TraX requests on standard input/output with `tracker` (a `LoraTracker`) until the client quits.

    Returns 0 when the client ended the session, 1 after refusing a request (the quit message says why)."""
    import torch

    from .video_io import VideoSourceError

    trax = _import_trax()
    from trax import Image, Rectangle, Region, TraxStatus

    session = VotSession(tracker)
    server = trax.Server(
        [Region.RECTANGLE, Region.POLYGON, Region.MASK],
        [Image.PATH],
        tracker_name="lorat_hf",
        tracker_description="LoRAT single-object tracker (lorat_hf); boxes out, masks in as their bounding box",
        log=log,
        multiobject=True,
    )
    try:
        with torch.inference_mode():
            while True:
                request = server.wait()
                if request.type in (TraxStatus.QUIT, TraxStatus.ERROR):
                    break
                image_path = _image_path(request.image)
                if request.type == TraxStatus.INITIALIZE or request.objects:
                    results = session.initialize(image_path, [region_to_xywh(region) for region, _ in request.objects])
                else:
                    results = session.frame(image_path)
                server.status(
                    [
                        (Rectangle.create(*(float(v) for v in box)), {CONFIDENCE_PROPERTY: f"{score:.6f}"})
                        for box, score in results
                    ]
                )
    except (VotInputError, VideoSourceError) as error:
        logger.error("%s", error)
        server.quit(reason=str(error))
        return 1
    server.quit()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .commands import add_tracker_arguments

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="TraX tracker server for the VOT toolkit: run a lorat_hf tracker as a VOT workspace tracker.",
        epilog="Put `command = lorat-vot [--model ...]` and `protocol = trax` in the workspace's trackers.ini.",
    )
    add_tracker_arguments(parser)
    parser.add_argument("--trax-log", action="store_true", help="log the TraX messages to standard error")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # stdout carries the TraX protocol: everything else goes to stderr, quietly
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    _import_trax()
    from .commands import load_tracker_from_arguments

    tracker = load_tracker_from_arguments(args, PROG)
    if tracker is None:
        return 2
    return serve(tracker, log=args.trax_log)


if __name__ == "__main__":
    sys.exit(main())
