"""Success and precision plots (PNG) from evaluation reports, one curve per tracker.

Drawn on a private Agg canvas (`matplotlib.figure.Figure`, no pyplot), so the caller's matplotlib backend and global
state are left alone and it works headless.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .report import plot_score_key
from .results_io import write_text_atomic

PLOT_KINDS = ("success", "precision", "normalized_precision")
_AXES = {
    "success": ("Overlap threshold", "Success rate"),
    "precision": ("Location error threshold (pixels)", "Precision"),
    "normalized_precision": ("Normalized location error threshold", "Normalized precision"),
}
_TITLES = {
    "success": "Success plot",
    "precision": "Precision plot",
    "normalized_precision": "Normalized precision plot",
}


def plot_curves(
    reports: Mapping[str, Mapping[str, Any]],
    kind: str,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Draw one plot kind (``success``, ``precision`` or ``normalized_precision``) for several trackers.

    Args:
        reports: ``{tracker label: report}`` (see `lorat_hf.evaluation.report`); trackers without that curve are left
            out. The legend shows ``[score] label`` sorted best first, the score being the report's headline metric.
        path: the PNG to write (atomically; replaced if it exists).

    Raises:
        ValueError: unknown ``kind``, or no report has that curve.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if kind not in PLOT_KINDS:
        raise ValueError(f"Unknown plot kind {kind!r}; choose one of {', '.join(PLOT_KINDS)}.")
    entries = []
    for label, report in reports.items():
        curve = report.get("curves", {}).get(kind)
        if not curve:
            continue
        score = report.get("metrics", {}).get(plot_score_key(report["protocol"], kind))
        values = [float("nan") if v is None else v for v in curve["values"]]
        decimals = 3 if report["protocol"] == "got10k" else 2
        entries.append(
            (float("-inf") if score is None else score, label, curve["thresholds"], values, score, decimals)
        )
    if not entries:
        raise ValueError(f"None of the reports has a {kind} curve.")
    entries.sort(key=lambda entry: entry[0], reverse=True)

    figure = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for _, label, thresholds, values, score, decimals in entries:
        shown = "-" if score is None else f"{score:.{decimals}f}"
        axes.plot(thresholds, values, linewidth=2, label=f"[{shown}] {label}")
    x_label, y_label = _AXES[kind]
    first = next(iter(reports.values()))
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_xlim(min(entries[0][2]), max(entries[0][2]))
    axes.set_ylim(0, 1 if first["protocol"] == "got10k" else 100)  # GOT-10k reports fractions, the others percent
    axes.grid(True, linestyle=":")
    axes.set_title(title or f"{_TITLES[kind]} on {first['dataset']} ({first['protocol']})")
    axes.legend(loc="lower left" if kind == "success" else "lower right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return write_text_atomic(path, buffer.getvalue())


def save_plots(
    reports: Mapping[str, Mapping[str, Any]], output_dir: str | os.PathLike, *, prefix: str = ""
) -> list[Path]:
    """Write ``<prefix>success.png``, ``<prefix>precision.png`` and ``<prefix>normalized_precision.png`` (when the
    reports have those curves) into ``output_dir``; returns the written paths."""
    written = []
    for kind in PLOT_KINDS:
        if any(report.get("curves", {}).get(kind) for report in reports.values()):
            written.append(plot_curves(reports, kind, Path(output_dir) / f"{prefix}{kind}.png"))
    return written
