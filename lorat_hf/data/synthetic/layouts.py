"""Writing synthetic videos as benchmark folders that the sequence readers load.

Every layout shares one skeleton (`SequenceLayout.write`): names are assigned once per ``(layout, split, seed, index,
config)`` and recorded in ``synthetic_manifest.json``, each sequence folder is written in a temporary sibling and
moved into place, finished sequences are skipped when called again (resumable) and other folders are never touched.
A layout only says where a sequence's folder goes, which annotation files it writes and which split lists it keeps.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from ...file_utils import write_text_atomic
from .config import SyntheticVideoConfig
from .generator import SyntheticVideo

_MANIFEST = "synthetic_manifest.json"
_SIDECAR = "synthetic.json"


def sequence_seed(seed: int, index: int) -> int:
    """The per-sequence seed used by the layout writers for sequence ``index`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def read_synthetic_annotations(sequence_folder: str | os.PathLike) -> dict[str, Any]:
    """The exact annotations saved in a written sequence's ``synthetic.json`` (arrays for the per-frame fields)."""
    path = Path(sequence_folder) / _SIDECAR
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not a sequence written by lorat_hf.data.synthetic.")
    content = json.loads(path.read_text())
    for key, dtype in (
        ("boxes_xyxy", np.float64),
        ("visible_fraction", np.float64),
        ("visible", bool),
        ("out_of_view", bool),
        ("full_occlusion", bool),
    ):
        content[key] = np.asarray(content[key], dtype=dtype)
    content["boxes_xyxy"] = content["boxes_xyxy"].reshape(-1, 4)
    return content


def _write_image(path: Path, frame: np.ndarray, jpeg_quality: int) -> None:
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"Could not write {path}.")


def _sidecar(video: SyntheticVideo, run_seed: int, index: int, split: str | None) -> dict[str, Any]:
    """The exact annotations and provenance saved as ``synthetic.json`` in every sequence folder."""
    return {
        "generator": "lorat_hf.data.synthetic",
        "seed": video.seed,
        "run_seed": run_seed,
        "index": index,
        "split": split,
        "config": video.config.to_dict(),
        "target_pattern": video.target_pattern,
        "description": video.description,
        "boxes_xyxy": video.boxes_xyxy.tolist(),
        "visible_fraction": video.visible_fraction.tolist(),
        "visible": video.visible.tolist(),
        "out_of_view": video.out_of_view.tolist(),
        "full_occlusion": video.full_occlusion.tolist(),
    }


class SequenceLayout(ABC):
    """One benchmark folder layout. Subclasses set `name`, `grouped_by_pattern` and `split_lists` and write the
    annotation files; `write` is the skeleton they share (manifest, atomic sequence folders, frames
    ``img/%08d.<format>``, split lists, resumption).

    Args:
        image_format: ``"jpg"`` or ``"png"``.
        jpeg_quality: JPEG quality (0..100) of ``jpg`` frames.
    """

    name: ClassVar[str]
    grouped_by_pattern: ClassVar[bool] = False
    """True: ``<root>/<pattern>/<pattern>-<k>/`` (LaSOT's class folders); False: ``<root>/<pattern>-<k>/``."""
    split_lists: ClassVar[dict[str, str]] = {}
    """Split name -> the file listing that split's sequence names (one per line) in ``root``."""

    def __init__(self, image_format: str = "jpg", jpeg_quality: int = 90):
        if image_format not in ("jpg", "png"):
            raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}.")
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality

    @abstractmethod
    def write_annotations(self, video: SyntheticVideo, folder: Path) -> None:
        """Write the layout's annotation files of ``video`` into its (temporary) sequence ``folder``."""

    def write_split_lists(self, root: Path, names: list[str], split: str | None) -> None:
        """Append new ``names`` to the list file of ``split`` and create the other lists empty if they are missing
        (called under the manifest lock; nothing for a layout without `split_lists`)."""
        for part, filename in self.split_lists.items():
            path = root / filename
            listed = [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
            if part == split:
                listed += [name for name in names if name not in set(listed)]
            if part == split or not path.is_file():
                write_text_atomic(path, "".join(f"{name}\n" for name in listed))

    def sequence_folder(self, root: Path, name: str) -> Path:
        return root / name.rsplit("-", 1)[0] / name if self.grouped_by_pattern else root / name

    def write(
        self, root: Path, num_sequences: int, config: SyntheticVideoConfig, seed: int, split: str | None
    ) -> list[str]:
        """Write (or reuse) sequences ``0 .. num_sequences - 1`` under ``root``; their names in index order."""
        if num_sequences < 1:
            raise ValueError(f"num_sequences must be >= 1, got {num_sequences}.")
        root.mkdir(parents=True, exist_ok=True)
        manifest = _Manifest(root, self, config, int(seed), split)
        names = []
        show = os.environ.get("LOCAL_RANK", "0") in ("", "0")
        with FileLock(str(root / f".{_MANIFEST}.lock")):
            manifest.load()
            for index in tqdm(range(num_sequences), desc=f"Writing synthetic {self.name} sequences", disable=not show):
                name, video = manifest.name_of(index)
                names.append(name)
                final = self.sequence_folder(root, name)
                if not final.is_dir():
                    video = video or SyntheticVideo(config, sequence_seed(seed, index))
                    self._write_sequence(video, final, _sidecar(video, int(seed), index, split))
        with FileLock(str(root / f".{_MANIFEST}.lock")):
            self.write_split_lists(root, names, split)
        return names

    def _write_sequence(self, video: SyntheticVideo, final: Path, sidecar: dict[str, Any]) -> None:
        """Write one sequence folder next to ``final`` and move it into place (nothing half-written remains)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        temporary.mkdir()
        try:
            (temporary / "img").mkdir()
            for t in range(video.num_frames):
                path = temporary / "img" / f"{t + 1:08d}.{self.image_format}"
                _write_image(path, video.render_frame(t), self.jpeg_quality)
            self.write_annotations(video, temporary)
            (temporary / _SIDECAR).write_text(json.dumps(sidecar) + "\n")
            os.replace(temporary, final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise


class _Manifest:
    """``synthetic_manifest.json``: the sequence name given to each ``(layout, split, seed, index, config)``."""

    def __init__(self, root: Path, layout: SequenceLayout, config: SyntheticVideoConfig, seed: int, split: str | None):
        self.root, self.layout, self.config, self.seed, self.split = root, layout, config, seed, split
        self.path = root / _MANIFEST
        self.content: dict[str, Any] = {"sequences": {}}

    def load(self) -> None:
        if self.path.is_file():
            self.content = json.loads(self.path.read_text())
            self.content.setdefault("sequences", {})

    def key(self, index: int) -> str:
        payload = {
            "layout": self.layout.name,
            "split": self.split,
            "seed": self.seed,
            "index": index,
            "config": self.config.to_dict(),
        }
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    def name_of(self, index: int) -> tuple[str, SyntheticVideo | None]:
        """The recorded name of sequence ``index``, or a new one (recorded at once) with the video planned for it."""
        key = self.key(index)
        name = self.content["sequences"].get(key)
        if name is not None:
            return name, None
        video = SyntheticVideo(self.config, sequence_seed(self.seed, index))
        name = self._new_name(video.target_pattern)
        self.content["sequences"][key] = name
        write_text_atomic(self.path, json.dumps(self.content, indent=1, sort_keys=True) + "\n")
        return name, video

    def _new_name(self, pattern: str) -> str:
        """``<pattern>-<k>`` with ``k`` one above every number already used (in the manifest or on disk)."""
        used = set(self.content["sequences"].values())
        parent = self.root / pattern if self.layout.grouped_by_pattern else self.root
        if parent.is_dir():
            used.update(path.name for path in parent.iterdir())
        numbers = [
            int(match.group(1)) for name in used if (match := re.fullmatch(re.escape(pattern) + r"-(\d+)", name))
        ]
        return f"{pattern}-{max(numbers, default=0) + 1}"


class LasotLayout(SequenceLayout):
    """LaSOT's conventions: 1-based integer pixel-extent boxes, occlusion / out-of-view flags, a sentence, split lists
    (see `write_lasot_layout`)."""

    name = "lasot"
    grouped_by_pattern = True
    split_lists = {"train": "training_set.txt", "test": "testing_set.txt"}

    def write_annotations(self, video: SyntheticVideo, folder: Path) -> None:
        (folder / "groundtruth.txt").write_text("\n".join(_lasot_pixel_boxes(video.boxes_xyxy)) + "\n")
        (folder / "full_occlusion.txt").write_text(",".join(str(int(v)) for v in video.full_occlusion) + "\n")
        (folder / "out_of_view.txt").write_text(",".join(str(int(v)) for v in video.out_of_view) + "\n")
        (folder / "nlp.txt").write_text(video.description + "\n")


class GenericLayout(SequenceLayout):
    """Exact float ``x,y,w,h`` boxes and per-frame visibility (see `write_generic_layout`)."""

    name = "generic"

    def write_annotations(self, video: SyntheticVideo, folder: Path) -> None:
        lines = []
        for box in video.boxes_xyxy:
            if np.all(np.isfinite(box)):
                lines.append(",".join(repr(float(v)) for v in (box[0], box[1], box[2] - box[0], box[3] - box[1])))
            else:
                lines.append("nan,nan,nan,nan")
        (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        (folder / "visible.txt").write_text("".join(f"{int(v)}\n" for v in video.visible))


def _lasot_pixel_boxes(boxes_xyxy: np.ndarray) -> list[str]:
    lines = []
    for box in boxes_xyxy:
        if not np.all(np.isfinite(box)):
            lines.append("0,0,0,0")
            continue
        x0, y0 = math.floor(box[0]), math.floor(box[1])
        x1, y1 = math.ceil(box[2]), math.ceil(box[3])
        lines.append(f"{x0 + 1},{y0 + 1},{x1 - x0},{y1 - y0}")
    return lines


def write_lasot_layout(
    root: str | os.PathLike,
    num_sequences: int,
    config: SyntheticVideoConfig | None = None,
    seed: int = 0,
    split: str = "test",
    *,
    jpeg_quality: int = 90,
) -> list[str]:
    """Write synthetic sequences in the LaSOT layout so that ``load_sequences("lasot", root, split)`` reads them.

    Per sequence ``<root>/<pattern>/<pattern>-<k>/`` (the target's texture pattern plays the role of the class):
    ``img/%08d.jpg``, ``groundtruth.txt``, ``full_occlusion.txt``, ``out_of_view.txt``, ``nlp.txt`` and
    ``synthetic.json`` (the exact float annotations, see `read_synthetic_annotations`). ``split`` (``train`` or
    ``test``) adds the names to ``training_set.txt`` / ``testing_set.txt`` (both files are created).

    ``groundtruth.txt`` follows LaSOT's conventions rather than storing floats LaSOT tools would not expect: 1-based
    integers giving the tight pixel extent of the target (every pixel it covers: ``x = floor(x1) + 1``,
    ``w = ceil(x2) - floor(x1)``), and ``0,0,0,0`` when no part of it is in the frame. So the boxes the LaSOT reader
    returns (1 subtracted) are exactly the covered pixel range, within one pixel of the exact box on each side; use
    ``synthetic.json`` or `synthetic_sequences_dataset` when sub-pixel truth matters.

    Names are assigned once per ``(split, seed, index, config)`` and recorded in ``synthetic_manifest.json``; calling
    again with the same arguments skips finished sequences (resumable) and never touches other folders.
    Returns the sequence names in index order.
    """
    if split not in LasotLayout.split_lists:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    layout = LasotLayout("jpg", jpeg_quality)
    return layout.write(Path(root).expanduser(), num_sequences, config or SyntheticVideoConfig(), seed, split)


def write_generic_layout(
    root: str | os.PathLike,
    num_sequences: int,
    config: SyntheticVideoConfig | None = None,
    seed: int = 0,
    *,
    image_format: str = "jpg",
    jpeg_quality: int = 90,
) -> list[str]:
    """Write synthetic sequences in the generic layout (``load_sequences("generic", root)``).

    Per sequence ``<root>/<pattern>-<k>/``: ``img/%08d.<jpg|png>``, ``groundtruth.txt`` with the exact 0-based
    ``x,y,w,h`` floats (shortest round-trip text; ``nan,nan,nan,nan`` when the target is entirely outside the frame),
    ``visible.txt`` (one 0/1 per frame) and ``synthetic.json``. Resumable like `write_lasot_layout`.
    """
    layout = GenericLayout(image_format, jpeg_quality)
    return layout.write(Path(root).expanduser(), num_sequences, config or SyntheticVideoConfig(), seed, None)


def synthetic_sequences_dataset(
    root: str | os.PathLike,
    num_sequences: int,
    config: SyntheticVideoConfig | None = None,
    seed: int = 0,
    *,
    image_format: str = "jpg",
    jpeg_quality: int = 90,
    cache_dir: str | os.PathLike | None = None,
):
    """Write (or reuse) synthetic sequences under ``root`` and return them as a `datasets.Dataset` in the sequence
    schema (``dataset == "generic"``, exact float boxes), rows in index order."""
    from ..sequences import load_sequences

    names = write_generic_layout(
        root, num_sequences, config, seed, image_format=image_format, jpeg_quality=jpeg_quality
    )
    dataset = load_sequences("generic", root, cache_dir=cache_dir)
    positions = {name: position for position, name in enumerate(dataset["name"])}
    return dataset.select([positions[name] for name in names])
