"""`lorat-eval`: one-pass evaluation on local benchmark folders.

    lorat-eval score --dataset lasot --dataset-root /data/LaSOT --results runs/lorat/results --protocol ostrack \\
        --output report.json
    lorat-eval run --model LitingLin/lorat-b224 --dataset got10k --dataset-root /data/GOT-10k --split test \\
        --output runs/got10k-test --batch-size 16
    accelerate launch -m lorat_hf.commands.evaluate run ...    # sequences split across processes / GPUs

`score` reads the ground truth through `lorat_hf.data` and the result files in any layout `results_io` knows (folder or
zip; pytracking ``<seq>.txt``, GOT-10k ``<seq>/<seq>_001.txt``, TrackingNet substring matching) and scores them
exactly like the chosen toolkit. Exit status: 0 on success, 1 when the evaluation stops (the message names the
sequence, the frame and the problem), 2 for bad command-line arguments, 130 when stopped by Ctrl-C (`run` keeps every
finished sequence; the same command resumes).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from ..evaluation.protocols import PROTOCOLS, PYTRACKING_MODES, EvaluationError
from ..evaluation.results_io import RESULT_LAYOUTS, ResultFileError

logger = logging.getLogger("lorat_hf.commands.evaluate")

DATASETS = ("lasot", "lasot_ext", "got10k", "trackingnet", "tnl2k", "generic")
_PROTOCOL_HELP = (
    "pytracking (visionml/pytracking analysis), ostrack (the same with STARK's w>0 & h>0 validity; the default for "
    "LaSOT/LaSOT_ext/TNL2K/generic), lasot-toolkit (official LaSOT/TNL2K MATLAB toolkit), got10k (GOT-10k toolkit, "
    "default for got10k), trackingnet (TrackingNet devkit, default for trackingnet)"
)


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="benchmark reader to use")
    parser.add_argument("--dataset-root", required=True, type=Path, help="benchmark folder in its original layout")
    parser.add_argument("--split", default=None, help="train, val or test (default: the benchmark's evaluation split)")
    parser.add_argument("--protocol", default=None, choices=PROTOCOLS, help=_PROTOCOL_HELP)
    parser.add_argument(
        "--mode",
        default=None,
        choices=(*PYTRACKING_MODES, "lasot_ext"),
        help="pytracking/ostrack dataset mode (default: from --dataset; e.g. 'uav' for UAV123 in the generic layout)",
    )
    parser.add_argument("--cache-dir", default=None, type=Path, help="where parsed annotations are cached")
    parser.add_argument(
        "--compare", nargs="+", default=[], metavar="RESULTS", help="other trackers' result folders/zips to overlay"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lorat-eval", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score existing result files against a benchmark")
    _add_dataset_arguments(score)
    score.add_argument("--results", required=True, type=Path, help="results folder or zip (or <results>_NNN runs)")
    score.add_argument("--runs", type=int, default=None, help="number of runs to read (default: all found)")
    score.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out sequences without results the toolkit's way (pytracking: skip_missing_seq; lasot-toolkit: "
        "like an empty file; got10k: excluded; trackingnet always scores missing files as zeros)",
    )
    score.add_argument("--layout", default="auto", choices=RESULT_LAYOUTS, help="result layout (default: detect)")
    score.add_argument("--output", required=True, type=Path, help="report JSON to write")
    score.add_argument("--overwrite", action="store_true", help="replace an existing report file")
    score.add_argument("--plots-dir", type=Path, default=None, help="also write success/precision PNG plots here")

    run = commands.add_parser("run", help="track a benchmark with a model, write results, score them")
    run.add_argument("--model", required=True, help="adapter folder / Hub repo id or merged model folder")
    _add_dataset_arguments(run)
    run.add_argument("--output", required=True, type=Path, help="output folder (resumed when it exists)")
    run.add_argument("--runs", type=int, default=1, help="times every sequence is tracked (default 1)")
    run.add_argument("--batch-size", type=int, default=8, help="targets from different videos per forward")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: the process' device)")
    run.add_argument(
        "--dtype", default=None, help="float32 (default), bfloat16 (weights converted once) or float16 (autocast)"
    )
    run.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "onnxruntime-int8"),
        default="torch",
        help="torch, or the model.onnx / model_int8.onnx of a lorat-export folder given as --model",
    )
    run.add_argument(
        "--no-rasterize",
        dest="rasterize",
        action="store_false",
        help="write float boxes into GOT-10k/TrackingNet files instead of LoRAT's rasterised integer boxes",
    )
    run.add_argument("--num-workers", type=int, default=4, help="threads decoding frames (default 4)")
    return parser


def _score(args: argparse.Namespace) -> int:
    from ..evaluation.plots import save_plots
    from ..evaluation.report import format_table, write_report
    from ..evaluation.runner import compare_label, load_ground_truth, score_results

    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} already exists; pass --overwrite to replace it.")
    if args.runs is not None and args.runs < 1:
        raise ValueError(f"--runs must be at least 1, got {args.runs}.")
    sequences = load_ground_truth(args.dataset, args.dataset_root, split=args.split, cache_dir=args.cache_dir)
    options = dict(dataset=args.dataset, protocol=args.protocol, mode=args.mode, split=args.split)
    report = score_results(
        args.results, sequences, runs=args.runs, skip_missing=args.skip_missing, layout=args.layout, **options
    )
    write_report(args.output, report)
    reports = {compare_label(args.results): report}
    for other in args.compare:
        reports[compare_label(other, reports)] = score_results(
            other, sequences, skip_missing=args.skip_missing, **options
        )
    print(format_table(reports))
    if report["skipped_sequences"]:
        print(
            f"skipped {len(report['skipped_sequences'])} sequences without results: {report['skipped_sequences'][:5]}"
        )
    if args.plots_dir is not None:
        for path in save_plots(reports, args.plots_dir):
            print(f"plot: {path}")
    print(f"report: {args.output}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ..evaluation.runner import run_evaluation

    run_evaluation(
        args.model,
        args.dataset,
        args.dataset_root,
        args.output,
        split=args.split,
        runs=args.runs,
        batch_size=args.batch_size,
        protocol=args.protocol,
        mode=args.mode,
        compare=args.compare,
        device=args.device,
        dtype=args.dtype,
        backend=args.backend,
        rasterize=args.rasterize,
        cache_dir=args.cache_dir,
        num_workers=args.num_workers,
    )
    return 0


def _interrupted(args: argparse.Namespace, argv: list[str], error: KeyboardInterrupt) -> int:
    """Ctrl-C: say what was kept and the command that resumes; exit status 130 like a shell."""
    from ..evaluation.runner import EvaluationInterrupted

    if args.command != "run":
        print("lorat-eval: interrupted; no report was written.", file=sys.stderr)
        return 130
    if isinstance(error, EvaluationInterrupted):
        kept = (
            f"{error.finished} of {error.total} (sequence, run) pairs are finished and kept in {error.output_dir}; "
            f"sequences being tracked are tracked again from their first frame."
        )
    else:
        kept = f"every finished sequence in {args.output} is kept."
    print(
        f"lorat-eval: interrupted; {kept} To resume, run the same command again:\n  {shlex.join(['lorat-eval', *argv])}",
        file=sys.stderr,
    )
    return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of `lorat-eval`; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return _score(args) if args.command == "score" else _run(args)
    except KeyboardInterrupt as error:
        return _interrupted(args, argv, error)
    except (EvaluationError, ResultFileError, OSError, ValueError, ImportError) as error:
        logger.debug("evaluation failed", exc_info=True)
        print(f"lorat-eval: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
