"""Reading and writing tracking result files in the layouts the community uses, and the server submission zips.

Layouts read by `load_results` (a folder or a `.zip`, searched at any depth):

* ``pytracking``: ``<results>/<seq>.txt`` (``x y w h`` per frame, tab, comma or space separated), optional
  ``<seq>_time.txt``. Repeated runs: sibling folders ``<results>_<NNN>/`` (pytracking's ``<param>_000``, LoRAT's
  ``_001``...), or ``<seq>_<NNN>.txt`` files in one folder.
* ``got10k``: ``<results>/<seq>/<seq>_001.txt`` (``_002``, ... for repeated runs; the toolkit's ``<seq>_[0-9]*.txt``
  pattern) plus ``<seq>/<seq>_time.txt`` (one row per frame, one comma-separated column per run).
* ``trackingnet``: the devkit's rule: the file for ``<seq>`` is the only path containing ``<seq>.txt`` as a substring;
  zero or several matches mean "missing" (scored as all-zero boxes by the devkit).

Written files: pytracking-style ``<seq>.txt`` with ``%.3f`` tab-separated floats (LoRAT's writer; pytracking itself
truncates to ``%d``), GOT-10k ``<seq>/<seq>_NNN.txt`` comma-separated, ``<seq>_time.txt`` ``%.8f``, and the server zips.
Submission zips hold **rasterised** boxes by default, like LoRAT's official writers (the numbers on the servers were
produced that way): continuous ``xyxy`` -> ``floor(x1), floor(y1), floor(x2 + 1 - 1e-4), floor(y2 + 1 - 1e-4)`` ->
integer ``x, y, w, h``; pass ``rasterize=False`` to write the float boxes instead (``%.4f`` / ``%.2f``).
"""

from __future__ import annotations

import bisect
import io
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..boxes import rasterize_boxes, xywh_to_xyxy, xyxy_to_xywh
from ..file_utils import write_text_atomic

RESULT_LAYOUTS = ("auto", "pytracking", "got10k", "trackingnet")
_SEPARATORS = re.compile(r"[,\t ;]+")


class ResultFileError(ValueError):
    """A result file that cannot be parsed (the message names the file and the line)."""


# ----------------------------------------------------------------------------------------------------------------------
# parsing and formatting


def parse_boxes(text: str, source: str = "<text>") -> np.ndarray:
    """`(M, 4)` float64 boxes from ``x, y, w, h`` lines (comma, tab, space or semicolon separated; blank lines skipped).

    ``nan``/``inf`` are accepted as numbers. Raises `ResultFileError` naming ``source`` and the line for anything else.
    """
    rows = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = [f for f in _SEPARATORS.split(line) if f]
        if len(fields) != 4:
            raise ResultFileError(
                f"{source}: line {line_number}: expected 4 numbers (x, y, w, h), got {len(fields)}: {line[:80]!r}."
            )
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            raise ResultFileError(f"{source}: line {line_number}: not a number in {line[:80]!r}.") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def parse_times(text: str, source: str = "<text>") -> np.ndarray:
    """Per-frame times in seconds: `(N,)` for one column, `(N, runs)` for several (comma/tab/space separated)."""
    rows = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            rows.append([float(f) for f in _SEPARATORS.split(line) if f])
        except ValueError:
            raise ResultFileError(f"{source}: line {line_number}: not a number in {line[:80]!r}.") from None
        if len(rows[-1]) != len(rows[0]):
            raise ResultFileError(f"{source}: line {line_number}: {len(rows[-1])} columns, line 1 has {len(rows[0])}.")
    if not rows:
        return np.zeros(0)
    times = np.asarray(rows, dtype=np.float64)
    return times[:, 0] if times.shape[1] == 1 else times


