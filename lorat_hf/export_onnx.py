"""ONNX export of the merged LoRAT forward, with a built-in ONNX Runtime parity check, and int8 quantisation.

    from lorat_hf.export_onnx import export_onnx
    report = export_onnx("path/to/tracker", "tracker-onnx", quantize="dynamic")

The exported graph is the tracker forward: `template_pixel_values (B, 3, Hz, Wz)`, `search_pixel_values
(B, 3, Hx, Wx)` (normalised crops, float32) and `template_token_type_ids (B, zH, zW)` (int64) -> `score_map
(B, H, W)` logits and `pred_boxes (B, H, W, 4)` normalised `xyxy`, with a dynamic batch. The output folder holds
`model.onnx` (and `model_int8.onnx` when quantised) beside the tracker's `config.json` and `preprocessor_config.json`,
so that `LoraTracker.from_pretrained(folder, backend="onnxruntime")` tracks with it.

Before anything is written, ONNX Runtime runs the exported graph on tracker crops of synthetic videos (at batch 1 and
at another batch size) and its outputs are compared with the torch model's; beyond tolerance the export raises
`ExportParityError` and leaves no folder behind. Needs the `onnx` extra: `pip install "lorat_hf[onnx]"`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .engine.backend_onnxruntime import (
    INPUT_NAMES,
    ONNX_INT8_MODEL_NAME,
    ONNX_MODEL_NAME,
    OUTPUT_NAMES,
    onnxruntime_session,
    require_onnx,
)
from .file_utils import staged_directory, write_json_atomic

logger = logging.getLogger(__name__)

EXPORT_REPORT_NAME = "export_report.json"
QUANTIZE_CHOICES = ("none", "dynamic", "static")
DEFAULT_OPSET = 18
# fp32: ONNX Runtime's kernels sum in other orders than torch's (differences ~1e-6 on logits of order 10)
FP32_TOLERANCE = {"score_map": 1e-3, "box_px": 0.05}
# int8: quantisation moves logits and boxes; the check bounds the box a tracker reads (at torch's best cell)
INT8_TOLERANCE = {"box_px": 4.0}


class ExportParityError(RuntimeError):
    """ONNX Runtime's outputs differ from the torch model's beyond tolerance; nothing was written."""


def require_int8_box_parity(int8: ParityResult, box_px_tolerance: float, whose: str, remedy: str) -> None:
    """Raise `ExportParityError` when the int8 best-cell boxes are further than `box_px_tolerance` px from torch's;
    `whose` names the graphs ("int8 graph's"), `remedy` says what to try instead."""
    if int8.best_cell_box_px_max > box_px_tolerance:
        raise ExportParityError(
            f"The {whose} boxes differ from torch's by {int8.best_cell_box_px_max:.3g} px at the best cell "
            f"(tolerance {box_px_tolerance} px). Nothing was written; {remedy}."
        )


class TrackerForward(nn.Module):
    """The tracker forward as `(template, search, token types) -> (score_map, pred_boxes)`, for export."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self,
        template_pixel_values: torch.Tensor,
        search_pixel_values: torch.Tensor,
        template_token_type_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(
            template_pixel_values=template_pixel_values,
            search_pixel_values=search_pixel_values,
            template_token_type_ids=template_token_type_ids,
        )
        return output.score_map, output.pred_boxes


def synthetic_tracker_inputs(model_config, num_samples: int, seed: int = 0, processor=None) -> dict[str, torch.Tensor]:
    """`num_samples` real tracker inputs: template and search crops (search centred near the target with jitter) of
    synthetic videos, cut by `processor` (default: the image processor of `model_config`). Used for parity checks and
    int8 calibration."""
    from .data import SyntheticVideoConfig, generate_sequence
    from .image_processing_lora_tracker import LoraTrackerImageProcessor

    processor = processor or LoraTrackerImageProcessor.from_tracker_config(model_config)
    rng = np.random.default_rng(seed)
    templates, token_types, searches = [], [], []
    video_config = SyntheticVideoConfig(frame_size=(256, 192), num_frames=8)
    for index in range(num_samples):
        sequence = generate_sequence(video_config, seed=seed * 1000 + index)
        template = processor.prepare_template(sequence.frames[0], sequence.boxes_xyxy[0])
        frame_index = int(rng.integers(1, len(sequence.frames)))
        box = sequence.boxes_xyxy[frame_index].copy()
        size = box[2:] - box[:2]
        box += np.tile(rng.normal(0.0, 0.15, 2) * size, 2)  # the previous prediction is never exact
        search = processor.prepare_search(sequence.frames[frame_index], box, template.padding_color)
        templates.append(template.pixel_values)
        token_types.append(template.token_type_ids)
        searches.append(search.pixel_values)
    return {
        "template_pixel_values": torch.stack(templates),
        "search_pixel_values": torch.stack(searches),
        "template_token_type_ids": torch.stack(token_types),
    }


