"""LaSOT reader (``load_sequences("lasot", root, split)``).

Layout (the official release)::

    <root>/<class>/<class>-<k>/groundtruth.txt    # N lines "x,y,w,h", 1-based integers
                               full_occlusion.txt  # N comma-separated 0/1 (one line)
                               out_of_view.txt     # N comma-separated 0/1 (one line)
                               nlp.txt             # one sentence
                               img/00000001.jpg ...
    <root>/training_set.txt, testing_set.txt       # optional: one sequence name per line

A flat ``<root>/<class>-<k>/`` folder (as in some test-set-only downloads) is accepted too.

Splits: ``test`` (default, 280 sequences), ``train`` (1120) and ``all`` (both). A split's sequences come from
``<root>/testing_set.txt`` / ``<root>/training_set.txt`` when that file exists, else from the official lists shipped in
``lorat_hf/data/splits``. The frame list is built from the annotation length (``img/%08d.jpg`` from 1): extra images
are ignored (monkey-17 has some), missing ones raise. ``visible = !full_occlusion & !out_of_view`` (and a box with
an area); ``boxes_xyxy`` subtracts 1 from x and y as the official LoRAT loader does (``coordinate_offset = 1``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..sequences import ReadPlan, SequenceReader, build_sequence_row, register_sequence_reader
from ._parsing import (
    check_length,
    ensure_unique,
    format_examples,
    image_size_from_header,
    load_box_file,
    load_int_values,
    missing_frames_error,
    read_name_list,
    read_split_list,
    read_text,
    require_dir,
)

LASOT_SPLIT_FILES = {"train": "training_set.txt", "test": "testing_set.txt"}
_PACKAGED_LISTS = {"train": "lasot_train.txt", "test": "lasot_test.txt"}
_SEQUENCE_FILES = ("groundtruth.txt", "full_occlusion.txt", "out_of_view.txt", "nlp.txt")


def lasot_class_name(sequence_name: str) -> str:
    """``airplane-1`` -> ``airplane``."""
    return sequence_name.rsplit("-", 1)[0]


def read_lasot_style_sequence(
    dataset: str,
    name: str,
    folder: Path,
    coordinate_offset: float,
) -> dict[str, Any]:
    """Parse one LaSOT-layout sequence folder (shared by LaSOT and LaSOT_ext)."""
    gt_path = folder / "groundtruth.txt"
    groundtruth = load_box_file(gt_path)
    num_frames = len(groundtruth)
    flags = {}
    for key in ("full_occlusion", "out_of_view"):
        path = folder / f"{key}.txt"
        flags[key] = load_int_values(path, allowed=(0, 1))
        check_length(flags[key], num_frames, path, "flags", gt_path.name)
    nlp_path = folder / "nlp.txt"
    nlp = read_text(nlp_path).strip() if nlp_path.is_file() else None
    image_folder = require_dir(folder / "img", f"Frame folder of {name}:")
    prefix = os.path.join(image_folder, "")
    frame_paths = [f"{prefix}{index:08d}.jpg" for index in range(1, num_frames + 1)]
    if not Path(frame_paths[-1]).is_file():
        raise missing_frames_error(name, image_folder, num_frames, gt_path)
    visible = (flags["full_occlusion"] == 0) & (flags["out_of_view"] == 0)
    extra = {
        "class": lasot_class_name(name),
        "full_occlusion": flags["full_occlusion"].tolist(),
        "out_of_view": flags["out_of_view"].tolist(),
    }
    if nlp is not None:
        extra["nlp"] = nlp
    return build_sequence_row(
        dataset,
        name,
        frame_paths,
        groundtruth,
        image_size_from_header(Path(frame_paths[0])),
        visible_flags=visible,
        coordinate_offset=coordinate_offset,
        extra=extra,
    )


def lasot_fingerprint_files(folder: Path) -> list[Path]:
    return [folder / filename for filename in _SEQUENCE_FILES]


@register_sequence_reader
class LaSOTReader(SequenceReader):
    name = "lasot"
    coordinate_offset = 1.0
    splits = ("test", "train", "all")
    default_split = "test"

    def split_names(self, root: Path, split: str) -> tuple[list[str], list[Path]]:
        """Sequence names of ``split`` and the list files they came from (empty for the packaged lists)."""
        parts = ("train", "test") if split == "all" else (split,)
        names: list[str] = []
        sources: list[Path] = []
        for part in parts:
            list_file = root / LASOT_SPLIT_FILES[part]
            if list_file.is_file():
                part_names = read_name_list(list_file)
                ensure_unique(part_names, str(list_file))
                sources.append(list_file)
            else:
                part_names = read_split_list(_PACKAGED_LISTS[part])
            names.extend(part_names)
        ensure_unique(names, f"The LaSOT {split} split of {root}")
        return names, sources

    def plan(self, root: Path, split: str | None) -> ReadPlan:
        split = self.resolve_split(split)
        names, sources = self.split_names(root, split)
        units, missing = [], []
        for name in names:
            folder = root / lasot_class_name(name) / name
            if not folder.is_dir() and (root / name).is_dir():
                folder = root / name
            (units if folder.is_dir() else missing).append((name, folder))
        if missing:
            origin = ", ".join(str(path) for path in sources) or "the official LaSOT list shipped with lorat_hf"
            raise FileNotFoundError(
                f"{len(missing)} of the {len(names)} sequences of the LaSOT {split} split ({origin}) are missing under "
                f"{root}: {format_examples([str(folder) for _, folder in missing])}. Download them, or put a "
                f"{LASOT_SPLIT_FILES.get(split, 'testing_set.txt')} listing the sequences you have in the root."
            )
        files = list(sources)
        for _, folder in units:
            files.extend(lasot_fingerprint_files(folder))
        return ReadPlan(split=split, units=units, annotation_files=files)

    def read(self, root: Path, unit: tuple[str, Path]) -> Iterator[dict[str, Any]]:
        name, folder = unit
        yield read_lasot_style_sequence(self.name, name, folder, self.coordinate_offset)


__all__ = ["LaSOTReader", "lasot_class_name", "read_lasot_style_sequence", "LASOT_SPLIT_FILES"]
