"""Generic reader for your own videos (``load_sequences("generic", root, split=None)``).

Layout: one folder per sequence::

    <root>/<sequence>/groundtruth.txt   # one "x,y,w,h" line per frame: 0-based pixels, (x, y) = top-left corner,
                                        # separated by commas, tabs or spaces; "nan,nan,nan,nan" or "0,0,0,0" = no box;
                                        # or a single line: only the first frame is annotated (a test sequence)
                      img/ | imgs/      # the frames (.jpg/.jpeg/.png/.bmp), sorted naturally (frame2 < frame10);
                                        # without img/ or imgs/, the images in the sequence folder itself
                      absent.txt        # optional: one 0/1 per frame (1 = target absent), commas/whitespace/newlines
                      visible.txt       # optional, instead of absent.txt: one 0/1 per frame (1 = target visible)

``root`` may also be a single sequence folder (it holds ``groundtruth.txt``). ``split`` = a sub-folder of ``root`` (e.g.
``"train"`` for ``<root>/train/<sequence>/``); ``None`` reads ``root`` itself. Every sub-folder (except hidden ones)
must be a sequence. The number of boxes must equal the number of frames (or be 1). ``visible`` = the flag files (if
any) AND a box with ``w > 0``, ``h > 0`` inside the image; ``coordinate_offset`` is 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..sequences import ReadPlan, SequenceReader, build_sequence_row, register_sequence_reader
from ._parsing import (
    check_length,
    image_size_from_header,
    join_frames,
    list_images,
    load_box_file,
    load_int_values,
    natural_key,
    require_dir,
)

_FRAME_FOLDERS = ("img", "imgs")


def generic_frame_folder(folder: Path) -> Path:
    for name in _FRAME_FOLDERS:
        if (folder / name).is_dir():
            return folder / name
    return folder


@register_sequence_reader
class GenericReader(SequenceReader):
    name = "generic"
    default_split = ""

    def resolve_split(self, split: str | None) -> str:
        if split is None or split == "":
            return ""
        if Path(split).name != split or split in (".", ".."):
            raise ValueError(f"A generic split is the name of a sub-folder of the root, got {split!r}.")
        return split

    def plan(self, root: Path, split: str | None) -> ReadPlan:
        split = self.resolve_split(split)
        base = require_dir(root / split, "Split folder") if split else root
        if (base / "groundtruth.txt").is_file():
            folders = [base]
        else:
            folders = sorted(
                (path for path in base.iterdir() if path.is_dir() and not path.name.startswith((".", "__"))),
                key=lambda path: natural_key(path.name),
            )
            for folder in folders:
                if not (folder / "groundtruth.txt").is_file():
                    raise FileNotFoundError(
                        f"{folder / 'groundtruth.txt'} does not exist: every sub-folder of {base} must be a sequence "
                        "with a groundtruth.txt (if the sub-folders are splits, pass split=<sub-folder>)."
                    )
        files: list[Path] = [base]
        for folder in folders:
            frame_folder = generic_frame_folder(folder)
            files.extend([folder / "groundtruth.txt", folder / "absent.txt", folder / "visible.txt", frame_folder])
        return ReadPlan(split=split or "all", units=folders, annotation_files=files)

    def read(self, root: Path, folder: Path) -> Iterator[dict[str, Any]]:
        name = folder.name
        gt_path = folder / "groundtruth.txt"
        groundtruth = load_box_file(gt_path)
        frame_folder = require_dir(generic_frame_folder(folder), f"Frame folder of {name}:")
        frame_names = list_images(frame_folder)
        if not frame_names:
            raise ValueError(f"Sequence {name!r}: no frames (.jpg/.jpeg/.png/.bmp) in {frame_folder}.")
        num_frames = len(frame_names)
        if len(groundtruth) == 1 and num_frames > 1:
            groundtruth = np.concatenate([groundtruth, np.full((num_frames - 1, 4), np.nan)])
        check_length(groundtruth, num_frames, gt_path, "boxes", f"{frame_folder} (frames)")
        absent_path, visible_path = folder / "absent.txt", folder / "visible.txt"
        if absent_path.is_file() and visible_path.is_file():
            raise ValueError(f"Sequence {name!r} has both absent.txt and visible.txt; keep only one of them.")
        flags = None
        extra: dict[str, Any] = {}
        for path, visible_value in ((absent_path, 0), (visible_path, 1)):
            if path.is_file():
                values = load_int_values(path, allowed=(0, 1))
                check_length(values, num_frames, path, "flags", f"{frame_folder} (frames)")
                flags = values == visible_value
                extra["visibility_file"] = path.name
        frame_paths = join_frames(frame_folder, frame_names)
        yield build_sequence_row(
            self.name,
            name,
            frame_paths,
            groundtruth,
            image_size_from_header(Path(frame_paths[0])),
            visible_flags=flags,
            extra=extra,
        )
