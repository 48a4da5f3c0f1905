"""Tracking sequences as a `datasets.Dataset`: the schema, the reader registry, the Arrow cache and Hub loading.

Every benchmark reader produces the same table, one row per sequence (one row per object for COCO):

==================== ================================ ==============================================================
column               type                             meaning
==================== ================================ ==============================================================
``dataset``          string                           ``lasot``, ``lasot_ext``, ``got10k``, ``trackingnet``,
                                                      ``tnl2k``, ``coco`` or ``generic``
``name``             string                           sequence name as the benchmark spells it (``airplane-1``,
                                                      ``GOT-10k_Val_000001``, COCO ``<image_id>_<annotation_id>``);
                                                      unique within one loaded dataset
``frame_paths``      List(string)                     absolute frame paths in temporal order (decoded lazily)
``groundtruth_xywh`` List(List(float64, length=4))    the annotation exactly as shipped (LaSOT 1-based integers,
                                                      absent frames as in the file, ``NaN`` rows where the file has
                                                      no annotation, e.g. GOT-10k/TrackingNet test after frame 0)
``boxes_xyxy``       List(List(float64, length=4))    cleaned boxes: continuous 0-based ``xyxy`` pixels fitted to the
                                                      image; ``NaN`` where there is no box with a positive area
``visible``          List(bool)                       the target is visible in that frame (benchmark flags AND a box
                                                      with a positive area inside the image)
``image_width``      int32                            frame width in pixels (meta data or the first frame's header)
``image_height``     int32                            frame height in pixels
``coordinate_offset`` float32                         1.0 for LaSOT (its files are 1-based), else 0.0: add it to
                                                      0-based tracker outputs when writing results for the benchmark
``extra``            string                           JSON with benchmark-specific fields (GOT-10k ``cover``,
                                                      ``absence``, ``cut_by_image``, ``meta_info``; LaSOT
                                                      ``full_occlusion``, ``out_of_view``, ``class``, ``nlp``; TNL2K
                                                      ``language``; COCO ``category``, ``image_id``, ...)
==================== ================================ ==============================================================

Pixel ``i`` covers ``[i, i + 1)`` (see `lorat_hf.boxes`), so a LaSOT line ``x,y,w,h`` becomes
``(x - 1, y - 1, x - 1 + w, y - 1 + h)`` and every other benchmark's ``(x, y, x + w, y + h)``. Boxes of frames that are
not visible are kept in ``boxes_xyxy`` when they have an area (LaSOT often repeats the last box while the target is
occluded): always gate on ``visible``. Evaluation uses ``groundtruth_xywh`` (every frame kept); training uses
``boxes_xyxy``/``visible`` after `trim_unannotated` (frames before the first and after the last visible one removed).

`load_sequences` parses a benchmark once into an Arrow file under ``cache_dir`` (default
``$LORAT_HF_CACHE/sequences``, ``LORAT_HF_CACHE`` defaulting to ``~/.cache/lorat_hf``), keyed by dataset, split,
absolute root, `SCHEMA_VERSION` and the sizes/mtimes of the annotation files; later calls memory-map that file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
from datasets import Dataset, Features, List, Value
from filelock import FileLock
from tqdm.auto import tqdm

from ..boxes import boxes_are_valid, clip_boxes_to_image, xywh_to_xyxy
from ..video_io import read_image_rgb as read_frame

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Bumped whenever a reader's output changes; part of the cache key, so old caches are rebuilt automatically."""

DATASET_NAMES = ("lasot", "lasot_ext", "got10k", "trackingnet", "tnl2k", "coco", "generic")

SEQUENCE_FEATURES = Features(
    {
        "dataset": Value("string"),
        "name": Value("string"),
        "frame_paths": List(Value("string")),
        "groundtruth_xywh": List(List(Value("float64"), length=4)),
        "boxes_xyxy": List(List(Value("float64"), length=4)),
        "visible": List(Value("bool")),
        "image_width": Value("int32"),
        "image_height": Value("int32"),
        "coordinate_offset": Value("float32"),
        "extra": Value("string"),
    }
)

