"""The one writer of `benchmarks/RESULTS.md`, shared by every benchmark script.

Each benchmark owns one section of the file, delimited by `<!-- BEGIN name -->` and `<!-- END name -->` lines, and
replaces only that section on every run (appending it when it is not there yet); everything outside it is kept
byte for byte. Writes are atomic (`lorat_hf.file_utils.write_text_atomic`) and serialised by a file
lock, `RESULTS.md.lock` next to the file (gitignored), so that benchmarks finishing at the same time do not lose
each other's update.

The scripts run as `python benchmarks/<name>.py`, which puts this folder on `sys.path`: they import it as
`from results_md import RESULTS_FILE, update_results_section`.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock

from lorat_hf.file_utils import write_text_atomic

RESULTS_FILE = Path(__file__).resolve().with_name("RESULTS.md")
HEADER = "# Benchmark results\n"


def section_markers(name: str) -> tuple[str, str]:
    """The `<!-- BEGIN name -->` and `<!-- END name -->` lines (without newlines) around section `name`."""
    if not name or "-->" in name or "\n" in name or name != name.strip():
        raise ValueError(f"invalid RESULTS.md section name: {name!r}")
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def update_results_section(name: str, markdown: str, path: str | os.PathLike = RESULTS_FILE) -> None:
    """Replace the section `name` of the results file with `markdown`, or append it when it is missing.

    The file is created (with a `# Benchmark results` title) when it does not exist. Text before the BEGIN marker
    and after the END marker's line is left untouched. A BEGIN marker without its END raises `ValueError` (rather
    than guessing where the section stops).
    """
    path = Path(path)
    begin, end = section_markers(name)
    body = markdown.strip("\n").rstrip()
    block = f"{begin}\n{body}\n{end}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(path.name + ".lock"))):
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if not text.strip():
            text = HEADER
        start = text.find(begin)
        stop = text.find(end, start + len(begin)) if start >= 0 else -1
        if start >= 0 and stop < 0:
            raise ValueError(f"{path}: {begin!r} has no {end!r} after it; fix the file by hand")
        if start >= 0:
            after = stop + len(end)
            if text.startswith("\n", after):  # the END line's own newline is part of the block
                after += 1
            text = text[:start] + block + text[after:]
        else:
            text = text.rstrip("\n") + "\n\n" + block
        write_text_atomic(path, text)  # a replaced file keeps its permissions


__all__ = ["RESULTS_FILE", "section_markers", "update_results_section"]