def format_rows(values: np.ndarray, fmt: str, delimiter: str) -> str:
    """`np.savetxt`-style text: one row per line, ``fmt`` per value, trailing newline."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    return "".join(delimiter.join(fmt % v for v in row) + "\n" for row in values.tolist())


def rasterize_xywh(boxes_xywh: np.ndarray) -> np.ndarray:
    """LoRAT's submission rule on continuous ``x, y, w, h`` boxes: integer boxes covering every touched pixel.

    Raises `ValueError` for non-finite boxes (they have no pixel cover).
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(boxes).all():
        frame = int(np.argmax(~np.isfinite(boxes).all(axis=1)))
        raise ValueError(f"Cannot rasterise the non-finite box {boxes[frame].tolist()} of frame {frame}.")
    return xyxy_to_xywh(rasterize_boxes(xywh_to_xyxy(boxes))).astype(np.int64)


def write_pytracking_result(
    folder: str | os.PathLike,
    name: str,
    boxes_xywh: np.ndarray,
    times: np.ndarray | None = None,
    *,
    fmt: str = "%.3f",
    overwrite: bool = True,
) -> Path:
    """``<folder>/<name>.txt`` (tab-separated ``x y w h``) and, with ``times``, ``<name>_time.txt``; returns the box file.

    The time file is written first so that the box file, whose presence marks the sequence as done, appears last.
    """
    folder = Path(folder)
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    if times is not None:
        write_text_atomic(
            folder / f"{name}_time.txt", format_rows(np.asarray(times), "%.8f", ","), overwrite=overwrite
        )
    return write_text_atomic(folder / f"{name}.txt", format_rows(boxes, fmt, "\t"), overwrite=overwrite)


def _got10k_files(name: str, runs: Sequence[np.ndarray], times: np.ndarray | None, rasterize: bool) -> dict[str, str]:
    files = {}
    for run, boxes in enumerate(runs, start=1):
        values = rasterize_xywh(boxes) if rasterize else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        files[f"{name}/{name}_{run:03d}.txt"] = format_rows(values, "%d" if rasterize else "%.4f", ",")
    if times is not None:
        files[f"{name}/{name}_time.txt"] = format_rows(np.asarray(times, dtype=np.float64), "%.8f", ",")
    return files


def write_got10k_result(
    folder: str | os.PathLike,
    name: str,
    runs: Sequence[np.ndarray],
    times: np.ndarray | None = None,
    *,
    rasterize: bool = True,
    overwrite: bool = True,
) -> None:
    """The GOT-10k toolkit layout ``<folder>/<name>/<name>_NNN.txt`` (one per run) + ``<name>_time.txt``.

    ``runs`` hold ``(N, 4)`` ``x, y, w, h`` boxes (frame 0 included); ``times`` is `(N,)` or `(N, runs)` seconds.
    """
    files = _got10k_files(name, runs, times, rasterize)
    for relative in sorted(files, key=lambda r: r.endswith("_time.txt"), reverse=True):
        write_text_atomic(Path(folder) / relative, files[relative], overwrite=overwrite)


def _write_zip(zip_path: str | os.PathLike, files: Mapping[str, str], overwrite: bool) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in sorted(files):
            archive.writestr(relative, files[relative])
    return write_text_atomic(zip_path, buffer.getvalue(), overwrite=overwrite)


def write_got10k_submission(
    zip_path: str | os.PathLike,
    results: Mapping[str, tuple[Sequence[np.ndarray], np.ndarray | None]],
    *,
    rasterize: bool = True,
    overwrite: bool = False,
) -> Path:
    """GOT-10k server zip: ``<seq>/<seq>_001.txt`` (``_002``... per run) and ``<seq>/<seq>_time.txt`` at the root.

    Args:
        results: ``{name: (runs, times)}``, each run `(N, 4)` ``x, y, w, h`` (0-based pixels, frame 0 included),
            ``times`` `(N,)` or `(N, runs)` seconds per frame (``None``: no time file, the server then reports no speed).
        rasterize: write LoRAT's integer boxes (default) instead of ``%.4f`` floats.
    """
    files: dict[str, str] = {}
    for name, (runs, times) in results.items():
        files.update(_got10k_files(name, runs, times, rasterize))
    return _write_zip(zip_path, files, overwrite)