PER_FRAME_EXTRA_KEYS = ("cover", "absence", "cut_by_image", "full_occlusion", "out_of_view")
"""Keys of ``extra`` holding one value per frame; `trim_unannotated` slices them together with the frames."""

CACHE_ENV = "LORAT_HF_CACHE"
_ARROW_FILE = "sequences.arrow"
_META_FILE = "meta.json"
_WRITER_BATCH_SIZE = 256


def default_cache_dir() -> Path:
    """``$LORAT_HF_CACHE/sequences`` (``LORAT_HF_CACHE`` defaults to ``~/.cache/lorat_hf``)."""
    base = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "lorat_hf")
    return Path(base).expanduser() / "sequences"


# --------------------------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------------------------


def build_sequence_row(
    dataset: str,
    name: str,
    frame_paths: Sequence[str | os.PathLike],
    groundtruth_xywh: np.ndarray,
    image_size_wh: Sequence[int],
    visible_flags: np.ndarray | None = None,
    coordinate_offset: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One schema row from raw annotations, applying the official data cleaning.

    Args:
        groundtruth_xywh: `(N, 4)` boxes exactly as the benchmark ships them (``NaN`` rows where it has none).
        image_size_wh: `(width, height)` of the frames in pixels.
        visible_flags: `(N,)` benchmark visibility (e.g. LaSOT ``!full_occlusion & !out_of_view``); all True if None.
        coordinate_offset: subtracted from every coordinate (1.0 for LaSOT's 1-based files).

    ``boxes_xyxy`` = the box in continuous ``xyxy``, clipped to ``[0, W] x [0, H]``, ``NaN`` when nothing with a
    positive area is left; ``visible`` = ``visible_flags`` AND such a box exists. Per-frame columns are numpy arrays
    (Arrow converts them ~25x faster than nested lists); ``Dataset.from_list(rows, features=SEQUENCE_FEATURES)``
    accepts them as they are.
    """
    groundtruth = np.asarray(groundtruth_xywh, dtype=np.float64).reshape(-1, 4)
    num_frames = len(frame_paths)
    if groundtruth.shape[0] != num_frames:
        raise ValueError(f"Sequence {name!r}: {groundtruth.shape[0]} boxes for {num_frames} frames.")
    width, height = int(image_size_wh[0]), int(image_size_wh[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"Sequence {name!r}: invalid frame size {width}x{height}.")
    boxes = xywh_to_xyxy(groundtruth) - coordinate_offset
    boxes = clip_boxes_to_image(boxes, (width, height))
    has_box = boxes_are_valid(boxes)
    boxes[~has_box] = np.nan
    visible = has_box.copy()
    if visible_flags is not None:
        flags = np.asarray(visible_flags, dtype=bool).reshape(-1)
        if flags.shape[0] != num_frames:
            raise ValueError(f"Sequence {name!r}: {flags.shape[0]} visibility flags for {num_frames} frames.")
        visible &= flags
    return {
        "dataset": dataset,
        "name": name,
        "frame_paths": [os.fspath(path) for path in frame_paths],
        "groundtruth_xywh": groundtruth,
        "boxes_xyxy": boxes,
        "visible": visible,
        "image_width": width,
        "image_height": height,
        "coordinate_offset": float(coordinate_offset),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }


@dataclass
class TrackingSequence:
    """A numpy view of one row: ``frame_paths`` list, boxes `(N, 4)` float64, ``visible`` `(N,)` bool, ``extra`` dict."""

    dataset: str
    name: str
    frame_paths: list[str]
    groundtruth_xywh: np.ndarray
    boxes_xyxy: np.ndarray
    visible: np.ndarray
    image_width: int
    image_height: int
    coordinate_offset: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TrackingSequence:
        """Build from a dataset row (python or numpy formatted)."""
        extra = row.get("extra") or "{}"
        return cls(
            dataset=str(row["dataset"]),
            name=str(row["name"]),
            frame_paths=[str(path) for path in row["frame_paths"]],
            groundtruth_xywh=_as_boxes(row["groundtruth_xywh"]),
            boxes_xyxy=_as_boxes(row["boxes_xyxy"]),
            visible=np.asarray(row["visible"], dtype=bool).reshape(-1),
            image_width=int(row["image_width"]),
            image_height=int(row["image_height"]),
            coordinate_offset=float(row["coordinate_offset"]),
            extra=json.loads(extra) if isinstance(extra, str) else dict(extra),
        )

    def to_row(self) -> dict[str, Any]:
        """The schema row (python types), e.g. for ``Dataset.from_list(rows, features=SEQUENCE_FEATURES)``."""
        return {
            "dataset": self.dataset,
            "name": self.name,
            "frame_paths": list(self.frame_paths),
            "groundtruth_xywh": np.asarray(self.groundtruth_xywh, dtype=np.float64).reshape(-1, 4).tolist(),
            "boxes_xyxy": np.asarray(self.boxes_xyxy, dtype=np.float64).reshape(-1, 4).tolist(),
            "visible": np.asarray(self.visible, dtype=bool).tolist(),
            "image_width": int(self.image_width),
            "image_height": int(self.image_height),
            "coordinate_offset": float(self.coordinate_offset),
            "extra": json.dumps(self.extra, sort_keys=True),
        }

    def __len__(self) -> int:
        return len(self.frame_paths)

    @property
    def image_size_wh(self) -> tuple[int, int]:
        return self.image_width, self.image_height

    def frame(self, index: int) -> np.ndarray:
        """Decode frame ``index`` as an `(H, W, 3)` uint8 RGB array."""
        return read_frame(self.frame_paths[index])


def _as_boxes(values: Any) -> np.ndarray:
    if len(values) == 0:
        return np.zeros((0, 4), dtype=np.float64)
    return np.asarray([np.asarray(box, dtype=np.float64) for box in values], dtype=np.float64).reshape(-1, 4)


def trim_unannotated(row: dict[str, Any]) -> dict[str, Any]:
    """Drop the frames before the first and after the last visible one (official training-time cleaning).

    Per-frame columns and the per-frame lists of ``extra`` (`PER_FRAME_EXTRA_KEYS`) are sliced together;
    ``extra["frame_offset"]`` records how many leading frames were removed. A sequence without any visible frame comes
    back with zero frames (see `trim_unannotated_sequences`, which drops those). Use evaluation rows untrimmed.
    """
    visible = np.asarray(row["visible"], dtype=bool).reshape(-1)
    indices = np.flatnonzero(visible)
    start, stop = (int(indices[0]), int(indices[-1]) + 1) if indices.size else (0, 0)
    num_frames = visible.shape[0]
    trimmed = dict(row)
    for key in ("frame_paths", "groundtruth_xywh", "boxes_xyxy", "visible"):
        trimmed[key] = list(row[key])[start:stop]
    extra = json.loads(row.get("extra") or "{}")
    for key in PER_FRAME_EXTRA_KEYS:
        if isinstance(extra.get(key), list) and len(extra[key]) == num_frames:
            extra[key] = extra[key][start:stop]
    extra["frame_offset"] = int(extra.get("frame_offset", 0)) + start
    trimmed["extra"] = json.dumps(extra, sort_keys=True)
    return trimmed


def trim_unannotated_sequences(dataset: Dataset, num_proc: int | None = None) -> Dataset:
    """`trim_unannotated` on every row, then drop rows left without frames: the training view of a benchmark."""
    trimmed = dataset.map(trim_unannotated, num_proc=num_proc, desc="Trimming unannotated frames")
    return trimmed.filter(lambda visible: len(visible) > 0, input_columns="visible", num_proc=num_proc)


# --------------------------------------------------------------------------------------------------------------------
# Reader registry
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class ReadPlan:
    """What a reader will parse: cheap to build (directory listings and list files only, no annotation parsing).

    Attributes:
        split: the resolved split name (part of the cache key; ``None`` resolves to the reader's default).
        units: opaque work items handed one by one to `SequenceReader.read` (usually one per sequence).
        annotation_files: files (and frame folders) whose size/mtime fingerprint the cache entry.
    """

    split: str
    units: list[Any]
    annotation_files: list[Path]
    unit_name: str = "seq"


class SequenceReader:
    """Base class of benchmark readers. Subclass, set `name`, implement `plan` and `read`, then register it."""

    name: ClassVar[str]
    coordinate_offset: ClassVar[float] = 0.0
    splits: ClassVar[tuple[str, ...]] = ()
    """Documented split names (a reader may accept more, e.g. TrackingNet chunk names)."""
    default_split: ClassVar[str] = ""

    def plan(self, root: Path, split: str | None) -> ReadPlan:
        raise NotImplementedError

    def read(self, root: Path, unit: Any) -> Iterator[dict[str, Any]]:
        """Yield schema rows (built with `build_sequence_row`) for one unit of the plan."""
        raise NotImplementedError

    def resolve_split(self, split: str | None) -> str:
        split = self.default_split if split is None else split
        if split not in self.splits:
            raise ValueError(f"Unknown {self.name} split {split!r}; choose one of {list(self.splits)}.")
        return split


_READERS: dict[str, SequenceReader] = {}


def register_sequence_reader(reader: type[SequenceReader] | SequenceReader, exist_ok: bool = False):
    """Register a reader (class or instance) under ``reader.name``; usable as a class decorator."""
    instance = reader() if isinstance(reader, type) else reader
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"A sequence reader needs a lowercase `name` ([a-z0-9_]+), got {name!r}.")
    if name in _READERS and not exist_ok and type(_READERS[name]) is not type(instance):
        raise ValueError(f"A sequence reader named {name!r} is already registered; pass exist_ok=True to replace it.")
    _READERS[name] = instance
    return reader


def _ensure_builtin_readers() -> None:
    from . import readers  # noqa: F401  (registers the built-in readers on import)


def available_datasets() -> tuple[str, ...]:
    """Names accepted by `load_sequences`."""
    _ensure_builtin_readers()
    return tuple(sorted(_READERS))


def get_sequence_reader(dataset: str) -> SequenceReader:
    _ensure_builtin_readers()
    if dataset not in _READERS:
        raise ValueError(f"Unknown dataset {dataset!r}; available: {', '.join(available_datasets())}.")
    return _READERS[dataset]


# --------------------------------------------------------------------------------------------------------------------
# Loading and caching
# --------------------------------------------------------------------------------------------------------------------


def load_sequences(
    dataset: str,
    root: str | os.PathLike,
    split: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    refresh: bool = False,
    *,
    progress: bool | None = None,
) -> Dataset:
    """Read a benchmark folder into a memory-mapped `datasets.Dataset` with `SEQUENCE_FEATURES`, one row per sequence.

    Args:
        dataset: one of `available_datasets()` (``lasot``, ``lasot_ext``, ``got10k``, ``trackingnet``, ``tnl2k``,
            ``coco``, ``generic``).
        root: the benchmark's root folder, in its original layout (see each reader's module docstring).
        split: benchmark split; ``None`` selects the reader's default (the evaluation split, ``train`` for COCO).
        cache_dir: where parsed Arrow files live (default `default_cache_dir()`).
        refresh: re-parse even if a matching cache entry exists.
        progress: show a tqdm bar while parsing (default: only on the local main process).

    The first call parses the annotations (frames stay paths) and writes ``<cache_dir>/<dataset>/<split>-<key>/``
    atomically; later calls with unchanged annotation files memory-map it without parsing. Raises
    `FileNotFoundError` for a missing root, split folder or annotation file and `ValueError` for malformed files,
    frame-count mismatches and empty splits.
    """
    reader = get_sequence_reader(dataset)
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise FileNotFoundError(f"The {dataset} root folder {root_path} does not exist (or is not a folder).")
    root_path = root_path.resolve()
    plan = reader.plan(root_path, split)
    if not plan.units:
        raise ValueError(f"Split {plan.split!r} of {dataset} at {root_path} is empty: no sequences to read.")
    key = _cache_key(reader.name, plan, root_path)
    entry = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    entry = entry / reader.name / f"{_safe_name(plan.split)}-{key}"
    arrow_path = entry / _ARROW_FILE
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        if refresh and entry.exists():
            _remove_tree(entry)
        if arrow_path.is_file():
            logger.info("Loading %s/%s sequences from the cache %s", dataset, plan.split, entry)
        else:
            _build_cache_entry(reader, root_path, plan, entry, progress)
    return Dataset.from_file(str(arrow_path), in_memory=False)


def _cache_key(dataset: str, plan: ReadPlan, root: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    header = {"dataset": dataset, "split": plan.split, "root": str(root), "schema_version": SCHEMA_VERSION}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for path in plan.annotation_files:
        try:
            stat = os.stat(path)
            record = f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
        except FileNotFoundError:
            record = f"{path}\0missing\n"
        digest.update(record.encode())
    return digest.hexdigest()


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "default"


def _remove_tree(path: Path) -> None:
    trash = path.with_name(f".{path.name}.trash-{uuid.uuid4().hex[:8]}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _is_main_process() -> bool:
    return os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")) in ("", "0")


def _build_cache_entry(reader: SequenceReader, root: Path, plan: ReadPlan, entry: Path, progress: bool | None) -> None:
    from datasets.arrow_writer import ArrowWriter

    start = time.perf_counter()
    temporary = entry.with_name(f".{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    temporary.mkdir(parents=True)
    show = _is_main_process() if progress is None else progress
    names: set[str] = set()
    num_frames = 0
    try:
        writer = ArrowWriter(
            features=SEQUENCE_FEATURES, path=str(temporary / _ARROW_FILE), writer_batch_size=_WRITER_BATCH_SIZE
        )
        try:
            bar = tqdm(plan.units, desc=f"Parsing {reader.name}/{plan.split}", unit=plan.unit_name, disable=not show)
            for unit in bar:
                for row in reader.read(root, unit):
                    if row["name"] in names:
                        raise ValueError(
                            f"Sequence name {row['name']!r} appears twice in {reader.name}/{plan.split} at {root}; "
                            "names must be unique within a split."
                        )
                    names.add(row["name"])
                    num_frames += len(row["frame_paths"])
                    writer.write(row)
            writer.finalize()
        finally:
            writer.close()
        if not names:
            raise ValueError(f"Split {plan.split!r} of {reader.name} at {root} is empty: no usable sequences.")
        meta = {
            "dataset": reader.name,
            "split": plan.split,
            "root": str(root),
            "schema_version": SCHEMA_VERSION,
            "datasets_version": datasets.__version__,
            "num_sequences": len(names),
            "num_frames": num_frames,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (temporary / _META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(temporary, entry)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    logger.info(
        "Parsed %d %s/%s sequences (%d frames) in %.1f s into %s",
        len(names),
        reader.name,
        plan.split,
        num_frames,
        time.perf_counter() - start,
        entry,
    )


# --------------------------------------------------------------------------------------------------------------------
# Saved datasets and the Hub
# --------------------------------------------------------------------------------------------------------------------


def load_sequences_from(
    path_or_repo_id: str | os.PathLike,
    split: str | None = None,
    frames_root: str | os.PathLike | None = None,
    **load_dataset_kwargs: Any,
) -> Dataset:
    """Load sequences saved with this schema: a ``save_to_disk`` folder, a local data folder, or a Hub dataset repo.

    Args:
        path_or_repo_id: a local folder (``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` output, or parquet /
            json files that `datasets.load_dataset` can read) or a Hub dataset repo id (via `datasets.load_dataset`).
        split: which split to return when the source holds several (``None`` works when it holds exactly one).
        frames_root: folder that relative ``frame_paths`` are resolved against (default: the local folder itself;
            required for Hub repos whose frame paths are relative).
        load_dataset_kwargs: forwarded to `datasets.load_dataset` (``revision``, ``cache_dir``, ``token``, ...).

    The columns are validated and cast to `SEQUENCE_FEATURES`; other columns are kept.
    """
    source = os.fspath(path_or_repo_id)
    local = Path(source).expanduser()
    if local.is_dir():
        if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
            loaded = datasets.load_from_disk(str(local))
        else:
            loaded = datasets.load_dataset(str(local), **load_dataset_kwargs)
        base = Path(frames_root).expanduser() if frames_root is not None else local.resolve()
    else:
        if os.path.isabs(source) or source.startswith((".", "~")):
            raise FileNotFoundError(f"{source} is not an existing folder (nor a Hub dataset repo id).")
        loaded = datasets.load_dataset(source, **load_dataset_kwargs)
        base = Path(frames_root).expanduser() if frames_root is not None else None
    dataset = _pick_split(loaded, split, source)
    _check_columns(dataset, source)
    dataset = dataset.cast(Features({**dataset.features, **SEQUENCE_FEATURES}))
    return _resolve_relative_frames(dataset, base, source)


def _pick_split(loaded: Dataset | datasets.DatasetDict, split: str | None, source: str) -> Dataset:
    if isinstance(loaded, Dataset):
        return loaded
    if not isinstance(loaded, datasets.DatasetDict):
        raise TypeError(f"{source} loaded as {type(loaded).__name__}; expected a Dataset or a DatasetDict.")
    if split is None:
        if len(loaded) != 1:
            raise ValueError(f"{source} holds the splits {sorted(loaded)}; pass split= to choose one.")
        split = next(iter(loaded))
    if split not in loaded:
        raise ValueError(f"{source} has no split {split!r}; it holds {sorted(loaded)}.")
    return loaded[split]


def _check_columns(dataset: Dataset, source: str) -> None:
    missing = [name for name in SEQUENCE_FEATURES if name not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{source} does not follow the lorat_hf sequence schema: missing columns {missing} "
            f"(expected {list(SEQUENCE_FEATURES)}; see lorat_hf.data.SEQUENCE_FEATURES)."
        )


def _resolve_relative_frames(dataset: Dataset, base: Path | None, source: str) -> Dataset:
    def has_relative(paths: list[list[str]]) -> bool:
        return any(not os.path.isabs(path) for frame_paths in paths for path in frame_paths)

    sample = dataset.select(range(min(len(dataset), 16)))["frame_paths"]
    relative = has_relative(sample) or (len(dataset) > 16 and has_relative(dataset["frame_paths"]))
    if not relative:
        return dataset
    if base is None:
        raise ValueError(
            f"{source} stores relative frame paths; pass frames_root= with the folder they are relative to."
        )
    base_text = str(base)

    def absolutize(paths: list[str]) -> dict[str, list[str]]:
        return {"frame_paths": [p if os.path.isabs(p) else os.path.join(base_text, p) for p in paths]}

    return dataset.map(absolutize, input_columns="frame_paths", desc="Resolving frame paths")


def iter_sequences(dataset: Iterable[dict[str, Any]]) -> Iterator[TrackingSequence]:
    """`TrackingSequence` views of every row of a dataset (or any iterable of rows)."""
    for row in dataset:
        yield TrackingSequence.from_row(row)