def _run_session(session, inputs: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    feeds = {name: inputs[name].cpu().numpy() for name in INPUT_NAMES}
    score_map, pred_boxes = session.run(list(OUTPUT_NAMES), feeds)
    return score_map, pred_boxes


@dataclass
class ParityResult:
    """How far ONNX Runtime's outputs are from the torch model's on the check inputs.

    `score_map_max_abs`: largest logit difference; `box_px_max`: largest box-coordinate difference over every cell,
    in search-crop pixels; `best_cell_box_px_max`: the same at torch's highest-scoring cell (what a tracker reads);
    `best_cell_agreement`: share of samples whose highest-scoring cell is the same.
    """

    score_map_max_abs: float
    box_px_max: float
    best_cell_box_px_max: float
    best_cell_agreement: float
    batch_sizes: list[int] = field(default_factory=list)
    kv_cache_max_abs: float | None = None  # LoRATv2: largest key/value difference of the streamed caches

    def worst(self, other: ParityResult) -> ParityResult:
        """The larger distance of each kind (the lower agreement) of two results."""
        caches = [c for c in (self.kv_cache_max_abs, other.kv_cache_max_abs) if c is not None]
        return ParityResult(
            max(self.score_map_max_abs, other.score_map_max_abs),
            max(self.box_px_max, other.box_px_max),
            max(self.best_cell_box_px_max, other.best_cell_box_px_max),
            min(self.best_cell_agreement, other.best_cell_agreement),
            self.batch_sizes,
            max(caches) if caches else None,
        )


def compare_outputs(
    reference: tuple[torch.Tensor, torch.Tensor], candidate: tuple[np.ndarray, np.ndarray], search_size: int
) -> ParityResult:
    """Distances between torch outputs `(score_map, pred_boxes)` and another backend's (see `ParityResult`)."""
    score_ref, boxes_ref = (t.detach().float().cpu() for t in reference)
    score, boxes = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in candidate)
    best = score_ref.flatten(1).argmax(1)
    rows = torch.arange(len(best))
    box_error = (boxes - boxes_ref).abs() * search_size
    return ParityResult(
        score_map_max_abs=float((score - score_ref).abs().max()),
        box_px_max=float(box_error.max()),
        best_cell_box_px_max=float(box_error.flatten(1, 2)[rows, best].max()),
        best_cell_agreement=float((score.flatten(1).argmax(1) == best).float().mean()),
    )


def check_parity(
    model: nn.Module,
    onnx_path: str | os.PathLike,
    inputs: dict[str, torch.Tensor],
    batch_sizes: tuple[int, ...] = (1, 3),
) -> ParityResult:
    """Run the torch model and ONNX Runtime on `inputs` in chunks of each batch size; the worst distances."""
    session = onnxruntime_session(onnx_path)
    search_size = max(model.config.search_size_wh)
    worst: ParityResult | None = None
    with torch.inference_mode():
        for batch_size in batch_sizes:
            for start in range(0, len(inputs["search_pixel_values"]), batch_size):
                chunk = {name: inputs[name][start : start + batch_size] for name in INPUT_NAMES}
                reference = TrackerForward(model)(**chunk)
                result = compare_outputs(reference, _run_session(session, chunk), search_size)
                worst = result if worst is None else worst.worst(result)
    worst.batch_sizes = list(batch_sizes)
    return worst


def _export_graph(model: nn.Module, path: Path, opset: int) -> None:
    sample = synthetic_tracker_inputs(model.config, 2, seed=1)
    export_graph(
        TrackerForward(model), tuple(sample[name] for name in INPUT_NAMES), INPUT_NAMES, OUTPUT_NAMES, path, opset
    )


def export_graph(
    module: nn.Module,
    sample: tuple[torch.Tensor, ...],
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    path: Path,
    opset: int,
    batch_axes: tuple[int, ...] | None = None,
) -> None:
    """Export `module(*sample)` to one ONNX file with a dynamic batch (axis `batch_axes[i]` of input i, default 0)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    batch_axes = batch_axes or (0,) * len(input_names)
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(
            module.eval(),
            sample,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=tuple({axis: batch} for axis in batch_axes),
            opset_version=opset,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    program.save(str(path), external_data=False)


# int8 weights get one scale per output channel, and the MatMuls of these modules stay fp32: on the demo tracker the
# per-tensor scales and the box head's int8 MatMuls gave most of the box error (benchmarks/RESULTS.md, "Backends"),
# while the head is ~2% of a B-224 forward's FLOPs
INT8_FP32_MODULES = ("tracker_head",)


def module_matmul_nodes(model_path: str | os.PathLike, module_names: tuple[str, ...]) -> list[str]:
    """Names of the MatMul nodes of an exported graph that belong to the model's submodules `module_names` (e.g.
    `"tracker_head"`), read from the module scopes torch.onnx.export records in each node's metadata."""
    import onnx

    wanted = tuple(f"model.{name}" for name in module_names)
    nodes = []
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
        if node.op_type == "MatMul" and any(f"'{scope}'" in scopes for scope in wanted):
            nodes.append(node.name)
    return nodes


