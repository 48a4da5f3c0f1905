"""LaSOT_ext reader (``load_sequences("lasot_ext", root)``): the 150-sequence LaSOT extension (IJCV 2021).

Same per-sequence layout as LaSOT (``<root>/<class>/<class>-<k>/groundtruth.txt``, ``full_occlusion.txt``,
``out_of_view.txt``, ``nlp.txt``, ``img/%08d.jpg``). Every ``<class>/<class>-<k>`` folder under the root is read
(the benchmark is evaluated in full), in natural order. The only split is ``test``.

Unlike LaSOT, the official LoRAT loader does not shift LaSOT_ext boxes, so ``boxes_xyxy`` is ``(x, y, x + w, y + h)``
and ``coordinate_offset`` is 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..sequences import ReadPlan, SequenceReader, register_sequence_reader
from ._parsing import natural_key
from .lasot import lasot_fingerprint_files, read_lasot_style_sequence


@register_sequence_reader
class LaSOTExtReader(SequenceReader):
    name = "lasot_ext"
    coordinate_offset = 0.0
    splits = ("test",)
    default_split = "test"

    def plan(self, root: Path, split: str | None) -> ReadPlan:
        split = self.resolve_split(split)
        units = []
        for class_dir in sorted((path for path in root.iterdir() if path.is_dir()), key=lambda p: natural_key(p.name)):
            pattern = re.compile(re.escape(class_dir.name) + r"-\d+")
            sequences = [path for path in class_dir.iterdir() if path.is_dir() and pattern.fullmatch(path.name)]
            units.extend((path.name, path) for path in sorted(sequences, key=lambda p: natural_key(p.name)))
        if not units:
            raise ValueError(
                f"No LaSOT_ext sequences under {root}: expected folders <class>/<class>-<k>/ (e.g. atv/atv-1/)."
            )
        files = [root, *sorted({folder.parent for _, folder in units})]
        files.extend(file for _, folder in units for file in lasot_fingerprint_files(folder))
        return ReadPlan(split=split, units=units, annotation_files=files)

    def read(self, root: Path, unit: tuple[str, Path]) -> Iterator[dict[str, Any]]:
        name, folder = unit
        yield read_lasot_style_sequence(self.name, name, folder, self.coordinate_offset)
