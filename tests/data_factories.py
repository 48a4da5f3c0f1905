"""Builders of tiny benchmark folders in each REAL on-disk layout, for tests (readers, evaluator, training data).

Every ``make_*`` function writes small frames (solid-colour images, a few hundred bytes each) and the benchmark's
annotation files under ``root`` and returns ``{name: FakeSequence}`` describing exactly what was written, so a test
can compare a reader's output with the truth. Boxes are written in the benchmark's own convention (LaSOT 1-based
integers, others 0-based floats). Typical use::

    from data_factories import make_lasot
    truth = make_lasot(tmp_path / "LaSOT", names=("airplane-1", "bear-2"), num_frames=5)
    ds = load_sequences("lasot", tmp_path / "LaSOT", split="test", cache_dir=tmp_path / "cache")
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "FakeSequence",
    "default_boxes",
    "make_coco",
    "make_generic",
    "make_got10k",
    "make_lasot",
    "make_lasot_ext",
    "make_tnl2k",
    "make_trackingnet",
    "write_frames",
]


@dataclass
class FakeSequence:
    """What a factory wrote for one sequence (``groundtruth_xywh`` is the file content, NaN rows where absent)."""

    name: str
    folder: Path
    frame_paths: list[Path]
    groundtruth_xywh: np.ndarray
    size_wh: tuple[int, int]
    flags: dict[str, list[int]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def write_frames(folder: Path, file_names: Iterable[str], size_wh: Sequence[int], seed: int = 0) -> list[Path]:
    """Solid-colour frames (colour varies per frame) of ``size_wh``; the format follows each name's extension."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for file_name in file_names:
        image = np.empty((int(size_wh[1]), int(size_wh[0]), 3), dtype=np.uint8)
        image[:] = rng.integers(0, 256, size=3, dtype=np.uint8)
        path = folder / file_name
        if not cv2.imwrite(str(path), image):
            raise OSError(f"could not write {path}")
        paths.append(path)
    return paths


def default_boxes(num_frames: int, size_wh: Sequence[int], seed: int = 0, integer: bool = False) -> np.ndarray:
    """`(N, 4)` xywh boxes inside a ``size_wh`` frame, drifting a little each frame (0-based)."""
    rng = np.random.default_rng(seed)
    width, height = size_wh
    w, h = width * rng.uniform(0.2, 0.4), height * rng.uniform(0.2, 0.4)
    x = np.clip(width * 0.3 + np.cumsum(rng.uniform(-1.5, 1.5, num_frames)), 0, width - w)
    y = np.clip(height * 0.3 + np.cumsum(rng.uniform(-1.5, 1.5, num_frames)), 0, height - h)
    boxes = np.stack([x, y, np.full(num_frames, w), np.full(num_frames, h)], axis=1)
    return np.floor(boxes) if integer else np.round(boxes, 2)


def _format_value(value: float, integer: bool) -> str:
    if not np.isfinite(value):
        return "nan"
    if integer or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _write_boxes(path: Path, boxes: np.ndarray, integer: bool = False, delimiter: str = ",") -> None:
    rows = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    path.write_text("".join(delimiter.join(_format_value(v, integer) for v in row) + "\n" for row in rows))


# --------------------------------------------------------------------------------------------------------------------
# LaSOT / LaSOT_ext
# --------------------------------------------------------------------------------------------------------------------


