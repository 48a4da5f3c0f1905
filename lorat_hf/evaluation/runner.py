"""One-pass evaluation: score result folders against a benchmark, or run a tracker on a benchmark first.

`score_results` reads the ground truth through `lorat_hf.data.load_sequences` (one parser per benchmark), the result
files through `lorat_hf.evaluation.results_io` and scores them with one of `PROTOCOLS`.

`run_evaluation` tracks every (sequence, run) pair with the batched engine (`lorat_hf.engine.track_videos`): up to `batch_size`
targets from different videos advance together, one forward per step. Each finished pair is written atomically
(``<output>/results/<seq>.txt`` + ``<seq>_time.txt``; ``results_<NNN>/`` for repeated runs), so an interrupted run
resumes where it stopped. Under `accelerate launch` the pairs are split across processes (balanced by frame count)
and the main process alone merges them: the GOT-10k toolkit folder, the server zips of test splits, the report JSON,
the printed table and the success / precision plots (with `--compare` trackers overlaid).
"""

from __future__ import annotations

import ast
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..boxes import xyxy_to_xywh
from .plots import save_plots
from .protocols import PROTOCOLS, EvaluationError, SequenceData, default_protocol, evaluate_sequences
from .report import build_report, format_table, write_report
from .results_io import (
    ResultFileError,
    SequenceResults,
    load_results,
    parse_boxes,
    parse_times,
    write_got10k_result,
    write_got10k_submission,
    write_pytracking_result,
    write_text_atomic,
    write_trackingnet_submission,
)

logger = logging.getLogger(__name__)

RUN_CONFIG_FILE = "run_config.json"
REPORT_FILE = "report.json"
# the settings that must match for an output folder to be resumed
_RESUME_KEYS = ("model", "dataset", "dataset_root", "split", "runs", "rasterize")


# ----------------------------------------------------------------------------------------------------------------------
# ground truth -> protocol inputs


def _per_frame(extra: dict[str, Any], key: str, num_frames: int) -> np.ndarray | None:
    values = extra.get(key)
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return values if len(values) == num_frames else None


def _image_bound(sequence) -> tuple[float, float]:
    """GOT-10k's `meta_info.ini` ``resolution`` (what the toolkit clips to), else the frame size."""
    resolution = (sequence.extra.get("meta_info") or {}).get("resolution")
    if resolution:
        try:
            width, height = ast.literal_eval(resolution)
            return float(width), float(height)
        except (ValueError, SyntaxError, TypeError):
            logger.warning("%s: cannot read meta_info resolution %r; using the frame size.", sequence.name, resolution)
    return float(sequence.image_width), float(sequence.image_height)


def sequence_data(sequence, results: SequenceResults | None = None) -> SequenceData:
    """Protocol inputs for one `lorat_hf.data.TrackingSequence` (and its result files).

    * ``visible``: LaSOT-style ``!full_occlusion & !out_of_view`` flags when the benchmark ships them (exactly what
      pytracking passes), else the reader's ``visible`` column;
    * ``absent`` (MATLAB toolkit): ``extra["absent"]`` when present, else the LaSOT flags' complement, GOT-10k's
      ``absence.label``, TNL2K's ``0,0,0,0`` rows (how its official absent flags mark frames) or, for the generic
      layout with ``absent.txt`` / ``visible.txt``, the reader's ``visible`` complement;
    * ``cover`` and ``image_size``: GOT-10k ``cover.label`` and ``meta_info`` resolution.
    """
    gt = np.asarray(sequence.groundtruth_xywh, dtype=np.float64).reshape(-1, 4)
    n = len(gt)
    extra = sequence.extra or {}
    occlusion, out_of_view = _per_frame(extra, "full_occlusion", n), _per_frame(extra, "out_of_view", n)
    if occlusion is not None and out_of_view is not None:
        visible = (occlusion == 0) & (out_of_view == 0)
    else:
        visible = np.asarray(sequence.visible, dtype=bool)
    if _per_frame(extra, "absent", n) is not None:
        absent = _per_frame(extra, "absent", n) == 1
    elif occlusion is not None and out_of_view is not None:
        absent = ~visible
    elif _per_frame(extra, "absence", n) is not None:
        absent = _per_frame(extra, "absence", n) == 1
    elif sequence.dataset == "tnl2k":
        absent = (gt == 0).all(axis=1)
    elif extra.get("visibility_file"):  # generic layout with absent.txt / visible.txt
        absent = ~np.asarray(sequence.visible, dtype=bool)
    else:
        absent = None
    results = results or SequenceResults()
    return SequenceData(
        name=sequence.name,
        groundtruth=gt,
        predictions=list(results.predictions),
        visible=visible,
        absent=absent,
        cover=_per_frame(extra, "cover", n),
        image_size=_image_bound(sequence),
        times=results.times,
        result_paths=list(results.paths),
    )


