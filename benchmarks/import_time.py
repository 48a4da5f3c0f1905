"""Import time of the package: `python -X importtime -c "import lorat_hf"`, this tree against a git revision.

    python benchmarks/import_time.py                      # this working tree vs main, 3 runs each, interleaved
    python benchmarks/import_time.py --baseline 16b0c6e --runs 5

The baseline's `lorat_hf/` is exported with `git archive` into a temporary folder and imported from there (the
working tree's editable install comes after `PYTHONPATH` on the import path). Each run is a fresh interpreter; the
candidates alternate run by run, so a change in the machine's load hits both alike. The figure is the cumulative
`lorat_hf` time that `-X importtime` reports; the heavy libraries column lists which of OpenCV, peft, accelerate,
datasets the import loaded (accelerate comes with transformers' own modeling code whenever it is installed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference import environment_line, load_average  # noqa: E402
from results_md import RESULTS_FILE, update_results_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HEAVY_LIBRARIES = ("cv2", "peft", "accelerate", "datasets")


def export_package(revision: str, destination: Path) -> None:
    """Write `lorat_hf/` as it is at `revision` into `destination`."""
    archive = destination / "lorat_hf.tar"
    with open(archive, "wb") as handle:
        subprocess.run(["git", "archive", revision, "lorat_hf"], cwd=REPO, stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="data")
    archive.unlink()


def time_import(source_root: Path) -> tuple[int, list[str]]:
    """Cumulative microseconds of `import lorat_hf` from `source_root`, and the heavy libraries it imported."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import lorat_hf"],
        cwd=source_root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cumulative, loaded = None, set()
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, total, name = (part.strip() for part in line.split("|"))
        if name == "lorat_hf":
            cumulative = int(total)
        if name in HEAVY_LIBRARIES:
            loaded.add(name)
    if cumulative is None:
        raise RuntimeError(f"no lorat_hf line in the importtime output:\n{result.stderr[-2000:]}")
    return cumulative, [name for name in HEAVY_LIBRARIES if name in loaded]


def to_markdown(baseline: str, runs: dict[str, list[int]], heavy: dict[str, list[str]], conditions: str) -> str:
    lines = [
        '## Import time (`python -X importtime -c "import lorat_hf"`)',
        "",
        f"2-core CPU, shared. {conditions}. Cumulative `lorat_hf` time, median of {len(runs[baseline])} fresh "
        "interpreters each, the two candidates alternating (`python benchmarks/import_time.py`). Runs (µs): "
        + "; ".join(f"{name} {' / '.join(map(str, values))}" for name, values in runs.items())
        + ".",
        "",
        "| package | median import time | ratio | heavy libraries imported |",
        "|---|---|---|---|",
    ]
    reference = statistics.median(runs[baseline])
    for name, values in runs.items():
        median = statistics.median(values)
        label = f"main at {baseline}" if name == baseline else name
        lines.append(
            f"| {label} | {median / 1e6:.2f} s | {median / reference:.2f}x | {', '.join(heavy[name]) or 'none'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--label", default="this tree", help="the name of the working tree's row in the table")
    parser.add_argument("--runs", type=int, default=3, help="fresh interpreters per candidate (default: 3)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/RESULTS.md as is")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    baseline = subprocess.run(
        ["git", "rev-parse", "--short", args.baseline], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="lorat_import_time_") as folder:
        export_package(baseline, Path(folder))
        candidates = {baseline: Path(folder), args.label: REPO}
        runs: dict[str, list[int]] = {name: [] for name in candidates}
        heavy: dict[str, list[str]] = {}
        for run in range(args.runs):
            for name, root in candidates.items():
                micros, heavy[name] = time_import(root)
                runs[name].append(micros)
                print(f"run {run + 1} {name}: {micros / 1e6:.2f} s, imported {heavy[name]}", flush=True)
    conditions = f"{environment_line()} (1-min load average {load_before} before, {load_average()} after)"
    markdown = to_markdown(baseline, runs, heavy, conditions)
    print(markdown)
    if not args.no_write:
        update_results_section("import_time", markdown, RESULTS_FILE)
        print(f"updated {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
