"""The evaluation report: a JSON document with a fixed set of keys, and the table printed from it.

```json
{"protocol": "ostrack", "dataset": "lasot", "num_sequences": 280,
 "metrics": {"success_auc": 71.05, "success_rate_50": ..., "success_rate_75": ..., "precision": ..., "normalized_precision": ...},
 "per_sequence": {"airplane-1": {"success_auc": ..., ...}, ...},
 "curves": {"success": {"thresholds": [...], "values": [...]}, "precision": {...}, "normalized_precision": {...}},
 "skipped_sequences": [...], "details": {...}, "split": "test", "results": "path/to/results"}
```

Metric keys per protocol: `success_auc`, `success_rate_50`, `success_rate_75`, `precision`, `normalized_precision` in
percent for `pytracking` / `ostrack` / `lasot-toolkit` (which adds `normalized_precision_auc`, TNL2K's area over
[0, 0.5]); `average_overlap`, `success_rate_50`, `success_rate_75`, `speed_fps` as fractions for `got10k` (as that
toolkit reports them); `success`, `precision`, `normalized_precision`, `coverage` in percent for `trackingnet`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .protocols import EvaluationResult
from .results_io import write_text_atomic

REPORT_KEYS = ("protocol", "dataset", "num_sequences", "metrics", "per_sequence", "curves")

# (metric key, column title, decimals) in printing order, per protocol family
_COLUMNS = {
    "pytracking": (
        ("success_auc", "AUC", 2),
        ("success_rate_50", "OP50", 2),
        ("success_rate_75", "OP75", 2),
        ("precision", "Precision", 2),
        ("normalized_precision", "Norm Precision", 2),
    ),
    "lasot-toolkit": (
        ("success_auc", "AUC", 2),
        ("success_rate_50", "SR50", 2),
        ("success_rate_75", "SR75", 2),
        ("precision", "Precision", 2),
        ("normalized_precision", "Norm Precision", 2),
        ("normalized_precision_auc", "Norm Prec AUC", 2),
    ),
    "got10k": (
        ("average_overlap", "AO", 3),
        ("success_rate_50", "SR0.50", 3),
        ("success_rate_75", "SR0.75", 3),
        ("speed_fps", "FPS", 2),
    ),
    "trackingnet": (
        ("success", "Success", 2),
        ("precision", "Precision", 2),
        ("normalized_precision", "Norm Precision", 2),
        ("coverage", "Coverage", 2),
    ),
}
_COLUMNS["ostrack"] = _COLUMNS["pytracking"]


def plot_score_key(protocol: str, plot: str) -> str:
    """The metric a plot's legend shows: ``success_auc`` for success plots (GOT-10k ``average_overlap``, TrackingNet
    ``success``), else the plot's own name (``precision``, ``normalized_precision``)."""
    if plot == "success":
        return {"got10k": "average_overlap", "trackingnet": "success"}.get(protocol, "success_auc")
    return plot


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf floats become null, numpy scalars become Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_report(result: EvaluationResult, **extra: Any) -> dict[str, Any]:
    """The report dictionary of an `EvaluationResult`; ``extra`` keys (``split``, ``results``, ...) are appended."""
    report = {
        "protocol": result.protocol,
        "dataset": result.dataset,
        "num_sequences": result.num_sequences,
        "metrics": result.metrics,
        "per_sequence": result.per_sequence,
        "curves": result.curves,
        "skipped_sequences": list(result.skipped),
        "details": result.details,
    }
    report.update(extra)
    return _clean(report)


def write_report(path: str | os.PathLike, report: Mapping[str, Any], *, overwrite: bool = True) -> Path:
    """Write the report as indented JSON, atomically (strict JSON: no NaN)."""
    missing = [key for key in REPORT_KEYS if key not in report]
    if missing:
        raise ValueError(f"A report needs the keys {', '.join(REPORT_KEYS)}; missing {', '.join(missing)}.")
    text = json.dumps(_clean(dict(report)), indent=2, allow_nan=False) + "\n"
    return write_text_atomic(path, text, overwrite=overwrite)


def load_report(path: str | os.PathLike) -> dict[str, Any]:
    """Read a report written by `write_report`."""
    with open(path, encoding="utf-8") as stream:
        report = json.load(stream)
    missing = [key for key in REPORT_KEYS if key not in report]
    if missing:
        raise ValueError(f"{path} is not an evaluation report (missing {', '.join(missing)}).")
    return report


def format_table(reports: Mapping[str, Mapping[str, Any]], title: str | None = None) -> str:
    """A fixed-width table, one row per report (tracker), one column per printed metric of the first report's protocol.

    Missing values print as ``-``; percent metrics with 2 decimals, GOT-10k fractions with 3 (as the toolkits print).
    """
    if not reports:
        return ""
    first = next(iter(reports.values()))
    protocol = first["protocol"]
    columns = _COLUMNS.get(protocol, _COLUMNS["pytracking"])
    title = title or f"{first['dataset']} ({protocol}, {first['num_sequences']} sequences)"
    name_width = max([len(name) for name in reports] + [len(title)]) + 2
    widths = [max(10, len(header) + 2) for _, header, _ in columns]
    header = f"{title:<{name_width}}|" + "".join(f" {h:<{w}}|" for (_, h, _), w in zip(columns, widths, strict=True))
    lines = [header, "-" * len(header)]
    for name, report in reports.items():
        cells = []
        for (key, _, decimals), width in zip(columns, widths, strict=True):
            value = report.get("metrics", {}).get(key)
            text = "-" if value is None else f"{value:.{decimals}f}"
            cells.append(f" {text:<{width}}|")
        lines.append(f"{name:<{name_width}}|" + "".join(cells))
    return "\n".join(lines)
