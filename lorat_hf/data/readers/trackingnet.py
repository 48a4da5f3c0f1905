"""TrackingNet reader (``load_sequences("trackingnet", root, split)``).

Layout (after the devkit's frame extraction)::

    <root>/TRAIN_0 ... TRAIN_11, TEST/
        anno/<sequence>.txt          # "x,y,w,h" floats per frame; TEST: the first frame only
        frames/<sequence>/0.jpg ...  # 0-based, no zero padding (sorted numerically)

Splits: ``test`` (default) = ``TEST``; ``train`` = every ``TRAIN_<k>`` chunk present under the root; or one chunk name
(``TRAIN_3``). Sequences are the ``anno/*.txt`` files of each chunk, sorted. Fully annotated sequences use frames
``0.jpg .. <N-1>.jpg`` (N = annotation lines; extra images are ignored, missing ones raise); a sequence annotated on
its first frame only lists its frames numerically and gets ``NaN`` rows after frame 0. ``visible`` = a box with
``w > 0``, ``h > 0`` inside the image. ``extra`` = ``{"chunk": "TRAIN_3"}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..sequences import ReadPlan, SequenceReader, build_sequence_row, register_sequence_reader
from ._parsing import image_size_from_header, join_frames, load_box_file, missing_frames_error, require_dir

_CHUNK = re.compile(r"TRAIN_(\d+)")


def numeric_frame_names(folder: Path) -> list[str]:
    """``<n>.jpg`` / ``<n>.png`` names of a TrackingNet frame folder, sorted by ``n``."""
    with os.scandir(folder) as entries:
        names = [entry.name for entry in entries if re.fullmatch(r"\d+\.(jpg|jpeg|png)", entry.name, re.IGNORECASE)]
    return sorted(names, key=lambda name: int(name.split(".", 1)[0]))


@register_sequence_reader
class TrackingNetReader(SequenceReader):
    name = "trackingnet"
    splits = ("test", "train")
    default_split = "test"

    def resolve_split(self, split: str | None) -> str:
        split = self.default_split if split is None else split
        if split in self.splits or _CHUNK.fullmatch(split) or split == "TEST":
            return split
        raise ValueError(
            f"Unknown trackingnet split {split!r}; choose 'train', 'test' or a chunk name like 'TRAIN_3'."
        )

    def chunks(self, root: Path, split: str) -> list[str]:
        if split == "train":
            found = [path.name for path in root.iterdir() if path.is_dir() and _CHUNK.fullmatch(path.name)]
            if not found:
                raise FileNotFoundError(f"No TrackingNet TRAIN_<k> chunk folders under {root}.")
            return sorted(found, key=lambda name: int(name.split("_")[1]))
        return ["TEST" if split in ("test", "TEST") else split]

    def plan(self, root: Path, split: str | None) -> ReadPlan:
        split = self.resolve_split(split)
        units, files = [], []
        for chunk in self.chunks(root, split):
            chunk_dir = require_dir(root / chunk, f"TrackingNet chunk folder for split {split!r}:")
            anno_dir = require_dir(chunk_dir / "anno", "TrackingNet annotation folder")
            frames_dir = require_dir(chunk_dir / "frames", "TrackingNet frame folder (extract the zips first)")
            annotation_files = sorted(name for name in os.listdir(anno_dir) if name.endswith(".txt"))
            for filename in annotation_files:
                sequence = filename[: -len(".txt")]
                units.append((chunk, sequence, anno_dir / filename, frames_dir / sequence))
                files.extend([anno_dir / filename, frames_dir / sequence])
        return ReadPlan(split=split, units=units, annotation_files=files)

    def read(self, root: Path, unit: tuple[str, str, Path, Path]) -> Iterator[dict[str, Any]]:
        chunk, name, anno_path, frame_dir = unit
        require_dir(frame_dir, f"Frame folder of {name}:")
        groundtruth = load_box_file(anno_path)
        if len(groundtruth) == 1:
            frame_names = numeric_frame_names(frame_dir)
            if not frame_names:
                raise ValueError(f"Sequence {name!r}: no numbered frames (0.jpg, 1.jpg, ...) in {frame_dir}.")
            frame_paths = join_frames(frame_dir, frame_names)
            groundtruth = np.concatenate([groundtruth, np.full((len(frame_paths) - 1, 4), np.nan)])
        else:
            prefix = os.path.join(frame_dir, "")
            frame_paths = [f"{prefix}{index}.jpg" for index in range(len(groundtruth))]
            if not os.path.isfile(frame_paths[-1]):
                raise missing_frames_error(name, frame_dir, len(groundtruth), anno_path)
        yield build_sequence_row(
            self.name,
            name,
            frame_paths,
            groundtruth,
            image_size_from_header(Path(frame_paths[0])),
            extra={"chunk": chunk},
        )