def write_trackingnet_submission(
    zip_path: str | os.PathLike,
    results: Mapping[str, np.ndarray],
    *,
    rasterize: bool = True,
    overwrite: bool = False,
) -> Path:
    """TrackingNet server zip: ``<seq>.txt`` at the root, comma-separated ``x, y, w, h`` for every frame.

    ``results`` maps names to `(N, 4)` boxes (frame 0 included). Integer boxes with ``rasterize`` (default), else
    ``%.2f`` floats; the devkit rounds every coordinate to an integer anyway.
    """
    files = {}
    for name, boxes in results.items():
        values = rasterize_xywh(boxes) if rasterize else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        files[f"{name}.txt"] = format_rows(values, "%d" if rasterize else "%.2f", ",")
    return _write_zip(zip_path, files, overwrite)


# ----------------------------------------------------------------------------------------------------------------------
# reading


class _Source:
    """A results folder or zip: the relative posix paths of its ``.txt`` files and their contents."""

    def __init__(self, path: Path):
        self.path = path
        self.is_zip = path.is_file()
        self._archive: zipfile.ZipFile | None = None
        if self.is_zip:
            if not zipfile.is_zipfile(path):
                raise ResultFileError(f"{path} is a file but not a zip archive; pass a results folder or a .zip.")
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith(".txt") and "__MACOSX" not in n]
        else:
            names = [p.relative_to(path).as_posix() for p in path.rglob("*.txt")]
        self.names = sorted(names)
        self.by_basename: dict[str, list[str]] = {}
        for name in self.names:
            self.by_basename.setdefault(name.rsplit("/", 1)[-1], []).append(name)
        self.by_parent: dict[str, list[str]] = {}
        for name in self.names:
            if "/" in name:
                self.by_parent.setdefault(name.rsplit("/", 2)[-2], []).append(name)
        self._sorted_basenames = sorted(self.by_basename)
        # for `containing`: basenames reversed and sorted (suffix search), and the few paths with ".txt" twice
        self._reversed_basenames = sorted(basename[::-1] for basename in self.by_basename)
        self._irregular = [name for name in self.names if name.count(".txt") > 1]

    def containing(self, text: str) -> list[str]:
        """Every path with ``text`` (a file name ending in ``.txt``, no ``/``) as a substring: the TrackingNet devkit's
        matching rule. Where ``.txt`` occurs once in a path, that means the path ends with ``text``, which a suffix
        search over the reversed file names finds in O(log n) instead of scanning every path."""
        key = text[::-1]
        found = []
        index = bisect.bisect_left(self._reversed_basenames, key)
        while index < len(self._reversed_basenames) and self._reversed_basenames[index].startswith(key):
            found.extend(self.by_basename[self._reversed_basenames[index][::-1]])
            index += 1
        found.extend(name for name in self._irregular if text in name and name not in found)
        return found

    def starting_with(self, prefix: str) -> list[str]:
        """Paths whose file name starts with ``prefix`` (binary search over the sorted file names)."""
        found = []
        index = bisect.bisect_left(self._sorted_basenames, prefix)
        while index < len(self._sorted_basenames) and self._sorted_basenames[index].startswith(prefix):
            found.extend(self.by_basename[self._sorted_basenames[index]])
            index += 1
        return found

    def read_text(self, relative: str) -> str:
        if self.is_zip:
            if self._archive is None:  # opened once, closed with the source
                self._archive = zipfile.ZipFile(self.path)
            return self._archive.read(relative).decode("utf-8", errors="replace")
        return (self.path / relative).read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    def describe(self, relative: str) -> str:
        return f"{self.path}!{relative}" if self.is_zip else str(self.path / relative)

    def unique(self, basename: str, *, parent: str | None = None) -> str | None:
        """The one path whose file name is ``basename`` (and whose folder is ``parent``); error when ambiguous."""
        found = self.by_basename.get(basename, [])
        if parent is not None:
            found = [n for n in found if n.rsplit("/", 2)[-2:-1] == [parent]]
        if len(found) > 1:
            shown = ", ".join(found[:4])
            raise ResultFileError(
                f"{self.path}: several files named {basename} ({shown}); keep one tracker per folder."
            )
        return found[0] if found else None