def quantize_int8(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    method: str = "dynamic",
    calibration: dict[str, torch.Tensor] | None = None,
    per_channel: bool = True,
    fp32_modules: tuple[str, ...] = INT8_FP32_MODULES,
) -> Path:
    """Quantise an exported fp32 graph's weight MatMuls to int8 with ONNX Runtime: `"dynamic"` (activations
    quantised per batch at run time) or `"static"` (activation ranges calibrated on `calibration` inputs).

    `per_channel`: one weight scale per output channel (else one per tensor); `fp32_modules`: submodules whose
    MatMuls stay fp32 (default: the tracker head)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    if method not in QUANTIZE_CHOICES[1:]:
        raise ValueError(f"Unknown quantisation {method!r}; choose one of {QUANTIZE_CHOICES[1:]}.")
    if method == "static" and calibration is None:
        raise ValueError("Static quantisation needs calibration inputs.")
    options = dict(
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        per_channel=per_channel,
        nodes_to_exclude=module_matmul_nodes(source, fp32_modules),
        extra_options={"MatMulConstBOnly": True},  # attention scores and values stay fp32
    )
    if method == "dynamic":
        quantize_dynamic(str(source), str(destination), **options)
        return Path(destination)

    class Reader(CalibrationDataReader):
        def __init__(self):
            count = len(calibration["search_pixel_values"])
            self._items = iter(
                [{name: calibration[name][i : i + 1].numpy() for name in INPUT_NAMES} for i in range(count)]
            )

        def get_next(self):
            return next(self._items, None)

    quantize_static(str(source), str(destination), Reader(), activation_type=QuantType.QInt8, **options)
    return Path(destination)


@dataclass
class ExportReport:
    """What `export_onnx` wrote and how close ONNX Runtime is to torch (also saved as `export_report.json`)."""

    output_dir: str
    opset: int
    fp32: ParityResult
    int8: ParityResult | None = None
    quantize: str = "none"
    tolerance: dict[str, float] = field(default_factory=dict)
    int8_tolerance: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load_merged_model(model_or_path: nn.Module | str | os.PathLike, hub_kwargs: dict[str, Any]) -> nn.Module:
    from .adapters import load_tracker_model
    from .modeling_lora_tracker import LoraTrackerModel
    from .modeling_lora_tracker_fused import fuse_for_inference
    from .modeling_loratv2 import Loratv2Model

    if isinstance(model_or_path, (str, os.PathLike)):
        model = load_tracker_model(os.fspath(model_or_path), merge=True, **hub_kwargs)
    else:
        model = model_or_path
        if hasattr(model, "merge_and_unload"):
            raise TypeError("Merge the adapters first (model.merge_and_unload()) or pass the tracker folder.")
    if not isinstance(model, (LoraTrackerModel, Loratv2Model)):
        raise TypeError(
            f"ONNX export supports LoRAT and LoRATv2 trackers (LoraTrackerModel, Loratv2Model), got "
            f"{type(model).__name__}."
        )
    if model.dtype != torch.float32:
        raise ValueError(f"Export an fp32 model (got {model.dtype}); int8 comes from quantize='dynamic'/'static'.")
    return fuse_for_inference(model.cpu())


def export_onnx(
    model_or_path: nn.Module | str | os.PathLike,
    output_dir: str | os.PathLike,
    quantize: str = "none",
    opset: int = DEFAULT_OPSET,
    tolerance: dict[str, float] | None = None,
    int8_tolerance: dict[str, float] | None = None,
    num_check_samples: int = 6,
    overwrite: bool = False,
    **hub_kwargs: Any,
) -> ExportReport:
    """Export a merged LoRAT tracker to ONNX in `output_dir`, check it with ONNX Runtime, optionally quantise it.

    A LoRATv2 tracker is exported as its streaming steps with the KV cache as explicit tensors and checked over
    several streamed steps (`lorat_hf.export_onnx_loratv2`; int8: `"dynamic"` only).

    Args:
        model_or_path: a `LoraTrackerModel` / `Loratv2Model` (merged, fp32) or a tracker folder / Hub repo id
            (merged at load).
        output_dir: folder to create (`model.onnx`, `model_int8.onnx`, `config.json`, `preprocessor_config.json`,
            `export_report.json`); an existing non-empty folder needs `overwrite=True`.
        quantize: `"none"`, `"dynamic"` or `"static"` (calibrated on synthetic tracker crops) int8 MatMuls.
        opset: ONNX opset of the graph.
        tolerance: fp32 bounds, `{"score_map": logits, "box_px": search-crop px}` (default `FP32_TOLERANCE`).
        int8_tolerance: int8 bound on the box at torch's best cell, `{"box_px": px}` (default `INT8_TOLERANCE`).
        num_check_samples: synthetic tracker crops the parity check runs (at batch 1 and 3).
        overwrite: replace an existing `output_dir`.
    Raises:
        ExportParityError: ONNX Runtime disagrees with torch beyond tolerance (nothing is written).
    """
    require_onnx()
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}, got {quantize!r}.")
    tolerance = {**FP32_TOLERANCE, **(tolerance or {})}
    int8_tolerance = {**INT8_TOLERANCE, **(int8_tolerance or {})}
    model = _load_merged_model(model_or_path, hub_kwargs)
    if model.config.model_type == "loratv2":
        from .export_onnx_loratv2 import export_loratv2_onnx

        return export_loratv2_onnx(
            model, model_or_path, output_dir, quantize, opset, tolerance, int8_tolerance, num_check_samples, overwrite
        )
    check_inputs = synthetic_tracker_inputs(model.config, num_check_samples, seed=2)
    output_dir = Path(output_dir)
    with staged_directory(output_dir, overwrite=overwrite) as staging:
        onnx_path = staging / ONNX_MODEL_NAME
        _export_graph(model, onnx_path, opset)
        fp32 = check_parity(model, onnx_path, check_inputs)
        logger.info("ONNX Runtime fp32 vs torch: %s", fp32)
        if fp32.score_map_max_abs > tolerance["score_map"] or fp32.box_px_max > tolerance["box_px"]:
            raise ExportParityError(
                f"ONNX Runtime's outputs differ from torch's beyond tolerance ({tolerance}): score map by "
                f"{fp32.score_map_max_abs:.3g}, boxes by {fp32.box_px_max:.3g} px. Nothing was written; try another "
                "--opset, or report the torch/onnxruntime versions."
            )
        int8 = None
        if quantize != "none":
            calibration = synthetic_tracker_inputs(model.config, 16, seed=3) if quantize == "static" else None
            int8_path = quantize_int8(onnx_path, staging / ONNX_INT8_MODEL_NAME, quantize, calibration)
            int8 = check_parity(model, int8_path, check_inputs)
            logger.info("ONNX Runtime int8 vs torch fp32: %s", int8)
            require_int8_box_parity(int8, int8_tolerance["box_px"], "int8 graph's", "try quantize='static' or fp32")
        report = ExportReport(str(output_dir), opset, fp32, int8, quantize, tolerance, int8_tolerance)
        save_export_files(staging, model, model_or_path, report)
    return report


def save_export_files(
    staging: Path, model: nn.Module, model_or_path: nn.Module | str | os.PathLike, report: ExportReport
) -> None:
    """Write the tracker config, its image processor (the source folder's when it has one) and the report."""
    from .image_processing_lora_tracker import LoraTrackerImageProcessor

    model.config.save_pretrained(staging)
    processor = None
    if isinstance(model_or_path, (str, os.PathLike)) and os.path.isfile(
        os.path.join(model_or_path, "preprocessor_config.json")
    ):
        processor = LoraTrackerImageProcessor.from_pretrained(os.fspath(model_or_path))
    (processor or LoraTrackerImageProcessor.from_tracker_config(model.config)).save_pretrained(staging)
    write_json_atomic(staging / EXPORT_REPORT_NAME, report.to_dict())


def read_export_report(folder: str | os.PathLike) -> dict[str, Any]:
    """The `export_report.json` of an export folder."""
    return json.loads((Path(folder) / EXPORT_REPORT_NAME).read_text(encoding="utf-8"))


__all__ = [
    "export_onnx",
    "quantize_int8",
    "module_matmul_nodes",
    "INT8_FP32_MODULES",
    "check_parity",
    "compare_outputs",
    "synthetic_tracker_inputs",
    "ExportParityError",
    "ExportReport",
    "ParityResult",
    "TrackerForward",
    "export_graph",
    "ONNX_MODEL_NAME",
    "ONNX_INT8_MODEL_NAME",
]