def load_ground_truth(
    dataset: str, dataset_root: str | os.PathLike, split: str | None = None, cache_dir: str | os.PathLike | None = None
) -> list:
    """The benchmark's sequences (`TrackingSequence` list) through the shared dataset readers."""
    from ..data import iter_sequences, load_sequences

    return list(iter_sequences(load_sequences(dataset, dataset_root, split=split, cache_dir=cache_dir)))


def has_annotations(sequences: Sequence) -> bool:
    """False when no sequence has a ground-truth box after its first frame (test splits with withheld annotations)."""
    for sequence in sequences:
        gt = np.asarray(sequence.groundtruth_xywh, dtype=np.float64).reshape(-1, 4)
        if len(gt) > 1 and not np.isnan(gt[1:]).all():
            return True
    return False


def score_results(
    results: str | os.PathLike,
    sequences: Sequence,
    *,
    dataset: str,
    protocol: str | None = None,
    runs: int | None = None,
    skip_missing: bool = False,
    mode: str | None = None,
    layout: str = "auto",
    split: str | None = None,
) -> dict[str, Any]:
    """Score a results folder / zip against loaded ground truth and return the report dictionary.

    Raises:
        EvaluationError: where the protocol's toolkit stops (the message names sequence, frame and problem), and when
            the split has no annotations beyond the first frame (submit the server zip instead).
    """
    protocol = protocol or default_protocol(dataset)
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    if not has_annotations(sequences):
        raise EvaluationError(
            f"The {dataset} {split or 'default'} split has no ground truth after the first frame (annotations are "
            f"withheld): upload the submission zip to the benchmark's server instead (lorat-eval run writes it)."
        )
    loaded, used_layout = load_results(
        results, [s.name for s in sequences], layout=layout, runs=runs, protocol=protocol
    )
    data = (sequence_data(s, loaded[s.name]) for s in sequences)
    result = evaluate_sequences(protocol, data, dataset=dataset, mode=mode, skip_missing=skip_missing)
    return build_report(result, split=split, results=os.fspath(results), layout=used_layout)


def compare_label(path: str | os.PathLike, taken: Iterable[str] = ()) -> str:
    """A short legend label for a results path: its name, or ``parent/name`` for generic names or clashes."""
    path = Path(path)
    label = path.stem if path.suffix == ".zip" else path.name
    if label in ("results", "results_001") or label in set(taken):
        label = f"{path.parent.name}/{label}"
    return label


# ----------------------------------------------------------------------------------------------------------------------
# running a tracker


@dataclass
class _Job:
    sequence: Any  # TrackingSequence
    run: int  # 0-based
    folder: Path

    @property
    def key(self) -> str:
        return f"{self.sequence.name}#{self.run}"

    @property
    def done_path(self) -> Path:
        return self.folder / f"{self.sequence.name}.txt"


class EvaluationInterrupted(KeyboardInterrupt):
    """`run_evaluation` stopped by Ctrl-C (SIGINT, still a `KeyboardInterrupt`): ``finished`` of ``total`` (sequence, run) pairs have result files.

    Every result file is written whole (atomically), so the finished pairs are kept and a rerun with the same settings
    tracks only the others; the pairs that were being tracked are tracked again from their first frame.
    """

    def __init__(self, output_dir: Path, finished: int, total: int):
        super().__init__(f"interrupted with {finished} of {total} (sequence, run) pairs finished in {output_dir}")
        self.output_dir, self.finished, self.total = output_dir, finished, total