@dataclass
class SequenceResults:
    """The result files found for one sequence: one `(M, 4)` array per run (`None` = missing), their paths, times."""

    predictions: list[np.ndarray | None] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    times: np.ndarray | None = None


def _run_sources(results: Path, runs: int | None) -> list[Path]:
    """The folder/zip itself, or its numbered siblings ``<results>_<NNN>`` (pytracking/LoRAT repeated runs)."""
    if results.exists():
        return [results]
    stem, suffix = (results.with_suffix(""), ".zip") if results.suffix == ".zip" else (results, "")
    pattern = re.compile(re.escape(stem.name) + r"_(\d{3})" + re.escape(suffix) + "$")
    siblings = []
    if stem.parent.is_dir():
        siblings = sorted(
            (int(m.group(1)), p) for p in stem.parent.iterdir() if (m := pattern.match(p.name)) is not None
        )
    if not siblings:
        raise FileNotFoundError(
            f"No results at {results} (neither a folder/zip nor numbered run folders {stem.name}_001{suffix}, ...)."
        )
    if runs is not None:
        if len(siblings) < runs:
            found = ", ".join(p.name for _, p in siblings)
            raise FileNotFoundError(
                f"--runs {runs} asks for {runs} run folders next to {results}; found only {found}."
            )
        siblings = siblings[:runs]
    return [p for _, p in siblings]


def _numbered_runs(source: _Source, name: str, parent: str | None, runs: int | None) -> list[str | None]:
    """Run files of one sequence, sorted: in a ``<name>/`` folder the GOT-10k toolkit's ``<name>_[0-9]*.txt`` pattern,
    elsewhere exactly ``<name>_<NNN>.txt`` (so that TrackingNet's ``abc_2`` is not read as a run of ``abc``)."""
    tail = r"_[0-9][^/]*\.txt$" if parent is not None else r"_\d{3}\.txt$"
    pattern = re.compile(re.escape(name) + tail)
    candidates = source.by_parent.get(parent, []) if parent is not None else source.starting_with(f"{name}_")
    found = sorted(n for n in candidates if pattern.match(n.rsplit("/", 1)[-1]))
    folders = {n.rsplit("/", 1)[0] if "/" in n else "" for n in found}
    if len(folders) > 1:
        shown = ", ".join(sorted(folders)[:4])
        raise ResultFileError(
            f"{source.path}: results of {name} in several folders ({shown}); keep one tracker per folder."
        )
    if runs is None:
        return list(found)
    by_number = {}
    for path in found:
        match = re.search(r"_(\d+)\.txt$", path)
        if match:
            by_number.setdefault(int(match.group(1)), path)
    first = 0 if 0 in by_number else 1
    return [by_number.get(first + r) for r in range(runs)]


def _detect_layout(source: _Source, names: Sequence[str], protocol: str | None) -> str:
    if protocol == "trackingnet":
        return "trackingnet"
    nested = any(_numbered_runs(source, name, name, None) for name in names)
    flat = any(f"{name}.txt" in source.by_basename for name in names)
    flat_runs = any(_numbered_runs(source, name, None, None) for name in names)
    if protocol == "got10k":
        return "got10k" if nested or not (flat or flat_runs) else "pytracking"
    return "got10k" if nested and not flat else "pytracking"