def make_lasot(
    root: Path,
    names: Sequence[str] = ("airplane-1", "airplane-2", "bear-1"),
    num_frames: int = 5,
    size_wh: Sequence[int] = (48, 36),
    *,
    boxes: Mapping[str, np.ndarray] | None = None,
    full_occlusion: Mapping[str, Sequence[int]] | None = None,
    out_of_view: Mapping[str, Sequence[int]] | None = None,
    testing_set: Sequence[str] | None = None,
    training_set: Sequence[str] | None = None,
    flat: bool = False,
    extra_images: int = 0,
) -> dict[str, FakeSequence]:
    """LaSOT layout: ``<root>/<class>/<name>/{groundtruth,full_occlusion,out_of_view,nlp}.txt`` + ``img/%08d.jpg``.

    ``boxes`` are 1-based integer xywh as LaSOT ships them (default: `default_boxes` + 1). ``testing_set`` /
    ``training_set`` write ``<root>/testing_set.txt`` / ``training_set.txt``. ``flat`` puts sequences directly
    under ``root``. ``extra_images`` adds images beyond the annotation length (like monkey-17).
    """
    sequences = {}
    for index, name in enumerate(names):
        class_name = name.rsplit("-", 1)[0]
        folder = root / name if flat else root / class_name / name
        folder.mkdir(parents=True, exist_ok=True)
        gt = (
            np.asarray(boxes[name])
            if boxes and name in boxes
            else default_boxes(num_frames, size_wh, index, True) + [1, 1, 0, 0]
        )
        count = len(gt)
        occlusion = list(full_occlusion[name]) if full_occlusion and name in full_occlusion else [0] * count
        out = list(out_of_view[name]) if out_of_view and name in out_of_view else [0] * count
        _write_boxes(folder / "groundtruth.txt", gt, integer=True)
        (folder / "full_occlusion.txt").write_text(",".join(map(str, occlusion)) + "\n")
        (folder / "out_of_view.txt").write_text(",".join(map(str, out)) + "\n")
        (folder / "nlp.txt").write_text(f"the {class_name} in sequence {name}\n")
        frames = write_frames(
            folder / "img", [f"{i:08d}.jpg" for i in range(1, count + 1 + extra_images)], size_wh, index
        )
        sequences[name] = FakeSequence(
            name,
            folder,
            frames[:count],
            gt.astype(np.float64),
            tuple(size_wh),
            flags={"full_occlusion": occlusion, "out_of_view": out},
            extra={"class": class_name, "nlp": f"the {class_name} in sequence {name}"},
        )
    for file_name, listed in (("testing_set.txt", testing_set), ("training_set.txt", training_set)):
        if listed is not None:
            (root / file_name).write_text("".join(f"{name}\n" for name in listed))
    return sequences


def make_lasot_ext(
    root: Path, names: Sequence[str] = ("atv-1", "atv-2", "wingsuit-10"), **kwargs
) -> dict[str, FakeSequence]:
    """LaSOT_ext layout (same files as LaSOT, 0-based boxes are not implied: the values are written as given)."""
    return make_lasot(root, names=names, **kwargs)


# --------------------------------------------------------------------------------------------------------------------
# GOT-10k
# --------------------------------------------------------------------------------------------------------------------


def make_got10k(
    root: Path,
    split: str = "val",
    names: Sequence[str] | None = None,
    num_frames: int = 5,
    size_wh: Sequence[int] = (48, 36),
    *,
    boxes: Mapping[str, np.ndarray] | None = None,
    cover: Mapping[str, Sequence[int]] | None = None,
    absence: Mapping[str, Sequence[int]] | None = None,
    write_meta: bool = True,
    list_names: Sequence[str] | None = None,
) -> dict[str, FakeSequence]:
    """GOT-10k layout: ``<root>/<split>/list.txt`` and ``<root>/<split>/<name>/{%08d.jpg, groundtruth.txt, ...}``.

    For ``split="test"`` only the first box is written and no label files. ``list_names`` overrides ``list.txt``.
    """
    if names is None:
        prefix = {"train": "Train", "val": "Val", "test": "Test"}[split]
        names = [f"GOT-10k_{prefix}_{i:06d}" for i in range(1, 3)]
    split_dir = root / split
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "list.txt").write_text("".join(f"{name}\n" for name in (list_names or names)))
    sequences = {}
    for index, name in enumerate(names):
        folder = split_dir / name
        gt = (
            np.asarray(boxes[name], dtype=np.float64)
            if boxes and name in boxes
            else default_boxes(num_frames, size_wh, index)
        )
        count = len(gt)
        frames = write_frames(folder, [f"{i:08d}.jpg" for i in range(1, count + 1)], size_wh, index)
        flags = {}
        if split == "test":
            _write_boxes(folder / "groundtruth.txt", gt[:1])
            truth = np.concatenate([gt[:1], np.full((count - 1, 4), np.nan)])
        else:
            _write_boxes(folder / "groundtruth.txt", gt)
            truth = gt
            flags = {
                "cover": list(cover[name]) if cover and name in cover else [8] * count,
                "absence": list(absence[name]) if absence and name in absence else [0] * count,
                "cut_by_image": [0] * count,
            }
            for key, values in flags.items():
                (folder / f"{key}.label").write_text("".join(f"{v}\n" for v in values))
        meta = {}
        if write_meta:
            meta = {
                "url": "https://example.com/video",
                "begin": "0",
                "end": str(count),
                "anno_fps": "10Hz",
                "object_class": "ant",
                "motion_class": "walking",
                "major_class": "insect",
                "root_class": "animal",
                "motion_adverb": "slowly",
                "resolution": f"({size_wh[0]}, {size_wh[1]})",
            }
            (folder / "meta_info.ini").write_text("[METAINFO]\n" + "".join(f"{k}: {v}\n" for k, v in meta.items()))
        sequences[name] = FakeSequence(
            name, folder, frames, truth, tuple(size_wh), flags=flags, extra={"meta_info": meta}
        )
    return sequences


