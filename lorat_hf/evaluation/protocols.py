"""One-pass evaluation (OPE) metrics that reproduce five reference toolkits, edge cases included.

| protocol        | reference                                                                  |
|-----------------|----------------------------------------------------------------------------|
| `pytracking`    | visionml/pytracking `analysis/extract_results.py` + `plot_results.py`      |
| `ostrack`       | the same code with STARK's validity rule (`w > 0 & h > 0`), used by OSTrack, SeqTrack, ODTrack, LoRAT |
| `lasot-toolkit` | the official LaSOT / TNL2K MATLAB toolkit (`calc_seq_err_robust.m`, `eval_tracker.m`, `plot_draw_save.m`) |
| `got10k`        | the GOT-10k toolkit (`got10k==0.1.3`, `ExperimentGOT10k.report`)           |
| `trackingnet`   | the TrackingNet devkit (`metrics.py::evaluate`)                            |

Every per-sequence function is pure numpy on arrays: predictions and ground truth are `(N, 4)` `x, y, w, h` boxes in
the convention of the ground-truth files (no 0/1-based shifting happens here: the validity rules depend on it). Where
a toolkit stops with an error, these functions raise `EvaluationError` naming the sequence, the frame and the problem.
`evaluate_sequences` aggregates a whole dataset the way each toolkit does and returns an `EvaluationResult`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

PROTOCOLS = ("pytracking", "ostrack", "lasot-toolkit", "got10k", "trackingnet")
PYTRACKING_MODES = ("lasot", "lasot_extension_subset", "tnl2k", "uav", "default")
# pytracking's `seq.dataset` strings for our dataset names; anything else behaves like "default"
DATASET_TO_PYTRACKING_MODE = {
    "lasot": "lasot",
    "lasot_ext": "lasot_extension_subset",
    "lasot_extension_subset": "lasot_extension_subset",
    "tnl2k": "tnl2k",
    "uav": "uav",
    "uav123": "uav",
}
# datasets whose pytracking loader passes `target_visible` (full_occlusion / out_of_view flags)
_MODES_WITH_VISIBILITY = ("lasot", "lasot_extension_subset")

# pytracking: `torch.arange(0.0, 1.0 + 0.05, 0.05, dtype=torch.float64)`. Taken from torch itself because several
# values are 1 ulp above the nominal threshold (0.15000000000000002, 0.6500000000000001, 0.7500000000000001, ...) and
# differ from numpy's arange at indices 13 and 15.
PYTRACKING_OVERLAP_THRESHOLDS = torch.arange(0.0, 1.0 + 0.05, 0.05, dtype=torch.float64).numpy().copy()
PYTRACKING_CENTER_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
PYTRACKING_NORMALIZED_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
# curve indices of the printed numbers (thresholds 0.50 / 0.75 / 20 px / 0.20)
_INDEX_IOU_50, _INDEX_IOU_75, _INDEX_20 = 10, 15, 20


def matlab_colon(start: float, step: float, stop: float) -> np.ndarray:
    """Values of MATLAB's `start:step:stop` for a positive step (float64).

    MATLAB builds the range symmetrically: the first half as `start + k * step`, the second half as
    `stop' - k * step` counted from the end (`stop' = start + n * step`), and the exact midpoint `(start + stop') / 2`
    when the number of steps is even. So `0:0.05:1` has 0.75 exactly and 0.6499999999999999 at index 13.
    """
    count = int(math.floor((stop - start) / step + 1e-10))
    last = start + count * step
    values = np.empty(count + 1, dtype=np.float64)
    half = count // 2
    k = np.arange(half + 1, dtype=np.float64)
    values[: half + 1] = start + k * step
    values[count - np.arange(half + 1)] = last - k * step
    if count % 2 == 0:
        values[half] = (start + last) / 2.0
    return values


LASOT_TOOLKIT_OVERLAP_THRESHOLDS = matlab_colon(0.0, 0.05, 1.0)
LASOT_TOOLKIT_CENTER_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
LASOT_TOOLKIT_NORMALIZED_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
_MATLAB_EPS = float(np.finfo(np.float64).eps)

GOT10K_OVERLAP_THRESHOLDS = np.linspace(0, 1, 101)
_GOT10K_EPS = float(np.finfo(float).eps)

TRACKINGNET_OVERLAP_THRESHOLDS = np.linspace(0, 1, 21)
TRACKINGNET_CENTER_THRESHOLDS = np.linspace(0, 50, 21)
TRACKINGNET_NORMALIZED_THRESHOLDS = np.linspace(0, 0.5, 21)


class EvaluationError(ValueError):
    """An input on which the reference toolkit itself stops with an error (the message names sequence and frame)."""


# ----------------------------------------------------------------------------------------------------------------------
# inputs and outputs


@dataclass
class SequenceData:
    """What the protocols need about one sequence.

    Attributes:
        name: sequence name (used in messages and reports).
        groundtruth: `(N, 4)` `x, y, w, h` exactly as shipped (NaN where the file has no annotation).
        predictions: one `(M, 4)` array per run, `None` for a run whose result file is missing; an empty list means
            that no result was found at all.
        visible: `(N,)` bool, target visible (LaSOT: not fully occluded and not out of view).
        absent: `(N,)` bool absent flags for the LaSOT/TNL2K MATLAB toolkit (default: `~visible`).
        cover: `(N,)` GOT-10k `cover.label` values (0 = fully occluded ... 8 = fully visible).
        image_size: `(W, H)` in pixels, GOT-10k `meta_info.ini` `resolution` (the bound used to clip boxes).
        times: GOT-10k `<seq>_time.txt` contents in seconds, `(N,)` or `(N, runs)`; `None` when there is no time file.
        result_paths: where the predictions came from, one entry per run (for messages only).
    """

    name: str
    groundtruth: np.ndarray
    predictions: list[np.ndarray | None] = field(default_factory=list)
    visible: np.ndarray | None = None
    absent: np.ndarray | None = None
    cover: np.ndarray | None = None
    image_size: tuple[float, float] | None = None
    times: np.ndarray | None = None
    result_paths: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.groundtruth = _as_boxes(self.groundtruth, f"{self.name}: ground truth")
        self.predictions = [None if p is None else _as_boxes(p, f"{self.name}: prediction") for p in self.predictions]
        n = len(self.groundtruth)
        for label in ("visible", "cover"):
            value = getattr(self, label)
            if value is not None:
                value = np.asarray(value).reshape(-1)
                if len(value) != n:
                    raise ValueError(f"{self.name}: {label} has {len(value)} entries for {n} ground-truth frames.")
                setattr(self, label, value)
        if self.visible is not None:
            self.visible = self.visible.astype(bool)
        if self.absent is not None:
            self.absent = np.asarray(self.absent).reshape(-1).astype(bool)

    def describe_run(self, run: int) -> str:
        return self.result_paths[run] if run < len(self.result_paths) else f"run {run + 1}"


@dataclass
class EvaluationResult:
    """A dataset score in the toolkit's own terms.

    `metrics` are the printed numbers (percent, except GOT-10k's fractions), `per_sequence` maps each evaluated
    sequence to its own numbers, `curves` maps a plot name (`success`, `precision`, `normalized_precision`) to
    `{"thresholds": [...], "values": [...]}` (values on the metrics' scale) and `skipped` lists the sequences left out
    (missing results under `skip_missing`). `details` holds protocol-specific facts (mode, runs, sequences per plot).
    """

    protocol: str
    dataset: str
    num_sequences: int
    metrics: dict[str, float | None]
    per_sequence: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, list[float]]]
    skipped: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def _as_boxes(boxes: Any, what: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if array.ndim == 1 and array.shape[0] == 4:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{what} must have shape (N, 4) (x, y, w, h per frame), got {array.shape}.")
    return array


def _forward_fill(boxes: np.ndarray, replace: np.ndarray) -> np.ndarray:
    """Replace each flagged row by the last unflagged row before it (row 0 is never flagged)."""
    source = np.where(replace, 0, np.arange(len(boxes)))
    return boxes[np.maximum.accumulate(source)] if len(boxes) else boxes


def _torch_sqrt(values: np.ndarray) -> np.ndarray:
    """Square root as pytracking computes it: torch's CPU kernel (MKL VML on x86 builds) is not always correctly
    rounded (1 ulp off numpy), and a centre error sitting on a pixel threshold must land on the same side.

    Run single-threaded: the values are the same for any thread count, but waking MKL's thread pool costs ~20 ms per
    call on a busy machine, against microseconds for a few thousand values.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.from_numpy(np.ascontiguousarray(values)).sqrt().numpy()
    finally:
        torch.set_num_threads(threads)


def _fmt_box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box.tolist()) + "]"


# ----------------------------------------------------------------------------------------------------------------------
# pytracking / OSTrack


@dataclass
class FrameErrors:
    """Per-frame errors of one sequence: IoU, centre error (px), GT-size-normalised centre error, valid frames."""

    iou: np.ndarray
    center_error: np.ndarray
    normalized_center_error: np.ndarray
    valid: np.ndarray


@dataclass
class PytrackingCurves:
    """One sequence's pytracking curves (float32 fractions) and its mean IoU over valid frames."""

    success: np.ndarray  # (21,) rate of IoU > t
    precision: np.ndarray  # (51,) rate of centre error <= t px
    normalized_precision: np.ndarray  # (51,) rate of normalised centre error <= t
    average_overlap: float


def pytracking_frame_errors(
    predictions: np.ndarray,
    groundtruth: np.ndarray,
    *,
    mode: str = "default",
    visible: np.ndarray | None = None,
    validity: str = "pytracking",
    sequence: str = "sequence",
) -> FrameErrors:
    """pytracking's `calc_seq_err_robust`: repair, validity and the three per-frame errors.

    Args:
        predictions: `(M, 4)` predicted `x, y, w, h` as read from the result file.
        groundtruth: `(N, 4)` GT `x, y, w, h` as shipped.
        mode: pytracking's dataset string: `lasot` (short files raise; invisible frames get infinite centre errors),
            `uav` (NaN GT allowed; invalid frames are precision successes), anything else the default behaviour.
        visible: `(N,)` target visibility (pytracking passes it for LaSOT and LaSOT_ext only).
        validity: `"pytracking"` (GT valid when all four numbers are > 0) or `"stark"` (when `w > 0 and h > 0`).
        sequence: name used in error messages.

    Raises:
        EvaluationError: NaN or negative-size predictions, NaN GT outside `uav`, a short file in `lasot` mode, an
            empty sequence or a NaN overlap, like the toolkit.
    """
    if validity not in ("pytracking", "stark"):
        raise ValueError(f"validity must be 'pytracking' or 'stark', got {validity!r}.")
    pred = _as_boxes(predictions, f"{sequence}: prediction").copy()
    anno = _as_boxes(groundtruth, f"{sequence}: ground truth")
    num_frames = len(anno)
    if num_frames == 0:
        raise EvaluationError(f"{sequence}: the ground truth has no frames ('Seq length zero').")
    if mode == "lasot" and visible is None:
        raise ValueError(f"{sequence}: pytracking's 'lasot' mode needs the visibility flags (visible=...).")

    bad_values = np.isnan(pred).any(axis=1) | (pred[:, 2:] < 0).any(axis=1)
    if bad_values.any():
        frame = int(np.argmax(bad_values))
        problem = "contains NaN" if np.isnan(pred[frame]).any() else "has a negative width or height"
        raise EvaluationError(
            f"{sequence}: frame {frame} (line {frame + 1}): the predicted box {_fmt_box(pred[frame])} {problem}; "
            f"pytracking stops with 'Error: Invalid results'."
        )
    anno_nan = np.isnan(anno).any(axis=1)
    if anno_nan.any() and mode != "uav":
        frame = int(np.argmax(anno_nan))
        raise EvaluationError(
            f"{sequence}: frame {frame}: the ground truth is NaN (not annotated); pytracking stops with "
            f"'Warning: NaNs in annotation' for every dataset except 'uav'. Is this a test split whose annotations "
            f"are withheld?"
        )

    # zero-size boxes copy the previous row (already repaired rows propagate), unless that frame's GT is NaN
    zero_size = (pred[:, 2:] == 0).any(axis=1)
    zero_size[:1] = False
    if zero_size[num_frames:].any():
        frame = num_frames + int(np.argmax(zero_size[num_frames:]))
        raise EvaluationError(
            f"{sequence}: frame {frame} (line {frame + 1}): the result file is longer than the {num_frames} GT frames "
            f"and this extra box has zero size; pytracking's repair loop reads GT row {frame} and stops (IndexError)."
        )
    zero_size[: min(len(pred), num_frames)] &= ~anno_nan[: min(len(pred), num_frames)]
    pred = _forward_fill(pred, zero_size)

    if len(pred) != num_frames:
        if len(pred) > num_frames:
            pred = pred[:num_frames]
        elif mode == "lasot":
            raise EvaluationError(
                f"{sequence}: the result file has {len(pred)} boxes for {num_frames} frames (first missing frame: "
                f"{len(pred)}); pytracking stops with 'Mis-match in tracker prediction and GT lengths' on LaSOT."
            )
        else:
            pred = np.concatenate([pred, np.zeros((num_frames - len(pred), 4))], axis=0)
    pred[0] = anno[0]

    if validity == "stark":
        valid = (anno[:, 2:] > 0).sum(axis=1) == 2
    else:
        valid = (anno > 0).sum(axis=1) == 4
    if visible is not None:
        visible = np.asarray(visible).reshape(-1).astype(bool)
        if len(visible) != num_frames:
            raise ValueError(f"{sequence}: {len(visible)} visibility flags for {num_frames} ground-truth frames.")
        valid &= visible

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        pred_center = pred[:, :2] + 0.5 * (pred[:, 2:] - 1.0)
        anno_center = anno[:, :2] + 0.5 * (anno[:, 2:] - 1.0)
        center_error = _torch_sqrt(((pred_center - anno_center) ** 2).sum(axis=1))
        normalized = _torch_sqrt(((pred_center / anno[:, 2:] - anno_center / anno[:, 2:]) ** 2).sum(axis=1))
        top_left = np.maximum(pred[:, :2], anno[:, :2])
        bottom_right = np.minimum(pred[:, :2] + pred[:, 2:] - 1.0, anno[:, :2] + anno[:, 2:] - 1.0)
        size = np.clip(bottom_right - top_left + 1.0, 0, None)
        intersection = size[:, 0] * size[:, 1]
        union = pred[:, 2] * pred[:, 3] + anno[:, 2] * anno[:, 3] - intersection
        iou = intersection / union

    center_error[~valid] = -1.0 if mode == "uav" else np.inf
    normalized[~valid] = -1.0
    iou[~valid] = -1.0
    if mode == "lasot":
        center_error[~visible] = np.inf
        normalized[~visible] = np.inf
    if np.isnan(iou).any():
        frame = int(np.argmax(np.isnan(iou)))
        raise EvaluationError(
            f"{sequence}: frame {frame}: the overlap of {_fmt_box(pred[frame])} with the ground truth "
            f"{_fmt_box(anno[frame])} is NaN; pytracking stops with 'Nans in calculated overlap'."
        )
    return FrameErrors(iou=iou, center_error=center_error, normalized_center_error=normalized, valid=valid)


def pytracking_sequence_curves(
    predictions: np.ndarray,
    groundtruth: np.ndarray,
    *,
    mode: str = "default",
    visible: np.ndarray | None = None,
    validity: str = "pytracking",
    sequence: str = "sequence",
) -> PytrackingCurves:
    """pytracking's per-sequence success / precision / normalised precision curves (float32, over ALL GT frames).

    Success is `IoU > t` on the 21 thresholds `0, 0.05, ..., 1.0`, precision `error <= t` on `0..50` px, normalised
    precision `error <= t` on `0, 0.01, ..., 0.50`. Invalid frames stay in the denominator. See
    `pytracking_frame_errors` for the arguments.
    """
    errors = pytracking_frame_errors(
        predictions, groundtruth, mode=mode, visible=visible, validity=validity, sequence=sequence
    )
    num_frames = np.float32(len(errors.iou))

    def rate(values: np.ndarray, thresholds: np.ndarray, above: bool) -> np.ndarray:
        hits = values[:, None] > thresholds[None] if above else values[:, None] <= thresholds[None]
        return hits.sum(axis=0).astype(np.float32) / num_frames

    valid_iou = errors.iou[errors.valid]
    return PytrackingCurves(
        success=rate(errors.iou, PYTRACKING_OVERLAP_THRESHOLDS, above=True),
        precision=rate(errors.center_error, PYTRACKING_CENTER_THRESHOLDS, above=False),
        normalized_precision=rate(errors.normalized_center_error, PYTRACKING_NORMALIZED_THRESHOLDS, above=False),
        average_overlap=float(torch.from_numpy(valid_iou).mean()) if len(valid_iou) else float("nan"),
    )


def _pytracking_scores(success: np.ndarray, precision: np.ndarray, normalized: np.ndarray) -> dict[str, float]:
    """Printed numbers (percent) from curves in percent."""
    return {
        "success_auc": float(np.mean(success)),
        "success_rate_50": float(success[_INDEX_IOU_50]),
        "success_rate_75": float(success[_INDEX_IOU_75]),
        "precision": float(precision[_INDEX_20]),
        "normalized_precision": float(normalized[_INDEX_20]),
    }


def _evaluate_pytracking(
    sequences: Iterable[SequenceData], *, protocol: str, dataset: str, mode: str, skip_missing: bool
) -> EvaluationResult:
    validity = "stark" if protocol == "ostrack" else "pytracking"
    per_sequence, kept, skipped = {}, [], []
    num_runs = 0
    for seq in sequences:
        visible = seq.visible if mode in _MODES_WITH_VISIBILITY else None
        if mode == "lasot" and visible is None:
            raise EvaluationError(f"{seq.name}: LaSOT mode needs full_occlusion/out_of_view flags; none were found.")
        # runs are read in order and a missing one ends the sequence (after the earlier runs were checked)
        runs, missing = [], not seq.predictions
        for run, pred in enumerate(seq.predictions):
            if pred is None:
                missing = True
                if not skip_missing:
                    raise EvaluationError(
                        f"{seq.name}: result not found ({seq.describe_run(run)}); pytracking stops with "
                        f"'Result not found'."
                    )
                break
            runs.append(
                pytracking_sequence_curves(
                    pred, seq.groundtruth, mode=mode, visible=visible, validity=validity, sequence=seq.name
                )
            )
        if missing:
            if not skip_missing:
                raise EvaluationError(f"{seq.name}: result not found; pytracking stops with 'Result not found'.")
            skipped.append(seq.name)
            continue
        num_runs = max(num_runs, len(runs))
        # merge_multiple_runs: per-sequence curves averaged over runs (float32), then over sequences
        success = np.mean([r.success for r in runs], axis=0, dtype=np.float32)
        precision = np.mean([r.precision for r in runs], axis=0, dtype=np.float32)
        normalized = np.mean([r.normalized_precision for r in runs], axis=0, dtype=np.float32)
        kept.append((success, precision, normalized))
        scores = _pytracking_scores(success * 100.0, precision * 100.0, normalized * 100.0)
        scores["average_overlap"] = float(np.mean([r.average_overlap for r in runs]) * 100.0)
        scores["num_frames"] = len(seq.groundtruth)
        per_sequence[seq.name] = scores

    if kept:
        # dataset mean in float64 of the float32 per-sequence curves (the toolkit averages in float32; < 1e-5 apart)
        success, precision, normalized = (
            np.mean(np.stack(c).astype(np.float64), axis=0) * 100.0 for c in zip(*kept, strict=True)
        )
        metrics = _pytracking_scores(success, precision, normalized)
    else:
        success, precision, normalized = np.full(21, np.nan), np.full(51, np.nan), np.full(51, np.nan)
        metrics = dict.fromkeys(_pytracking_scores(np.zeros(21), np.zeros(51), np.zeros(51)), None)
    curves = {
        "success": _curve(PYTRACKING_OVERLAP_THRESHOLDS, success),
        "precision": _curve(PYTRACKING_CENTER_THRESHOLDS, precision),
        "normalized_precision": _curve(PYTRACKING_NORMALIZED_THRESHOLDS, normalized),
    }
    details = {"mode": mode, "validity": validity, "runs": num_runs}
    return EvaluationResult(protocol, dataset, len(kept), metrics, per_sequence, curves, skipped, details)


def _curve(thresholds: np.ndarray, values: np.ndarray) -> dict[str, list[float]]:
    return {"thresholds": [float(t) for t in thresholds], "values": [_json_float(v) for v in values]}


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


# ----------------------------------------------------------------------------------------------------------------------
# LaSOT / TNL2K MATLAB toolkit


@dataclass
class LasotToolkitCurves:
    """One sequence's MATLAB-toolkit curves (float64 fractions of ALL GT frames)."""

    success: np.ndarray  # (21,) rate of overlap > t, t = 0:0.05:1
    precision: np.ndarray  # (51,) rate of centre error <= t px, t = 0:50
    normalized_precision: np.ndarray  # (51,) rate of normalised centre error <= t, t = (0:50)/100


def lasot_toolkit_frame_errors(
    predictions: np.ndarray,
    groundtruth: np.ndarray,
    absent: np.ndarray | None = None,
    *,
    normalized: bool = False,
    sequence: str = "sequence",
) -> tuple[np.ndarray, np.ndarray]:
    """`calc_seq_err_robust.m`: overlaps and centre errors of the frames that are not absent.

    Rows 2..N with NaN or `w <= 0` / `h <= 0` copy the previous (repaired) row, frame 1 becomes the GT, absent frames
    are deleted, and frames whose GT has a coordinate `<= 0` get overlap -1 (failure) and centre error -1 (success).

    Returns:
        `(overlap, center_error)`, both `(K,)` float64 with `K` = number of frames not flagged absent.

    Raises:
        EvaluationError: a result file shorter than the GT (MATLAB index error) or absent flags set beyond the GT.
    """
    pred = _as_boxes(predictions, f"{sequence}: prediction").copy()
    anno = _as_boxes(groundtruth, f"{sequence}: ground truth").copy()
    num_frames = len(anno)
    if len(pred) < num_frames:
        raise EvaluationError(
            f"{sequence}: the result file has {len(pred)} boxes for {num_frames} frames (first missing frame: "
            f"{len(pred)}); the MATLAB toolkit stops with an index error."
        )
    pred = pred[:num_frames]
    anno_has_nan = np.isnan(anno).any(axis=1)
    repair = np.isnan(pred).any(axis=1) | (pred[:, 2] <= 0) | (pred[:, 3] <= 0)
    repair &= ~anno_has_nan
    repair[:1] = False
    pred = _forward_fill(pred, repair)
    if num_frames:
        pred[0] = anno[0]

    if absent is not None:
        absent = np.asarray(absent).reshape(-1).astype(bool)
        if len(absent) > num_frames:
            if absent[num_frames:].any():
                raise EvaluationError(
                    f"{sequence}: frame {num_frames + int(np.argmax(absent[num_frames:]))} is flagged absent but the "
                    f"ground truth has only {num_frames} frames; MATLAB stops (index out of range for deletion)."
                )
            absent = absent[:num_frames]
        keep = ~np.concatenate([absent, np.zeros(num_frames - len(absent), dtype=bool)])
        pred, anno = pred[keep], anno[keep]

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        center_anno = anno[:, :2] + (anno[:, 2:] - 1) / 2
        center_pred = pred[:, :2] + (pred[:, 2:] - 1) / 2
        if normalized:
            center_pred = center_pred / anno[:, 2:]
            center_anno = center_anno / anno[:, 2:]
        center_error = np.sqrt(((center_pred - center_anno) ** 2).sum(axis=1))
        valid = (anno > 0).sum(axis=1) == 4
        overlap = -np.ones(len(anno))
        overlap[valid] = _matlab_rect_overlap(pred[valid], anno[valid])
    center_error[~valid] = -1.0
    return overlap, center_error


def _matlab_rect_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`calc_rect_int.m` (+1 pixel convention); MATLAB's max/min ignore NaN, hence fmax/fmin."""
    right_a, top_a = a[:, 0] + a[:, 2] - 1, a[:, 1] + a[:, 3] - 1
    right_b, top_b = b[:, 0] + b[:, 2] - 1, b[:, 1] + b[:, 3] - 1
    inter_w = np.fmax(0, np.fmin(right_a, right_b) - np.fmax(a[:, 0], b[:, 0]) + 1)
    inter_h = np.fmax(0, np.fmin(top_a, top_b) - np.fmax(a[:, 1], b[:, 1]) + 1)
    inter = inter_w * inter_h
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def lasot_toolkit_sequence_curves(
    predictions: np.ndarray, groundtruth: np.ndarray, absent: np.ndarray | None = None, *, sequence: str = "sequence"
) -> LasotToolkitCurves:
    """`eval_tracker.m` for one sequence: rates divided by `len_all + eps` with `len_all` = ALL GT frames.

    An empty result file gives all-zero curves (the toolkit's `isempty(res)` branch), which `plot_draw_save.m` then
    drops from the average.
    """
    num_frames = len(_as_boxes(groundtruth, f"{sequence}: ground truth"))
    denominator = num_frames + _MATLAB_EPS
    if len(_as_boxes(predictions, f"{sequence}: prediction")) == 0:
        return LasotToolkitCurves(np.zeros(21), np.zeros(51), np.zeros(51))
    overlap, center = lasot_toolkit_frame_errors(predictions, groundtruth, absent, sequence=sequence)
    _, normalized = lasot_toolkit_frame_errors(predictions, groundtruth, absent, normalized=True, sequence=sequence)
    return LasotToolkitCurves(
        success=(overlap[:, None] > LASOT_TOOLKIT_OVERLAP_THRESHOLDS[None]).sum(axis=0) / denominator,
        precision=(center[:, None] <= LASOT_TOOLKIT_CENTER_THRESHOLDS[None]).sum(axis=0) / denominator,
        normalized_precision=(normalized[:, None] <= LASOT_TOOLKIT_NORMALIZED_THRESHOLDS[None]).sum(axis=0)
        / denominator,
    )


def lasot_toolkit_average(curves: np.ndarray) -> tuple[np.ndarray, int]:
    """`plot_draw_save.m`: drop sequences whose whole curve sums to `<= eps`, then average.

    Args:
        curves: `(num_sequences, T)` per-sequence curves of one plot.

    Returns:
        `(mean_curve (T,), number of sequences kept)`; the mean is NaN when every sequence was dropped.
    """
    curves = np.asarray(curves, dtype=np.float64)
    kept = curves[curves.sum(axis=1) > _MATLAB_EPS]
    if len(kept) == 0:
        return np.full(curves.shape[1], np.nan), 0
    return kept.mean(axis=0), len(kept)


def _lasot_toolkit_scores(success: np.ndarray, precision: np.ndarray, normalized: np.ndarray) -> dict[str, float]:
    return {
        "success_auc": float(np.mean(success)) * 100.0,  # ranking_type 'AUC'
        "success_rate_50": float(success[_INDEX_IOU_50]) * 100.0,
        "success_rate_75": float(success[_INDEX_IOU_75]) * 100.0,
        "precision": float(precision[_INDEX_20]) * 100.0,  # ranking_type 'threshold': bb(21) = 20 px
        "normalized_precision": float(normalized[_INDEX_20]) * 100.0,  # 'threshold': bb(21) = 0.20 (LaSOT script)
        "normalized_precision_auc": float(np.mean(normalized)) * 100.0,  # 'AUC' over 0..0.5 (TNL2K script)
    }


def _evaluate_lasot_toolkit(
    sequences: Iterable[SequenceData], *, dataset: str, skip_missing: bool
) -> EvaluationResult:
    names, per_run_curves, per_sequence, skipped = [], [], {}, []
    num_runs = 0
    for seq in sequences:
        predictions = list(seq.predictions)
        if not predictions or any(p is None for p in predictions):
            if not skip_missing:
                run = next((i for i, p in enumerate(predictions) if p is None), 0)
                where = seq.describe_run(run) if predictions else "the results folder"
                raise EvaluationError(
                    f"{seq.name}: result file not found ({where}); the MATLAB toolkit stops (dlmread error)."
                )
            # --skip-missing: treated like the toolkit's empty result file (all-zero curves, dropped from the plots)
            skipped.append(seq.name)
            predictions = [np.zeros((0, 4)) if p is None else p for p in predictions] or [np.zeros((0, 4))]
        absent = seq.absent if seq.absent is not None else (None if seq.visible is None else ~seq.visible)
        runs = [lasot_toolkit_sequence_curves(p, seq.groundtruth, absent, sequence=seq.name) for p in predictions]
        num_runs = max(num_runs, len(runs))
        names.append(seq.name)
        per_run_curves.append(runs)
        seq_scores = [_lasot_toolkit_scores(r.success, r.precision, r.normalized_precision) for r in runs]
        per_sequence[seq.name] = {key: float(np.mean([s[key] for s in seq_scores])) for key in seq_scores[0]}
        per_sequence[seq.name]["num_frames"] = len(seq.groundtruth)
        per_sequence[seq.name]["num_absent"] = int(absent[: len(seq.groundtruth)].sum()) if absent is not None else 0
        per_sequence[seq.name]["all_zero_success_curve"] = bool(all(r.success.sum() <= _MATLAB_EPS for r in runs))

    # the toolkit has no notion of runs: each run is scored like a separate tracker and the numbers are averaged
    run_scores, run_curves, used = [], [], []
    for run in range(num_runs):
        rows = [runs[run] for runs in per_run_curves if run < len(runs)]
        success, n_success = lasot_toolkit_average(np.stack([r.success for r in rows]))
        precision, n_precision = lasot_toolkit_average(np.stack([r.precision for r in rows]))
        normalized, n_normalized = lasot_toolkit_average(np.stack([r.normalized_precision for r in rows]))
        run_scores.append(_lasot_toolkit_scores(success, precision, normalized))
        run_curves.append((success, precision, normalized))
        used.append({"success": n_success, "precision": n_precision, "normalized_precision": n_normalized})
    if run_scores:
        metrics = {key: _json_float(np.mean([s[key] for s in run_scores])) for key in run_scores[0]}
        success, precision, normalized = (np.mean(np.stack(c), axis=0) * 100.0 for c in zip(*run_curves, strict=True))
    else:
        metrics = dict.fromkeys(_lasot_toolkit_scores(np.zeros(21), np.zeros(51), np.zeros(51)), None)
        success, precision, normalized = np.full(21, np.nan), np.full(51, np.nan), np.full(51, np.nan)
    curves = {
        "success": _curve(LASOT_TOOLKIT_OVERLAP_THRESHOLDS, success),
        "precision": _curve(LASOT_TOOLKIT_CENTER_THRESHOLDS, precision),
        "normalized_precision": _curve(LASOT_TOOLKIT_NORMALIZED_THRESHOLDS, normalized),
    }
    details = {"runs": num_runs, "sequences_per_plot": used[0] if len(used) == 1 else used}
    return EvaluationResult("lasot-toolkit", dataset, len(names), metrics, per_sequence, curves, skipped, details)


# ----------------------------------------------------------------------------------------------------------------------
# GOT-10k toolkit


def got10k_iou(
    predictions: np.ndarray, groundtruth: np.ndarray, image_size: Sequence[float] | None = None
) -> np.ndarray:
    """got10k's `rect_iou`: both boxes clipped to the image (a box left of / above it is shifted in, not cropped).

    `x = clip(x, 0, W)`, then `w = clip(w, 0, W - x)` (same for y/h); `IoU = inter / (union + eps)` clipped to [0, 1].
    Zero or negative sizes give 0, NaN propagates. Shapes `(N, 4)` -> `(N,)`.
    """
    a = np.array(predictions, dtype=np.float64)
    b = np.array(groundtruth, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Predictions {a.shape} and ground truth {b.shape} must have the same shape.")
    with np.errstate(invalid="ignore", over="ignore"):
        if image_size is not None:
            width, height = float(image_size[0]), float(image_size[1])
            for boxes in (a, b):
                boxes[:, 0] = np.clip(boxes[:, 0], 0, width)
                boxes[:, 1] = np.clip(boxes[:, 1], 0, height)
                boxes[:, 2] = np.clip(boxes[:, 2], 0, width - boxes[:, 0])
                boxes[:, 3] = np.clip(boxes[:, 3], 0, height - boxes[:, 1])
        x1 = np.maximum(a[:, 0], b[:, 0])
        y1 = np.maximum(a[:, 1], b[:, 1])
        x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
        y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
        inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
        union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
        return np.clip(inter / (union + _GOT10K_EPS), 0.0, 1.0)


def got10k_sequence_ious(
    runs: Sequence[np.ndarray],
    groundtruth: np.ndarray,
    cover: np.ndarray,
    image_size: Sequence[float] | None,
    *,
    sequence: str = "sequence",
) -> np.ndarray:
    """IoUs of frames 1..N-1 with `cover > 0`, concatenated over all runs (frame 0 is not scored).

    Raises:
        EvaluationError: a run whose box array does not have exactly the GT's shape (the toolkit's assertion).
    """
    anno = _as_boxes(groundtruth, f"{sequence}: ground truth")
    cover = np.asarray(cover).reshape(-1)
    if len(cover) != len(anno):
        raise EvaluationError(f"{sequence}: {len(cover)} cover labels for {len(anno)} ground-truth frames.")
    ious = []
    for run, boxes in enumerate(runs):
        boxes = _as_boxes(boxes, f"{sequence}: prediction")
        if boxes.shape != anno.shape:
            first = min(len(boxes), len(anno))
            raise EvaluationError(
                f"{sequence}: run {run + 1} has {len(boxes)} boxes for {len(anno)} frames (first differing frame: "
                f"{first}); the GOT-10k toolkit asserts that every result file has exactly the ground truth's shape."
            )
        ious.append(got10k_iou(boxes[1:], anno[1:], image_size)[cover[1:] > 0])
    return np.concatenate(ious) if ious else np.zeros(0)


def got10k_summary(ious: np.ndarray, times: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """`ExperimentGOT10k._evaluate`: `(AO, SR0.5, speed_fps, success curve (101,))`; speed -1 without times."""
    ious = np.asarray(ious, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        average_overlap = float(np.mean(ious)) if len(ious) else float("nan")
        success_rate = float(np.mean(ious > 0.5)) if len(ious) else float("nan")
        speed = float(np.mean(1.0 / times)) if len(times) else -1.0
        curve = (
            np.mean(ious[:, None] > GOT10K_OVERLAP_THRESHOLDS[None], axis=0)
            if len(ious)
            else np.full(len(GOT10K_OVERLAP_THRESHOLDS), np.nan)
        )
    return average_overlap, success_rate, speed, curve


def got10k_clean_times(times: np.ndarray) -> np.ndarray:
    """Time-file entries that count for the speed: NaN and `<= 0` removed, flattened over runs."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    times = times[~np.isnan(times)]
    return times[times > 0]


def _evaluate_got10k(sequences: Iterable[SequenceData], *, dataset: str, skip_missing: bool) -> EvaluationResult:
    all_ious, all_times, per_sequence, skipped = [], [], {}, []
    previous_times: np.ndarray | None = None  # the toolkit's stale `seq_times` (see below)
    num_runs = 0
    sources = set()
    for seq in sequences:
        runs = [p for p in seq.predictions if p is not None]
        if not runs:
            if skip_missing:  # the toolkit has no skip option; this leaves the sequence out of the pooled numbers
                skipped.append(seq.name)
                continue
            raise EvaluationError(
                f"{seq.name}: results not found (no {seq.name}/{seq.name}_NNN.txt); the GOT-10k toolkit stops with "
                f"'Results for sequence {seq.name} not found.'"
            )
        if seq.cover is not None:
            cover, sources_cover = seq.cover, "cover.label"
        elif seq.visible is not None:
            cover, sources_cover = seq.visible.astype(np.float64), "visible flags"
        else:
            cover, sources_cover = np.ones(len(seq.groundtruth)), "all frames"
        sources.add(sources_cover)
        num_runs = max(num_runs, len(runs))
        ious = got10k_sequence_ious(runs, seq.groundtruth, cover, seq.image_size, sequence=seq.name)
        all_ious.append(ious)
        if seq.times is not None:
            seq_times = got10k_clean_times(seq.times)
            previous_times = seq_times
            all_times.append(seq_times)
        # A sequence without a time file reuses the previous sequence's times for its own speed (toolkit bug); the
        # first sequence would crash the toolkit with a NameError: its speed is reported as null instead.
        ao, sr, speed, curve = got10k_summary(ious, previous_times if previous_times is not None else np.zeros(0))
        per_sequence[seq.name] = {
            "average_overlap": _json_float(ao),
            "success_rate_50": _json_float(sr),
            "success_rate_75": _json_float(curve[75]),
            "speed_fps": speed if previous_times is not None else None,
            "num_frames": len(seq.groundtruth) - 1,
        }
    ious = np.concatenate(all_ious) if all_ious else np.zeros(0)
    times = np.concatenate(all_times) if all_times else np.zeros(0)
    ao, sr, speed, curve = got10k_summary(ious, times)
    metrics = {
        "average_overlap": _json_float(ao),
        "success_rate_50": _json_float(sr),
        "success_rate_75": _json_float(curve[75]),
        "speed_fps": speed,
    }
    curves = {"success": _curve(GOT10K_OVERLAP_THRESHOLDS, curve)}
    details = {"runs": num_runs, "num_frames_scored": int(len(ious)), "cover_source": sorted(sources)}
    return EvaluationResult("got10k", dataset, len(per_sequence), metrics, per_sequence, curves, skipped, details)


# ----------------------------------------------------------------------------------------------------------------------
# TrackingNet devkit


@dataclass
class TrackingNetCurves:
    """One sequence's devkit curves (float64 fractions of ALL GT frames) and per-frame coverage."""

    success: np.ndarray  # (21,) rate of IoU >= t, t = linspace(0, 1, 21)
    precision: np.ndarray  # (21,) rate of distance <= t, t = linspace(0, 50, 21) px
    normalized_precision: np.ndarray  # (21,) rate of normalised distance <= t, t = linspace(0, 0.5, 21)
    covered: np.ndarray  # (N,) bool, (x + y + w + h) > 0 after rounding and frame-0 replacement


def trackingnet_sequence_curves(
    predictions: np.ndarray | None, groundtruth: np.ndarray, *, sequence: str = "sequence"
) -> TrackingNetCurves:
    """`metrics.py::evaluate` for one sequence.

    `predictions=None` is a missing file (all-zero boxes). A shorter submission leaves its last frames NaN (failures,
    uncovered), a longer one is cut. All coordinates are rounded half to even, frame 0 becomes the (rounded) GT box,
    IoU uses the +1 pixel convention and `>=`, pandas' NaN-skipping max/min are reproduced with fmax/fmin.
    """
    anno = np.round(_as_boxes(groundtruth, f"{sequence}: ground truth"))
    num_frames = len(anno)
    if predictions is None:
        pred = np.zeros((num_frames, 4))
    else:
        pred = _as_boxes(predictions, f"{sequence}: prediction")[:num_frames]
        pred = np.concatenate([pred, np.full((num_frames - len(pred), 4), np.nan)], axis=0)
    pred = np.round(pred)
    if num_frames:
        pred[0] = anno[0]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        anno_x2, anno_y2 = anno[:, 0] + anno[:, 2] - 1.0, anno[:, 1] + anno[:, 3] - 1.0
        pred_x2, pred_y2 = pred[:, 0] + pred[:, 2] - 1.0, pred[:, 1] + pred[:, 3] - 1.0
        anno_cx, anno_cy = anno[:, 0] + (anno[:, 2] + 1.0) / 2.0, anno[:, 1] + (anno[:, 3] + 1.0) / 2.0
        pred_cx, pred_cy = pred[:, 0] + (pred[:, 2] + 1.0) / 2.0, pred[:, 1] + (pred[:, 3] + 1.0) / 2.0
        inter_w = np.clip(np.round(np.fmin(anno_x2, pred_x2) - np.fmax(anno[:, 0], pred[:, 0]) + 1), 0, None)
        inter_h = np.clip(np.round(np.fmin(anno_y2, pred_y2) - np.fmax(anno[:, 1], pred[:, 1]) + 1), 0, None)
        inter = inter_w * inter_h
        iou = inter / (anno[:, 3] * anno[:, 2] + pred[:, 3] * pred[:, 2] - inter)
        dx, dy = anno_cx - pred_cx, anno_cy - pred_cy
        distance = np.sqrt(dx * dx + dy * dy)
        normalized = np.sqrt(dx / anno[:, 2] * dx / anno[:, 2] + dy / anno[:, 3] * dy / anno[:, 3])
        covered = (pred[:, 3] + pred[:, 2] + pred[:, 0] + pred[:, 1]) > 0
    denominator = float(max(num_frames, 1))
    return TrackingNetCurves(
        success=(iou[:, None] >= TRACKINGNET_OVERLAP_THRESHOLDS[None]).sum(axis=0) / denominator,
        precision=(distance[:, None] <= TRACKINGNET_CENTER_THRESHOLDS[None]).sum(axis=0) / denominator,
        normalized_precision=(normalized[:, None] <= TRACKINGNET_NORMALIZED_THRESHOLDS[None]).sum(axis=0)
        / denominator,
        covered=covered,
    )


def _trackingnet_area(curve: np.ndarray) -> float:
    """`np.trapz(curve, x=linspace(0, 1, 21)) * 100` (the devkit integrates all three curves over [0, 1])."""
    return float(np.trapezoid(curve, x=TRACKINGNET_OVERLAP_THRESHOLDS)) * 100.0


def _evaluate_trackingnet(sequences: Iterable[SequenceData], *, dataset: str) -> EvaluationResult:
    per_run: list[list[TrackingNetCurves]] = []
    names, per_sequence, missing = [], {}, []
    for seq in sequences:
        predictions = list(seq.predictions) or [None]
        if all(p is None for p in predictions):
            missing.append(seq.name)  # the devkit scores a missing file as all-zero boxes, without an error
        names.append(seq.name)
        runs = [trackingnet_sequence_curves(p, seq.groundtruth, sequence=seq.name) for p in predictions]
        per_run.append(runs)
        per_sequence[seq.name] = {
            "success": float(np.mean([_trackingnet_area(r.success) for r in runs])),
            "precision": float(np.mean([_trackingnet_area(r.precision) for r in runs])),
            "normalized_precision": float(np.mean([_trackingnet_area(r.normalized_precision) for r in runs])),
            "coverage": float(np.mean([r.covered.mean() * 100.0 if len(r.covered) else 0.0 for r in runs])),
            "num_frames": len(seq.groundtruth),
        }
    num_runs = max((len(r) for r in per_run), default=0)
    run_metrics, run_curves = [], []
    for run in range(num_runs):
        rows = [runs[min(run, len(runs) - 1)] for runs in per_run]
        # the devkit accumulates the per-sequence rates in order, then divides by the number of GT files
        success = np.cumsum([r.success for r in rows], axis=0)[-1] / len(rows)
        precision = np.cumsum([r.precision for r in rows], axis=0)[-1] / len(rows)
        normalized = np.cumsum([r.normalized_precision for r in rows], axis=0)[-1] / len(rows)
        covered = np.concatenate([r.covered for r in rows])
        run_metrics.append(
            {
                "success": _trackingnet_area(success),
                "precision": _trackingnet_area(precision),
                "normalized_precision": _trackingnet_area(normalized),
                "coverage": float(np.mean(covered)) * 100.0 if len(covered) else 0.0,
            }
        )
        run_curves.append((success, precision, normalized))
    if run_metrics:
        metrics = {key: float(np.mean([m[key] for m in run_metrics])) for key in run_metrics[0]}
        success, precision, normalized = (np.mean(np.stack(c), axis=0) * 100.0 for c in zip(*run_curves, strict=True))
    else:
        metrics = dict.fromkeys(("success", "precision", "normalized_precision", "coverage"), None)
        success = precision = normalized = np.full(21, np.nan)
    curves = {
        "success": _curve(TRACKINGNET_OVERLAP_THRESHOLDS, success),
        "precision": _curve(TRACKINGNET_CENTER_THRESHOLDS, precision),
        "normalized_precision": _curve(TRACKINGNET_NORMALIZED_THRESHOLDS, normalized),
    }
    details = {"runs": num_runs, "missing_scored_as_zero": missing}
    return EvaluationResult("trackingnet", dataset, len(names), metrics, per_sequence, curves, [], details)


# ----------------------------------------------------------------------------------------------------------------------
# dispatch


def default_protocol(dataset: str) -> str:
    """The protocol published numbers use: the GOT-10k / TrackingNet toolkits, else OSTrack's pytracking variant."""
    return {"got10k": "got10k", "trackingnet": "trackingnet"}.get(dataset, "ostrack")


def pytracking_mode(dataset: str) -> str:
    """pytracking's dataset string for one of our dataset names (`lasot_ext` -> `lasot_extension_subset`)."""
    return DATASET_TO_PYTRACKING_MODE.get(dataset, "default")


def evaluate_sequences(
    protocol: str,
    sequences: Iterable[SequenceData],
    *,
    dataset: str = "generic",
    mode: str | None = None,
    skip_missing: bool = False,
) -> EvaluationResult:
    """Score a dataset with one protocol.

    Args:
        protocol: one of `PROTOCOLS`.
        sequences: the sequences in evaluation order (order matters only for GOT-10k's time-file quirk).
        dataset: our dataset name (`lasot`, `lasot_ext`, `tnl2k`, `got10k`, `trackingnet`, `uav`, `generic`, ...).
        mode: pytracking dataset mode for `pytracking` / `ostrack` (default: derived from `dataset`; `lasot_ext` is
            accepted for `lasot_extension_subset`).
        skip_missing: pytracking's `skip_missing_seq` (drop sequences with a missing run); for `lasot-toolkit` a
            missing file is scored like an empty one (all-zero curves, dropped by the plot filter); for `got10k`,
            which has no such option, the sequence is left out. TrackingNet always scores missing files as zeros.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    if protocol in ("pytracking", "ostrack"):
        mode = DATASET_TO_PYTRACKING_MODE.get(mode, mode) if mode else pytracking_mode(dataset)
        if mode not in PYTRACKING_MODES:
            raise ValueError(f"Unknown pytracking mode {mode!r}; choose one of {', '.join(PYTRACKING_MODES)}.")
        return _evaluate_pytracking(
            sequences, protocol=protocol, dataset=dataset, mode=mode, skip_missing=skip_missing
        )
    if protocol == "lasot-toolkit":
        return _evaluate_lasot_toolkit(sequences, dataset=dataset, skip_missing=skip_missing)
    if protocol == "got10k":
        return _evaluate_got10k(sequences, dataset=dataset, skip_missing=skip_missing)
    return _evaluate_trackingnet(sequences, dataset=dataset)
