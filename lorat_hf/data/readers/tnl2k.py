"""TNL2K reader (``load_sequences("tnl2k", root)``).

Layout (``root`` is the folder holding the sequences, e.g. ``TNL2K_TEST`` with 700 of them)::

    <root>/<sequence>/groundtruth.txt   # "x,y,w,h" per frame; absent frames are 0,0,0,0
                      language.txt      # one sentence
                      imgs/00000001.jpg | .png ...   # extension varies per sequence; names sorted

TNL2K ships no split lists: the only split is ``all`` (every sequence folder of the root, in natural order); point
``root`` at the test or train folder. ``visible`` = a box with ``w > 0``, ``h > 0`` inside the image (visible boxes
may have ``x`` or ``y`` equal to 0). ``extra`` = ``{"language": ...}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..sequences import ReadPlan, SequenceReader, build_sequence_row, register_sequence_reader
from ._parsing import (
    check_length,
    image_size_from_header,
    join_frames,
    list_images,
    load_box_file,
    natural_key,
    read_text,
    require_dir,
)


@register_sequence_reader
class TNL2KReader(SequenceReader):
    name = "tnl2k"
    splits = ("all",)
    default_split = "all"

    def resolve_split(self, split: str | None) -> str:
        if split in (None, "all"):
            return "all"
        raise ValueError(
            f"TNL2K has no split lists (got split={split!r}): pass split=None and point root at the folder that "
            "holds the split's sequences (e.g. .../TNL2K_TEST)."
        )

    def plan(self, root: Path, split: str | None) -> ReadPlan:
        split = self.resolve_split(split)
        folders = sorted(
            (path for path in root.iterdir() if path.is_dir() and not path.name.startswith((".", "__MACOSX"))),
            key=lambda path: natural_key(path.name),
        )
        for folder in folders:
            if not (folder / "groundtruth.txt").is_file() and not (folder / "imgs").is_dir():
                raise ValueError(
                    f"{folder} is not a TNL2K sequence (no groundtruth.txt, no imgs/): the root must hold only "
                    "sequence folders."
                )
        files: list[Path] = []
        for folder in folders:
            files.extend([folder / "groundtruth.txt", folder / "language.txt", folder / "imgs"])
        return ReadPlan(split=split, units=folders, annotation_files=files)

    def read(self, root: Path, folder: Path) -> Iterator[dict[str, Any]]:
        name = folder.name
        gt_path = folder / "groundtruth.txt"
        groundtruth = load_box_file(gt_path)
        language = read_text(folder / "language.txt", "Language file").strip()
        image_dir = require_dir(folder / "imgs", f"Frame folder of {name}:")
        frame_names = sorted(list_images(image_dir, (".jpg", ".png")))
        check_length(groundtruth, len(frame_names), gt_path, "boxes", f"{image_dir} (frames)")
        frame_paths = join_frames(image_dir, frame_names)
        yield build_sequence_row(
            self.name,
            name,
            frame_paths,
            groundtruth,
            image_size_from_header(Path(frame_paths[0])),
            extra={"language": language},
        )