def run_folders(output_dir: str | os.PathLike, runs: int) -> list[Path]:
    """Where run ``r`` writes its pytracking-style files: ``results/`` for one run, ``results_001/``... otherwise."""
    output_dir = Path(output_dir)
    return [output_dir / "results"] if runs == 1 else [output_dir / f"results_{r:03d}" for r in range(1, runs + 1)]


def _check_run_config(output_dir: Path, config: dict[str, Any], is_main: bool) -> None:
    """Record the run settings, or refuse to resume an output folder made with different ones."""
    path = output_dir / RUN_CONFIG_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        changed = [k for k in _RESUME_KEYS if previous.get(k) != config.get(k)]
        if changed:
            details = "; ".join(f"{k}: {previous.get(k)!r} -> {config.get(k)!r}" for k in changed)
            raise ValueError(
                f"{output_dir} holds results of another evaluation ({details}); choose a new --output folder to "
                f"start over, or repeat the original settings to resume."
            )
    elif is_main:
        write_text_atomic(path, json.dumps(config, indent=2) + "\n")


def _is_finished(job: _Job) -> bool:
    """Whether the pair has its result file; one that is not a box per frame stops the run, naming the file."""
    path = job.done_path
    if not path.is_file():
        return False
    try:
        problem = None
        num_boxes = len(parse_boxes(path.read_text(), str(path)))
        if num_boxes != len(job.sequence.frame_paths):
            problem = f"{num_boxes} boxes for {len(job.sequence.frame_paths)} frames"
    except (ResultFileError, UnicodeDecodeError) as error:
        problem = str(error).removeprefix(f"{path}: ").rstrip(".")
    if problem is not None:
        raise EvaluationError(
            f"The result file {path} is damaged ({problem}). Delete it and run the same command again: that sequence "
            f"is tracked again, the others are kept."
        )
    return True


def _assign(jobs: list[_Job], num_processes: int, process_index: int) -> list[_Job]:
    """Deterministic split balanced by frame count: longest pair first, to the least loaded process."""
    loads = [0] * num_processes
    mine = []
    for job in sorted(jobs, key=lambda j: (-len(j.sequence.frame_paths), j.sequence.name, j.run)):
        target = loads.index(min(loads))
        loads[target] += len(job.sequence.frame_paths)
        if target == process_index:
            mine.append(job)
    return mine


def _init_box(sequence) -> np.ndarray:
    box = np.asarray(sequence.boxes_xyxy[0], dtype=np.float64)
    if not np.isfinite(box).all():
        raise EvaluationError(
            f"{sequence.name}: frame 0 has no box with a positive area inside the image "
            f"(annotation {np.asarray(sequence.groundtruth_xywh[0]).tolist()}); a tracker cannot be initialised."
        )
    return box


def _write_job(job: _Job, tracked) -> None:
    """The pair's result in the benchmark's own convention: frame 0 = the given GT line, then the tracker's boxes."""
    sequence = job.sequence
    boxes = xyxy_to_xywh(tracked.boxes_xyxy)
    boxes[:, :2] += sequence.coordinate_offset
    boxes[0] = np.asarray(sequence.groundtruth_xywh[0], dtype=np.float64)
    write_pytracking_result(job.folder, sequence.name, boxes, tracked.seconds)


def _frame_reader(sequence):
    """``sequence.frame`` with a missing or undecodable frame turned into an `EvaluationError` saying what to do."""

    def read(index: int) -> np.ndarray:
        try:
            return sequence.frame(index)
        except (OSError, ValueError) as error:
            raise EvaluationError(
                f"{sequence.name}: frame {index} cannot be read ({error}). Restore the file (e.g. extract it again "
                f"from the benchmark archive) and run the same command again; finished sequences are kept."
            ) from error

    return read


def _track_jobs(tracker, jobs: list[_Job], batch_size: int, num_workers: int, progress) -> None:
    """Track the pairs with the engine, ``batch_size`` at a time, writing each one as soon as it is finished."""
    from ..engine import VideoJob, track_videos

    by_key = {job.key: job for job in jobs}
    videos = [
        VideoJob(job.key, len(job.sequence.frame_paths), _frame_reader(job.sequence), _init_box(job.sequence))
        for job in jobs
    ]
    for tracked in track_videos(
        tracker.backend, tracker.image_processor, videos, batch_size, num_workers, on_frames=progress.update
    ):
        _write_job(by_key[tracked.key], tracked)