def load_results(
    results: str | os.PathLike,
    sequence_names: Iterable[str],
    *,
    layout: str = "auto",
    runs: int | None = None,
    protocol: str | None = None,
) -> tuple[dict[str, SequenceResults], str]:
    """Read the result files of ``sequence_names`` from a folder or zip (see the module docstring for layouts).

    Args:
        results: a folder or ``.zip``; if it does not exist, its numbered siblings ``<results>_<NNN>`` are the runs.
        layout: ``auto`` (from ``protocol`` and the files present), ``pytracking``, ``got10k`` or ``trackingnet``.
        runs: how many runs to read (default: every run found).
        protocol: the protocol the files will be scored with (guides ``auto``).

    Returns:
        ``({name: SequenceResults}, layout used)``; every requested name is present, missing runs are ``None``.
    """
    if layout not in RESULT_LAYOUTS:
        raise ValueError(f"Unknown results layout {layout!r}; choose one of {', '.join(RESULT_LAYOUTS)}.")
    if runs is not None and runs < 1:
        raise ValueError(f"--runs must be at least 1, got {runs}.")
    names = list(sequence_names)
    sources = [_Source(path) for path in _run_sources(Path(results), runs)]
    if layout == "auto":
        layout = _detect_layout(sources[0], names, protocol)
    try:
        return _read_sources(sources, names, layout, runs), layout
    finally:
        for source in sources:
            source.close()


def _read_sources(
    sources: list[_Source], names: list[str], layout: str, runs: int | None
) -> dict[str, SequenceResults]:
    multi_source = len(sources) > 1
    loaded: dict[str, SequenceResults] = {}
    for name in names:
        entry = SequenceResults()
        for source in sources:
            if layout == "got10k":
                relatives = _numbered_runs(source, name, name, None if multi_source else runs)
                time_file = source.unique(f"{name}_time.txt", parent=name)
            elif layout == "trackingnet":
                matches = source.containing(f"{name}.txt")
                relatives = [matches[0] if len(matches) == 1 else None]
                time_file = None
            else:
                if (runs is None or runs == 1 or multi_source) and f"{name}.txt" in source.by_basename:
                    relatives = [source.unique(f"{name}.txt")]
                elif multi_source:
                    relatives = [None]
                else:
                    relatives = _numbered_runs(source, name, None, runs) or [None]
                time_file = source.unique(f"{name}_time.txt")
            for relative in relatives:
                if relative is None:
                    entry.predictions.append(None)
                    expected = f"{name}/{name}_NNN.txt" if layout == "got10k" else f"{name}.txt"
                    entry.paths.append(source.describe(expected))
                else:
                    entry.predictions.append(parse_boxes(source.read_text(relative), source.describe(relative)))
                    entry.paths.append(source.describe(relative))
            if entry.times is None and time_file is not None:
                entry.times = parse_times(source.read_text(time_file), source.describe(time_file))
        if layout == "got10k" and all(p is None for p in entry.predictions):
            entry.predictions = []
        loaded[name] = entry
    return loaded


def pack_got10k_submission(
    results: str | os.PathLike,
    sequence_names: Iterable[str],
    zip_path: str | os.PathLike,
    *,
    runs: int | None = None,
    rasterize: bool = True,
    overwrite: bool = False,
) -> Path:
    """Pack a results folder (any layout `load_results` reads) into a GOT-10k server zip; every sequence must exist."""
    loaded, _ = load_results(results, sequence_names, runs=runs, protocol="got10k")
    packed = {}
    for name, entry in loaded.items():
        if not entry.predictions or any(p is None for p in entry.predictions):
            raise FileNotFoundError(f"{name}: no result file in {results}; a submission needs every sequence.")
        packed[name] = (entry.predictions, entry.times)
    return write_got10k_submission(zip_path, packed, rasterize=rasterize, overwrite=overwrite)


def pack_trackingnet_submission(
    results: str | os.PathLike,
    sequence_names: Iterable[str],
    zip_path: str | os.PathLike,
    *,
    rasterize: bool = True,
    overwrite: bool = False,
) -> Path:
    """Pack a results folder of ``<seq>.txt`` files into a TrackingNet server zip; every sequence must exist."""
    loaded, _ = load_results(results, sequence_names, layout="pytracking", runs=1)
    packed = {}
    for name, entry in loaded.items():
        if entry.predictions[0] is None:
            raise FileNotFoundError(f"{name}: no result file in {results}; a submission needs every sequence.")
        packed[name] = entry.predictions[0]
    return write_trackingnet_submission(zip_path, packed, rasterize=rasterize, overwrite=overwrite)
