"""One-pass evaluation (OPE): five toolkits' metrics reproduced exactly, result files, submission zips, reports, plots.

    from lorat_hf.evaluation import load_ground_truth, score_results
    sequences = load_ground_truth("lasot", "/data/LaSOT", split="test")
    report = score_results("runs/lorat/results", sequences, dataset="lasot", protocol="ostrack")
    print(report["metrics"]["success_auc"])

Command line: ``lorat-eval score`` / ``lorat-eval run`` (`lorat_hf.commands.evaluate`).
"""

from .plots import plot_curves, save_plots
from .protocols import (
    PROTOCOLS,
    PYTRACKING_MODES,
    EvaluationError,
    EvaluationResult,
    SequenceData,
    default_protocol,
    evaluate_sequences,
    got10k_iou,
    got10k_sequence_ious,
    lasot_toolkit_frame_errors,
    lasot_toolkit_sequence_curves,
    pytracking_frame_errors,
    pytracking_sequence_curves,
    trackingnet_sequence_curves,
)
from .report import build_report, format_table, load_report, write_report
from .results_io import (
    ResultFileError,
    SequenceResults,
    load_results,
    pack_got10k_submission,
    pack_trackingnet_submission,
    parse_boxes,
    rasterize_xywh,
    write_got10k_result,
    write_got10k_submission,
    write_pytracking_result,
    write_trackingnet_submission,
)
from .runner import load_ground_truth, run_evaluation, score_results, sequence_data

__all__ = [
    "PROTOCOLS",
    "PYTRACKING_MODES",
    "EvaluationError",
    "EvaluationResult",
    "ResultFileError",
    "SequenceData",
    "SequenceResults",
    "build_report",
    "default_protocol",
    "evaluate_sequences",
    "format_table",
    "got10k_iou",
    "got10k_sequence_ious",
    "lasot_toolkit_frame_errors",
    "lasot_toolkit_sequence_curves",
    "load_ground_truth",
    "load_report",
    "load_results",
    "pack_got10k_submission",
    "pack_trackingnet_submission",
    "parse_boxes",
    "plot_curves",
    "pytracking_frame_errors",
    "pytracking_sequence_curves",
    "rasterize_xywh",
    "run_evaluation",
    "save_plots",
    "score_results",
    "sequence_data",
    "trackingnet_sequence_curves",
    "write_got10k_result",
    "write_got10k_submission",
    "write_pytracking_result",
    "write_report",
    "write_trackingnet_submission",
]