# --------------------------------------------------------------------------------------------------------------------
# TrackingNet
# --------------------------------------------------------------------------------------------------------------------


def make_trackingnet(
    root: Path,
    chunks: Mapping[str, Sequence[str]] | None = None,
    num_frames: int = 12,
    size_wh: Sequence[int] = (48, 36),
    *,
    boxes: Mapping[str, np.ndarray] | None = None,
) -> dict[str, FakeSequence]:
    """TrackingNet layout: ``<root>/<chunk>/anno/<name>.txt`` and ``<root>/<chunk>/frames/<name>/<n>.jpg`` (0-based).

    ``TEST`` sequences get their first box only. The default 12 frames make numeric vs lexical order differ.
    """
    chunks = chunks or {"TRAIN_0": ["-3TIfnTSM6c_2", "a1b2c3_0"], "TRAIN_1": ["zz9_1"], "TEST": ["test_seq_0"]}
    sequences = {}
    index = 0
    for chunk, names in chunks.items():
        (root / chunk / "anno").mkdir(parents=True, exist_ok=True)
        for name in names:
            gt = (
                np.asarray(boxes[name], dtype=np.float64)
                if boxes and name in boxes
                else default_boxes(num_frames, size_wh, index)
            )
            count = len(gt)
            frames = write_frames(root / chunk / "frames" / name, [f"{i}.jpg" for i in range(count)], size_wh, index)
            written = gt[:1] if chunk == "TEST" else gt
            _write_boxes(root / chunk / "anno" / f"{name}.txt", written)
            truth = np.concatenate([gt[:1], np.full((count - 1, 4), np.nan)]) if chunk == "TEST" else gt
            sequences[name] = FakeSequence(name, root / chunk, frames, truth, tuple(size_wh), extra={"chunk": chunk})
            index += 1
    return sequences


# --------------------------------------------------------------------------------------------------------------------
# TNL2K
# --------------------------------------------------------------------------------------------------------------------


def make_tnl2k(
    root: Path,
    names: Sequence[str] = ("Assian_video_Z03_done", "BF5_Blade_video_01-Done"),
    num_frames: int = 5,
    size_wh: Sequence[int] = (48, 36),
    *,
    extensions: Mapping[str, str] | None = None,
    boxes: Mapping[str, np.ndarray] | None = None,
) -> dict[str, FakeSequence]:
    """TNL2K layout: ``<root>/<name>/{groundtruth.txt, language.txt, imgs/%08d.<ext>}`` (absent frames: 0,0,0,0)."""
    sequences = {}
    for index, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        gt = (
            np.asarray(boxes[name], dtype=np.float64)
            if boxes and name in boxes
            else default_boxes(num_frames, size_wh, index)
        )
        ext = (extensions or {}).get(name, "jpg")
        frames = write_frames(folder / "imgs", [f"{i:08d}.{ext}" for i in range(1, len(gt) + 1)], size_wh, index)
        _write_boxes(folder / "groundtruth.txt", gt)
        language = f"the target of {name}"
        (folder / "language.txt").write_text(language + "\n")
        sequences[name] = FakeSequence(name, folder, frames, gt, tuple(size_wh), extra={"language": language})
    return sequences


# --------------------------------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------------------------------