def _export_got10k(output_dir: Path, sequences: Sequence, runs: int, rasterize: bool, write_zip: bool) -> Path:
    """The GOT-10k toolkit folder ``<output>/got10k/<seq>/<seq>_NNN.txt`` (+ times) and, for test, the server zip."""
    folders = run_folders(output_dir, runs)
    native = output_dir / "got10k"
    packed = {}
    for sequence in sequences:
        predictions, times = [], []
        for folder in folders:
            box_file = folder / f"{sequence.name}.txt"
            predictions.append(parse_boxes(box_file.read_text(), str(box_file)))
            time_file = folder / f"{sequence.name}_time.txt"
            times.append(parse_times(time_file.read_text(), str(time_file)) if time_file.is_file() else None)
        time_columns = None if any(t is None for t in times) else np.stack(times, axis=1)
        if time_columns is not None and time_columns.shape[1] == 1:
            time_columns = time_columns[:, 0]
        write_got10k_result(native, sequence.name, predictions, time_columns, rasterize=rasterize)
        packed[sequence.name] = (predictions, time_columns)
    if write_zip:
        path = write_got10k_submission(
            output_dir / "got10k_submission.zip", packed, rasterize=rasterize, overwrite=True
        )
        logger.info("GOT-10k server zip: %s", path)
    return native


def _export_trackingnet(output_dir: Path, sequences: Sequence, runs: int, rasterize: bool) -> list[Path]:
    """TrackingNet server zips: ``trackingnet_submission.zip``, or one ``trackingnet_submission_NNN.zip`` per run."""
    written = []
    for run, folder in enumerate(run_folders(output_dir, runs), start=1):
        boxes = {s.name: parse_boxes((folder / f"{s.name}.txt").read_text(), str(folder)) for s in sequences}
        suffix = "" if runs == 1 else f"_{run:03d}"
        path = output_dir / f"trackingnet_submission{suffix}.zip"
        written.append(write_trackingnet_submission(path, boxes, rasterize=rasterize, overwrite=True))
        logger.info("TrackingNet server zip: %s", path)
    return written


