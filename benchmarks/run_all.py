"""Run every benchmark script, one after the other, and report which succeeded (`make benchmarks`).

    python benchmarks/run_all.py                      # full runs; each updates its section of benchmarks/RESULTS.md
    python benchmarks/run_all.py --quick              # smoke run: small sizes, RESULTS.md untouched
    python benchmarks/run_all.py --only inference efficiency --no-write

Each script runs in its own subprocess with this interpreter, in the fixed order of `BENCHMARKS` (cheap ones first),
its output streamed as it comes. A failing script does not stop the others; the summary at the end lists every
script with its status and wall time, and the exit status is 1 when any failed.

`--quick` passes each script's own `--quick` flag, or for the scripts without one the small sizes of
`QUICK_ARGUMENTS`, and also `--no-write`: quick figures never replace the full ones in RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Fixed order: quick, independent measurements first, the long ones (B-224 training steps, OpenCV comparison) last.
BENCHMARKS = (
    "import_time",
    "sequences_and_synthetic",
    "data_pipeline",
    "evaluation",
    "inference",
    "efficiency",
    "loratv2_efficiency",
    "backends",
    "loratv2_backends",
    "train_step",
    "compare_opencv",
)
# The arguments of a quick run: the script's `--quick` where it has one, otherwise small sizes.
QUICK_ARGUMENTS = {
    "import_time": ["--runs", "1"],
    "sequences_and_synthetic": (
        "--lasot-sequences 28 --lasot-frames 500 --got10k-sequences 18 --got10k-frames 60 --hd-frames 5".split()
    ),
    "data_pipeline": [
        "--data-dir",
        str(Path.home() / ".cache" / "lorat_hf" / "bench_pairs_quick"),  # not the full run's cached videos
        *"--num-sequences 2 --num-frames 20 --samples 64 --workers 1 --parity-crops 20 --repeats 1".split(),
    ],
    "evaluation": ["--quick"],
    "inference": ["--quick"],
    "efficiency": ["--quick"],
    "loratv2_efficiency": ["--quick", "--threads", "1"],
    "backends": ["--quick", "--skip-accuracy"],
    "loratv2_backends": ["--quick", "--no-int8"],
    "train_step": ["--quick"],
    "compare_opencv": ["--quick"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes / each script's --quick; implies --no-write")
    parser.add_argument("--no-write", action="store_true", help="pass --no-write: leave benchmarks/RESULTS.md as is")
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, metavar="NAME", help=f"run only these ({', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--stop-on-failure", action="store_true", help="skip the remaining scripts after a failure")
    return parser.parse_args(argv)


def command_for(name: str, quick: bool, no_write: bool) -> list[str]:
    command = [sys.executable, str(HERE / f"{name}.py")]
    if quick:
        command += QUICK_ARGUMENTS[name]
    if quick or no_write:
        command.append("--no-write")
    return command


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = [name for name in BENCHMARKS if args.only is None or name in args.only]
    results: list[tuple[str, str, float]] = []
    for index, name in enumerate(selected):
        command = command_for(name, args.quick, args.no_write)
        shown = " ".join(["python", f"benchmarks/{name}.py", *command[2:]])
        print(f"\n=== [{index + 1}/{len(selected)}] {name}: {shown}", flush=True)
        start = time.perf_counter()
        try:
            returncode = subprocess.run(command, cwd=REPO, check=False).returncode
        except KeyboardInterrupt:
            results.append((name, "interrupted", time.perf_counter() - start))
            break
        seconds = time.perf_counter() - start
        status = "ok" if returncode == 0 else f"FAILED (exit status {returncode})"
        results.append((name, status, seconds))
        print(f"=== {name}: {status} in {seconds:.1f} s", flush=True)
        if returncode != 0 and args.stop_on_failure:
            break

    done = {name for name, _, _ in results}
    width = max(map(len, selected), default=0)
    print("\nBenchmark summary" + (" (quick, RESULTS.md not written)" if args.quick else "") + ":")
    for name, status, seconds in results:
        print(f"  {name:{width}s}  {status:30s}  {seconds:8.1f} s")
    for name in selected:
        if name not in done:
            print(f"  {name:{width}s}  skipped")
    failed = [name for name, status, _ in results if status != "ok"] + [n for n in selected if n not in done]
    if failed:
        print(f"{len(failed)} of {len(selected)} benchmark(s) failed or did not run: {', '.join(failed)}")
        return 1
    print(f"All {len(selected)} benchmark(s) succeeded.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
