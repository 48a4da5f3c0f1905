"""GOT-10k reader (``load_sequences("got10k", root, split)``).

Layout::

    <root>/{train,val,test}/list.txt           # sequence names, one per line
    <root>/<split>/<sequence>/00000001.jpg ...  # frames (every *.jpg of the folder, sorted)
                              groundtruth.txt   # "x,y,w,h" floats; test: the first frame only
                              absence.label     # one 0/1 per frame (train/val)
                              cover.label       # one 0..8 per frame (0: fully occluded ... 8: fully visible)
                              cut_by_image.label
                              meta_info.ini     # "[METAINFO]" then "key: value" lines, incl. resolution: (W, H)

Splits: ``train``, ``val``, ``test`` (default) and ``vot_train`` / ``vot_val`` (the VOT-overlap-free parts of train
used by LoRAT's full training; lists shipped in ``lorat_hf/data/splits``). ``visible = !absence & cover > 0`` (and a
box with an area). Test sequences keep their single annotated frame and ``NaN`` rows after it (``visible`` False).
The frame size comes from ``meta_info.ini`` (``resolution``) when present, else from the first frame's header.
``extra`` holds ``cover``, ``absence``, ``cut_by_image`` (per-frame lists) and ``meta_info`` (dict of strings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..sequences import ReadPlan, SequenceReader, build_sequence_row, register_sequence_reader
from ._parsing import (
    check_length,
    ensure_unique,
    format_examples,
    image_size_from_header,
    join_frames,
    list_images,
    load_box_file,
    load_int_values,
    read_name_list,
    read_split_list,
    read_text,
    require_dir,
)

_VOT_SPLITS = {"vot_train": "got10k_vot_train.txt", "vot_val": "got10k_vot_val.txt"}
_LABEL_FILES = ("absence.label", "cover.label", "cut_by_image.label")


def parse_meta_info(path: Path) -> dict[str, str]:
    """``key: value`` lines of a GOT-10k ``meta_info.ini`` (section headers skipped), values as strings."""
    meta: dict[str, str] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("[", "#", ";")):
            continue
        key, separator, value = line.partition(":")
        if not separator:
            raise ValueError(f"{path}, line {number}: expected 'key: value', got {line!r}.")
        meta[key.strip()] = value.strip()
    return meta


def resolution_from_meta(meta: dict[str, str], path: Path) -> tuple[int, int] | None:
    if "resolution" not in meta:
        return None
    numbers = re.findall(r"\d+", meta["resolution"])
    if len(numbers) != 2:
        raise ValueError(f"{path}: cannot read 'resolution: {meta['resolution']}' as (width, height).")
    return int(numbers[0]), int(numbers[1])


def load_vot_split_names(split: str) -> list[str]:
    """Names of the shipped ``vot_train`` / ``vot_val`` lists."""
    return read_split_list(_VOT_SPLITS[split])


@register_sequence_reader
class GOT10kReader(SequenceReader):
    name = "got10k"
    splits = ("train", "val", "test", "vot_train", "vot_val")
    default_split = "test"

    def plan(self, root: Path, split: str | None) -> ReadPlan:
        split = self.resolve_split(split)
        folder_name = "train" if split in _VOT_SPLITS else split
        split_dir = require_dir(root / folder_name, f"GOT-10k split folder for {split!r}:")
        list_file = split_dir / "list.txt"
        names = read_name_list(list_file)
        ensure_unique(names, str(list_file))
        if split in _VOT_SPLITS:
            available = set(names)
            names = load_vot_split_names(split)
            absent = [name for name in names if name not in available]
            if absent:
                raise FileNotFoundError(
                    f"The GOT-10k {split} split needs {len(absent)} train sequences that {list_file} does not list "
                    f"({format_examples(absent)}); it is defined on the full GOT-10k train split (9335 sequences)."
                )
        units = [(name, split_dir / name, folder_name == "test") for name in names]
        missing = [str(folder) for _, folder, _ in units if not folder.is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} sequence folders listed in {list_file} are missing: {format_examples(missing)}."
            )
        files = [list_file]
        for _, folder, _ in units:
            files.extend([folder, folder / "groundtruth.txt", folder / "meta_info.ini"])
            files.extend(folder / label for label in _LABEL_FILES)
        return ReadPlan(split=split, units=units, annotation_files=files)

    def read(self, root: Path, unit: tuple[str, Path, bool]) -> Iterator[dict[str, Any]]:
        name, folder, is_test = unit
        gt_path = folder / "groundtruth.txt"
        groundtruth = load_box_file(gt_path)
        frame_names = list_images(folder, (".jpg",))
        num_frames = len(frame_names)
        if num_frames == 0:
            raise ValueError(f"Sequence {name!r}: no .jpg frames in {folder}.")
        meta_path = folder / "meta_info.ini"
        meta = parse_meta_info(meta_path) if meta_path.is_file() or not is_test else None
        extra: dict[str, Any] = {}
        if is_test and len(groundtruth) == 1 and num_frames > 1:
            unknown = np.full((num_frames - 1, 4), np.nan)
            groundtruth = np.concatenate([groundtruth, unknown])
            visible = np.zeros(num_frames, dtype=bool)
            visible[0] = True
        else:
            check_length(groundtruth, num_frames, gt_path, "boxes", f"{folder} (frames)")
            visible = np.ones(num_frames, dtype=bool)
            if not is_test:
                labels = {}
                for filename in _LABEL_FILES:
                    allowed = range(9) if filename == "cover.label" else (0, 1)
                    labels[filename] = load_int_values(folder / filename, allowed=allowed)
                    check_length(labels[filename], num_frames, folder / filename, "labels", gt_path.name)
                visible = (labels["absence.label"] == 0) & (labels["cover.label"] > 0)
                extra.update(
                    cover=labels["cover.label"].tolist(),
                    absence=labels["absence.label"].tolist(),
                    cut_by_image=labels["cut_by_image.label"].tolist(),
                )
        frame_paths = join_frames(folder, frame_names)
        size = resolution_from_meta(meta, meta_path) if meta is not None else None
        if meta is not None:
            extra["meta_info"] = meta
        yield build_sequence_row(
            self.name,
            name,
            frame_paths,
            groundtruth,
            size or image_size_from_header(Path(frame_paths[0])),
            visible_flags=visible,
            extra=extra,
        )
