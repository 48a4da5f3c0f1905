"""COCO 2017 reader (``load_sequences("coco", root, split)``): every object is a one-frame track for training.

Layout::

    <root>/annotations/instances_{train,val}2017.json
    <root>/images/{train,val}2017/*.jpg      (or <root>/{train,val}2017/*.jpg)

Splits: ``train`` (default) and ``val``. One row per annotation with ``iscrowd == 0`` whose box keeps a positive
width and height after fitting it to the image; crowd and degenerate boxes are skipped (that is the official
cleaning, not an error). ``name`` = ``<image_id>_<annotation_id>``; ``visible`` = ``[True]``; the frame size comes
from the JSON. ``extra`` = ``{"image_id", "annotation_id", "category_id", "category"}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..sequences import ReadPlan, SequenceReader, _is_main_process, build_sequence_row, register_sequence_reader
from ._parsing import require_file


@register_sequence_reader
class COCOReader(SequenceReader):
    name = "coco"
    splits = ("train", "val")
    default_split = "train"

    def image_dir(self, root: Path, split: str) -> Path:
        for candidate in (root / "images" / f"{split}2017", root / f"{split}2017"):
            if candidate.is_dir():
                return candidate
        raise FileNotFoundError(
            f"COCO image folder for {split!r} not found: expected {root / 'images' / f'{split}2017'} "
            f"or {root / f'{split}2017'}."
        )

    def plan(self, root: Path, split: str | None) -> ReadPlan:
        split = self.resolve_split(split)
        annotation_file = require_file(
            root / "annotations" / f"instances_{split}2017.json", f"COCO annotation file for {split!r}:"
        )
        image_dir = self.image_dir(root, split)
        return ReadPlan(
            split=split, units=[(annotation_file, image_dir)], annotation_files=[annotation_file], unit_name="file"
        )

    def read(self, root: Path, unit: tuple[Path, Path]) -> Iterator[dict[str, Any]]:
        annotation_file, image_dir = unit
        try:
            with open(annotation_file, encoding="utf-8") as handle:
                content = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{annotation_file} is not valid JSON ({error}).") from error
        for key in ("images", "annotations", "categories"):
            if key not in content:
                raise ValueError(f"{annotation_file} has no {key!r} list: not a COCO instances file.")
        categories = {category["id"]: category["name"] for category in content["categories"]}
        images = {image["id"]: image for image in content["images"]}
        existing = set(os.listdir(image_dir))
        annotations = content["annotations"]
        show = _is_main_process() and len(annotations) > 10000
        for number, annotation in enumerate(tqdm(annotations, desc="COCO objects", disable=not show)):
            if annotation.get("iscrowd", 0):
                continue
            image = images.get(annotation.get("image_id"))
            if image is None:
                raise ValueError(
                    f"{annotation_file}: annotation #{number} (id {annotation.get('id')}) refers to image_id "
                    f"{annotation.get('image_id')}, which is not in 'images'."
                )
            bbox = annotation.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise ValueError(f"{annotation_file}: annotation id {annotation.get('id')} has bbox {bbox!r}.")
            row = build_sequence_row(
                self.name,
                f"{image['id']}_{annotation['id']}",
                [str(image_dir / image["file_name"])],
                np.asarray([bbox], dtype=np.float64),
                (image["width"], image["height"]),
                extra={
                    "image_id": image["id"],
                    "annotation_id": annotation["id"],
                    "category_id": annotation["category_id"],
                    "category": categories.get(annotation["category_id"]),
                },
            )
            if not row["visible"][0]:
                continue
            if image["file_name"] not in existing:
                raise FileNotFoundError(
                    f"COCO image {image_dir / image['file_name']} (image_id {image['id']}) does not exist."
                )
            yield row
