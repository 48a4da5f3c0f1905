"""Evaluation results of a tracker as a model card shows them: benchmarks, metrics in percent, `model-index` entries."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from huggingface_hub import EvalResult

from .common import _normalise, _read_json

TASK_TYPE, TASK_NAME = "video-object-tracking", "Single Object Tracking"

# Benchmarks: normalised name -> (display name, model-index dataset type: the Hub dataset id where one is known).
BENCHMARKS: dict[str, tuple[str, str]] = {
    "lasot": ("LaSOT", "l-lt/LaSOT"),
    "lasotext": ("LaSOT_ext", "l-lt/LaSOT-ext"),
    "lasotextension": ("LaSOT_ext", "l-lt/LaSOT-ext"),
    "got10k": ("GOT-10k", "got-10k"),
    "trackingnet": ("TrackingNet", "trackingnet"),
    "tnl2k": ("TNL2K", "tnl2k"),
    "vasttrack": ("VastTrack", "vasttrack"),
    "uav123": ("UAV123", "uav123"),
    "nfs": ("NfS", "nfs"),
    "otb": ("OTB100", "otb100"),
    "otb100": ("OTB100", "otb100"),
}
# model-index metric types (all in percent) and their display names, in table order.
METRIC_NAMES: dict[str, str] = {
    "success_auc": "Success (AUC)",
    "normalized_precision": "Normalized precision",
    "precision": "Precision",
    "average_overlap": "Average overlap",
    "success_rate_50": "Success rate @0.5",
    "success_rate_75": "Success rate @0.75",
}
_REPORT_METRIC_ALIASES = {"success": "success_auc", "auc": "success_auc", "ao": "average_overlap"}
# lorat-eval reports the GOT-10k protocol in fractions, as the GOT-10k toolkit does; cards use percent throughout.
_FRACTION_PROTOCOLS = {"got10k"}


@dataclass
class TrackingResult:
    """Scores of a tracker on one benchmark, in percent, as shown in a card and its `model-index`.

    Args:
        dataset: display name, e.g. `"LaSOT"`.
        dataset_type: model-index dataset type, the Hub dataset id where one exists (`"l-lt/LaSOT"`).
        metrics: metric type (a key of `METRIC_NAMES`) -> value in percent.
        split: benchmark split.
        protocol: evaluation protocol (e.g. `"lasot"`, `"got10k"`), shown in the card.
        num_sequences: sequences evaluated, when known.
        source_name, source_url: where the numbers come from (`lorat-eval`, a paper).
        confirmed: False for numbers not checked against their primary source: shown and flagged in the card,
            kept out of the machine-readable `model-index`.
    """

    dataset: str
    dataset_type: str
    metrics: dict[str, float]
    split: str = "test"
    protocol: str | None = None
    num_sequences: int | None = None
    source_name: str = "lorat-eval"
    source_url: str | None = None
    confirmed: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(METRIC_NAMES))
        if unknown:
            raise ValueError(f"Unknown metric types {unknown} for {self.dataset}; use {list(METRIC_NAMES)}.")
        for name, value in self.metrics.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{self.dataset} {name} must be a finite number, got {value!r}.")

    @classmethod
    def for_benchmark(cls, benchmark: str, metrics: Mapping[str, float], **kwargs: Any) -> TrackingResult:
        """A result for a known benchmark name (`"LaSOT"`, `"lasot_ext"`, `"GOT-10k"`, ...)."""
        display, dataset_type = benchmark_names(benchmark)
        return cls(dataset=display, dataset_type=dataset_type, metrics=dict(metrics), **kwargs)

    @classmethod
    def from_report(
        cls,
        report: Mapping[str, Any] | str | os.PathLike,
        source_name: str = "lorat-eval",
        source_url: str | None = None,
    ) -> TrackingResult:
        """Read a `lorat-eval` report: `{"protocol", "dataset", "num_sequences", "metrics": {...}, ...}`.

        Known metrics are kept (`success` of TrackingNet becomes `success_auc`); GOT-10k fractions become percent.
        """
        where = "The evaluation report"
        if not isinstance(report, Mapping):
            where = str(report)
            report = _read_json(report, "evaluation report")
            if not isinstance(report, Mapping):
                raise ValueError(f"{where} must hold one JSON object (a lorat-eval report).")
        missing = [key for key in ("dataset", "metrics") if key not in report]
        if missing or not isinstance(report.get("metrics"), Mapping):
            raise ValueError(
                f"{where} is not a lorat-eval report: missing {missing or ['metrics (an object)']}; expected "
                '{"protocol", "dataset", "num_sequences", "metrics": {"success_auc", "precision", ...}}.'
            )
        protocol = report.get("protocol")
        scale = 100.0 if _normalise(str(protocol or "")) in _FRACTION_PROTOCOLS else 1.0
        metrics: dict[str, float] = {}
        for key, value in report["metrics"].items():
            metric = _REPORT_METRIC_ALIASES.get(key, key)
            if metric not in METRIC_NAMES or metric in metrics or value is None:
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}: metric {key!r} is {value!r}, not a finite number.")
            metrics[metric] = float(value) * scale
        if not metrics:
            raise ValueError(
                f"{where} has none of the metrics {list(METRIC_NAMES)} (found {list(report['metrics'])})."
            )
        display, dataset_type = benchmark_names(str(report["dataset"]))
        return cls(
            dataset=display,
            dataset_type=dataset_type,
            metrics=metrics,
            split=str(report.get("split") or "test"),
            protocol=str(protocol) if protocol is not None else None,
            num_sequences=report.get("num_sequences"),
            source_name=source_name,
            source_url=source_url,
        )

    def to_eval_results(self) -> list[EvalResult]:
        """One `EvalResult` per metric (values rounded to 0.01 %); empty for unconfirmed results.

        The source goes into the metadata only with a URL (the Hub requires both); the card's table always names it.
        """
        if not self.confirmed:
            return []
        return [
            EvalResult(
                task_type=TASK_TYPE,
                task_name=TASK_NAME,
                dataset_type=self.dataset_type,
                dataset_name=self.dataset,
                dataset_split=self.split,
                metric_type=metric,
                metric_name=METRIC_NAMES[metric],
                metric_value=round(float(value), 2),
                # model-index sources need a URL; without one the source is named in the card's table only
                source_name=self.source_name if self.source_url else None,
                source_url=self.source_url,
            )
            for metric, value in self.metrics.items()
        ]


def benchmark_names(name: str) -> tuple[str, str]:
    """`(display name, model-index dataset type)` of a benchmark; unknown names are kept as they are."""
    return BENCHMARKS.get(_normalise(name), (name, _normalise(name) or name))


def _as_results(items: Sequence[TrackingResult | Mapping[str, Any] | str | os.PathLike]) -> list[TrackingResult]:
    results = []
    for item in items:
        if isinstance(item, TrackingResult):
            results.append(item)
        elif isinstance(item, (str, os.PathLike)):
            loaded = _read_json(item, "evaluation report")
            reports = loaded if isinstance(loaded, list) else [loaded]
            results.extend(TrackingResult.from_report(r) for r in reports)
        else:
            results.append(TrackingResult.from_report(item))
    return results


__all__ = ["BENCHMARKS", "METRIC_NAMES", "TASK_NAME", "TASK_TYPE", "TrackingResult", "benchmark_names"]