def run_evaluation(
    model: str | os.PathLike,
    dataset: str,
    dataset_root: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    split: str | None = None,
    runs: int = 1,
    batch_size: int = 8,
    protocol: str | None = None,
    mode: str | None = None,
    compare: Sequence[str | os.PathLike] = (),
    device: str | None = None,
    dtype: str | None = None,
    backend: str = "torch",
    rasterize: bool = True,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int = 4,
    progress: bool | None = None,
) -> dict[str, Any] | None:
    """Track a benchmark, write the native result files, and score them (one-pass evaluation).

    Args:
        model: an adapter folder / Hub repo or a merged model folder (`lorat_hf.tracking.LoraTracker.from_pretrained`).
        dataset: ``lasot``, ``lasot_ext``, ``got10k``, ``trackingnet``, ``tnl2k`` or ``generic``.
        dataset_root: the benchmark folder in its original layout; ``split``: its split (reader default if None).
        output_dir: results, exports, report and plots; an existing folder from the same settings is resumed.
        runs: how many times every sequence is tracked (``results_001/``...; scores averaged as each toolkit does).
        batch_size: targets (from different videos) advanced together in one forward.
        protocol: scoring protocol (default: `default_protocol(dataset)`); ``mode``: pytracking dataset mode.
        compare: other trackers' result folders/zips, scored alike and overlaid in the table and plots.
        device / dtype: where and in which compute dtype to run (default: the accelerate process' device, fp32).
        backend: `"torch"`, or `"onnxruntime"` / `"onnxruntime-int8"` with `model` a `lorat-export` folder.
        rasterize: write LoRAT's integer boxes into the GOT-10k folder and the server zips (False: float boxes).
        num_workers: threads decoding frames.
        progress: show a tqdm bar (default: on the main process).

    Returns:
        The report dictionary on the main process when the split has annotations, else None.
    """
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env
    from tqdm.auto import tqdm

    from ..tracking import LoraTracker

    if runs < 1:
        raise ValueError(f"--runs must be at least 1, got {runs}.")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}.")
    protocol = protocol or default_protocol(dataset)
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    # like `Accelerator`: ACCELERATE_USE_CPU (or --device cpu) makes a multi-process launch MULTI_CPU over gloo
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or str(device) == "cpu")
    output_dir = Path(output_dir)
    config = {
        "model": os.fspath(model),
        "dataset": dataset,
        "dataset_root": os.fspath(Path(dataset_root).expanduser().resolve()),
        "split": split,
        "runs": runs,
        "rasterize": rasterize,
        "protocol": protocol,
        "batch_size": batch_size,
        "num_processes": state.num_processes,
    }
    with state.main_process_first():  # the first process parses the benchmark into the shared cache
        sequences = load_ground_truth(dataset, dataset_root, split=split, cache_dir=cache_dir)
    if state.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    _check_run_config(output_dir, config, state.is_main_process)

    for sequence in sequences:  # every process fails alike here, rather than one of them mid-run
        _init_box(sequence)
    folders = run_folders(output_dir, runs)
    jobs = [_Job(s, r, folders[r]) for r in range(runs) for s in sequences]
    pending = [job for job in jobs if not _is_finished(job)]
    state.wait_for_everyone()  # every process has listed the pending pairs before anyone writes
    mine = _assign(pending, state.num_processes, state.process_index)
    logger.info(
        "%d of %d (sequence, run) pairs to track; process %d takes %d",
        len(pending), len(jobs), state.process_index, len(mine),
    )  # fmt: skip
    if mine:
        tracker = LoraTracker.from_pretrained(model, device=device or state.device, dtype=dtype, backend=backend)
        show = state.is_main_process if progress is None else progress and state.is_main_process
        total = sum(len(job.sequence.frame_paths) for job in mine)
        try:
            with tqdm(total=total, desc=f"Tracking {dataset}", unit="frame", disable=not show) as bar:
                _track_jobs(tracker, mine, batch_size, num_workers, bar)
        except KeyboardInterrupt:
            finished = sum(job.done_path.is_file() for job in jobs)
            raise EvaluationInterrupted(output_dir, finished, len(jobs)) from None
    state.wait_for_everyone()
    if not state.is_main_process:
        return None

    missing = [job.key for job in jobs if not job.done_path.is_file()]
    if missing:
        raise RuntimeError(f"{len(missing)} (sequence, run) pairs have no result file (e.g. {missing[:3]}); rerun.")
    is_test = not has_annotations(sequences)
    results_path = output_dir / "results"  # for several runs: read as its numbered siblings results_001, ...
    if dataset == "got10k":
        results_path = _export_got10k(output_dir, sequences, runs, rasterize, write_zip=is_test)
    elif dataset == "trackingnet" and is_test:
        _export_trackingnet(output_dir, sequences, runs, rasterize)
    if is_test:
        logger.info("The %s %s split has no annotations to score; submit the zip in %s.", dataset, split, output_dir)
        print(f"{dataset} {split or ''}: annotations withheld; submission files are in {output_dir}")
        return None

    report = score_results(
        results_path, sequences, dataset=dataset, protocol=protocol, mode=mode, split=split, runs=runs
    )
    report["model"] = os.fspath(model)
    write_report(output_dir / REPORT_FILE, report)
    reports = {compare_label(model): report}
    for other in compare:
        other_report = score_results(
            other, sequences, dataset=dataset, protocol=protocol, mode=mode, split=split, skip_missing=True
        )
        if other_report["skipped_sequences"]:
            logger.warning(
                "%s lacks %d sequences (skipped as %s does): its numbers are not comparable.",
                other, len(other_report["skipped_sequences"]), protocol,
            )  # fmt: skip
        reports[compare_label(other, reports)] = other_report
    print(format_table(reports))
    save_plots(reports, output_dir)
    logger.info("Report: %s", output_dir / REPORT_FILE)
    return report