def make_coco(
    root: Path,
    split: str = "val",
    images: Sequence[tuple[int, int, int]] = ((1, 48, 36), (2, 40, 30)),
    annotations: Sequence[Mapping] | None = None,
    *,
    flat_layout: bool = False,
) -> dict[str, FakeSequence]:
    """COCO 2017 layout: ``<root>/annotations/instances_<split>2017.json`` + ``<root>/images/<split>2017/*.jpg``.

    ``images`` = ``(image_id, width, height)``; ``annotations`` = dicts with ``id``, ``image_id``, ``bbox`` and
    optional ``iscrowd`` / ``category_id``. Returns the rows a reader must produce (non-crowd, positive size in image).
    """
    image_dir = root / f"{split}2017" if flat_layout else root / "images" / f"{split}2017"
    file_names = {image_id: f"{image_id:012d}.jpg" for image_id, _, _ in images}
    for image_id, width, height in images:
        write_frames(image_dir, [file_names[image_id]], (width, height), image_id)
    if annotations is None:
        annotations = [
            {"id": 10, "image_id": 1, "bbox": [5.5, 4.0, 20.25, 10.0]},
            {"id": 11, "image_id": 1, "bbox": [0.0, 0.0, 48.0, 36.0], "iscrowd": 1},
            {"id": 12, "image_id": 2, "bbox": [38.0, 2.0, 10.0, 8.0]},
            {"id": 13, "image_id": 2, "bbox": [45.0, 2.0, 10.0, 8.0]},
            {"id": 14, "image_id": 2, "bbox": [3.0, 3.0, 0.0, 8.0]},
        ]
    categories = [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 3, "name": "car", "supercategory": "vehicle"},
    ]
    content = {
        "images": [{"id": i, "file_name": file_names[i], "width": w, "height": h} for i, w, h in images],
        "annotations": [
            {"category_id": 1, "iscrowd": 0, "area": float(a["bbox"][2] * a["bbox"][3]), "segmentation": [], **a}
            for a in annotations
        ],
        "categories": categories,
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(content))
    sizes = {i: (w, h) for i, w, h in images}
    expected = {}
    for a in content["annotations"]:
        x, y, w, h = a["bbox"]
        width, height = sizes[a["image_id"]]
        fitted_w = min(x + w, width) - max(x, 0)
        fitted_h = min(y + h, height) - max(y, 0)
        if a["iscrowd"] or fitted_w <= 0 or fitted_h <= 0:
            continue
        name = f"{a['image_id']}_{a['id']}"
        expected[name] = FakeSequence(
            name,
            image_dir,
            [image_dir / file_names[a["image_id"]]],
            np.asarray([a["bbox"]], dtype=np.float64),
            sizes[a["image_id"]],
            extra={"category_id": a["category_id"]},
        )
    return expected


# --------------------------------------------------------------------------------------------------------------------
# Generic
# --------------------------------------------------------------------------------------------------------------------


def make_generic(
    root: Path,
    names: Sequence[str] = ("walk", "car2", "car10"),
    num_frames: int = 5,
    size_wh: Sequence[int] = (48, 36),
    *,
    frame_folder: str = "img",
    extension: str = "png",
    boxes: Mapping[str, np.ndarray] | None = None,
    visible: Mapping[str, Sequence[int]] | None = None,
    absent: Mapping[str, Sequence[int]] | None = None,
    delimiter: str = ",",
    frame_names: Sequence[str] | None = None,
) -> dict[str, FakeSequence]:
    """Generic layout: ``<root>/<name>/groundtruth.txt`` + frames in ``<frame_folder>/`` (``""`` = the folder itself).

    ``visible`` / ``absent`` write ``visible.txt`` / ``absent.txt``; ``frame_names`` overrides the default
    ``frame1.<ext>, frame2.<ext>, ...`` naming (natural order matters: frame10 follows frame9).
    """
    sequences = {}
    for index, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        gt = (
            np.asarray(boxes[name], dtype=np.float64)
            if boxes and name in boxes
            else default_boxes(num_frames, size_wh, index)
        )
        files = (
            list(frame_names) if frame_names is not None else [f"frame{i}.{extension}" for i in range(1, len(gt) + 1)]
        )
        frames = write_frames(folder / frame_folder if frame_folder else folder, files, size_wh, index)
        _write_boxes(folder / "groundtruth.txt", gt, delimiter=delimiter)
        flags = {}
        if visible and name in visible:
            (folder / "visible.txt").write_text("\n".join(map(str, visible[name])) + "\n")
            flags["visible"] = list(visible[name])
        if absent and name in absent:
            (folder / "absent.txt").write_text(",".join(map(str, absent[name])) + "\n")
            flags["absent"] = list(absent[name])
        sequences[name] = FakeSequence(name, folder, frames, gt, tuple(size_wh), flags=flags)
    return sequences
