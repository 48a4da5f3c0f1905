"""ONNX export of a merged LoRATv2 tracker: its streaming steps as graphs, the KV cache as explicit inputs/outputs.

`lorat_hf.export_onnx.export_onnx` (and `lorat-export`) call `export_loratv2_onnx` for a LoRATv2 tracker. The graphs
(`template.onnx`, `search.onnx`, phase 2's `reference.onnx`; see `lorat_hf.engine.backend_onnxruntime_loratv2`) are
exported from the fused model with a dynamic batch. The built-in parity check streams synthetic tracker crops through
torch (`init_template`, then per step `update_region(0)` in phase 2 and `track_region`) and through ONNX Runtime, each
over its own cache, for several steps at batch 1 and 3: score maps, boxes and the caches must agree, or the export
raises `ExportParityError` and writes nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from .engine.backend_onnxruntime_loratv2 import (
    KV_OUTPUTS,
    REFERENCE_GRAPH,
    SEARCH_GRAPH,
    SEARCH_OUTPUTS,
    STEP_INPUTS,
    TEMPLATE_GRAPH,
    TEMPLATE_INPUTS,
    OnnxLoratv2Network,
    loratv2_graph_files,
    stack_past,
)
from .export_onnx import (
    ExportParityError,
    ExportReport,
    ParityResult,
    compare_outputs,
    export_graph,
    quantize_int8,
    require_int8_box_parity,
    save_export_files,
    synthetic_tracker_inputs,
)
from .file_utils import staged_directory
from .modeling_loratv2 import Loratv2Model

logger = logging.getLogger(__name__)

KV_CACHE_TOLERANCE = 1e-3  # fp32 keys/values (activations of order 1-10)
NUM_CHECK_STEPS = 3


class Loratv2TemplateStep(nn.Module):
    """`(template crop, token types) -> (keys, values)` of the template chunk, `(layers, B, heads, T, head_dim)`."""

    def __init__(self, model: Loratv2Model):
        super().__init__()
        self.model = model

    def forward(
        self, template_pixel_values: torch.Tensor, template_token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.model.embeddings.embed_template(template_pixel_values, template_token_type_ids)
        _, keys, values = self.model.encode_chunk(0, tokens, decode=False)
        return torch.stack(keys), torch.stack(values)


class Loratv2RegionStep(nn.Module):
    """`(search crop, past keys, past values) -> [score_map, pred_boxes,] keys, values` of search region `region`
    (decoded when `decode`: the tracked region; keys/values only for phase 2's reference region)."""

    def __init__(self, model: Loratv2Model, region: int, decode: bool):
        super().__init__()
        self.model = model
        self.region = region
        self.decode = decode

    def forward(
        self, search_pixel_values: torch.Tensor, past_keys: torch.Tensor, past_values: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        tokens = self.model.embeddings.embed_search(self.region, search_pixel_values)
        hidden_states, keys, values = self.model.encode_chunk(
            self.region + 1, tokens, list(past_keys.unbind(0)), list(past_values.unbind(0)), self.decode
        )
        keys, values = torch.stack(keys), torch.stack(values)
        if not self.decode:
            return keys, values
        _, score_map, pred_boxes = self.model._decode(self.region, hidden_states)
        return score_map, pred_boxes, keys, values


def loratv2_check_inputs(model: Loratv2Model, num_samples: int, seed: int) -> dict[str, torch.Tensor]:
    """Synthetic tracker crops: template, token types, the tracked region's search crop and (phase 2) the reference
    region's crop (`reference_pixel_values`) of the same frames."""
    from .engine.loratv2 import Loratv2Backend

    backend = Loratv2Backend(model)
    inputs = synthetic_tracker_inputs(model.config, num_samples, seed, backend.default_image_processor())
    if backend.has_reference_region:
        processor = backend.reference_image_processor(backend.default_image_processor())
        reference = synthetic_tracker_inputs(model.config, num_samples, seed, processor)
        inputs["reference_pixel_values"] = reference["search_pixel_values"]
    return inputs


def export_loratv2_graphs(model: Loratv2Model, folder: Path, opset: int) -> dict[str, Path]:
    """Write the template, search and (phase 2) reference graphs of a fused fp32 model into `folder`."""
    config = model.config
    files = {step: folder / name for step, name in loratv2_graph_files(config).items()}
    sample = loratv2_check_inputs(model, 2, seed=1)
    template = tuple(sample[name] for name in TEMPLATE_INPUTS)
    export_graph(Loratv2TemplateStep(model), template, TEMPLATE_INPUTS, KV_OUTPUTS, files[TEMPLATE_GRAPH], opset)
    with torch.no_grad():
        cache = model.new_kv_cache(2)
        model.init_template(template[0], cache, template[1])
        last = config.num_search_regions - 1
        steps = [(SEARCH_GRAPH, last, True, sample["search_pixel_values"])]
        if REFERENCE_GRAPH in files:
            steps.append((REFERENCE_GRAPH, 0, False, sample["reference_pixel_values"]))
            model.update_region(0, sample["reference_pixel_values"], cache)
    for step, region, decode, pixels in steps:
        past = stack_past(cache, config.chunk_offsets[region + 1])
        export_graph(
            Loratv2RegionStep(model, region, decode),
            (pixels, *(torch.from_numpy(p) for p in past)),
            STEP_INPUTS,
            SEARCH_OUTPUTS if decode else KV_OUTPUTS,
            files[step],
            opset,
            batch_axes=(0, 1, 1),
        )
    return files


def check_loratv2_parity(
    model: Loratv2Model,
    network: OnnxLoratv2Network,
    inputs: dict[str, torch.Tensor],
    batch_sizes: tuple[int, ...] = (1, 3),
    num_steps: int = NUM_CHECK_STEPS,
) -> ParityResult:
    """Stream `inputs` through torch and ONNX Runtime (each over its own cache) for `num_steps` steps per batch;
    the worst distances of the outputs and of the final caches."""
    config = model.config
    last = config.num_search_regions - 1
    count = len(inputs["search_pixel_values"])
    search_size = max(config.search_size_wh)
    worst: ParityResult | None = None
    with torch.inference_mode():
        for batch_size in batch_sizes:
            for start in range(0, count, batch_size):
                rows = torch.arange(start, min(start + batch_size, count))
                caches = (model.new_kv_cache(len(rows)), network.new_kv_cache(len(rows)))
                for runner, cache in zip((model, network), caches, strict=True):
                    template = inputs["template_pixel_values"][rows]
                    runner.init_template(template, cache, inputs["template_token_type_ids"][rows])
                for step in range(num_steps):
                    frames = (rows + step) % count  # each step another crop
                    outputs = []
                    for runner, cache in zip((model, network), caches, strict=True):
                        if "reference_pixel_values" in inputs:
                            runner.update_region(0, inputs["reference_pixel_values"][frames], cache)
                        outputs.append(runner.track_region(last, inputs["search_pixel_values"][frames], cache))
                    reference, candidate = outputs
                    result = compare_outputs(
                        (reference.score_map, reference.pred_boxes),
                        (candidate.score_map.numpy(), candidate.pred_boxes.numpy()),
                        search_size,
                    )
                    worst = result if worst is None else worst.worst(result)
                torch_cache, ort_cache = caches
                difference = max(
                    float((a.float() - b).abs().max())
                    for a, b in zip(
                        torch_cache.keys + torch_cache.values, ort_cache.keys + ort_cache.values, strict=True
                    )
                )
                worst.kv_cache_max_abs = max(worst.kv_cache_max_abs or 0.0, difference)
    worst.batch_sizes = list(batch_sizes)
    return worst


def export_loratv2_onnx(
    model: Loratv2Model,
    source: nn.Module | str | os.PathLike,
    output_dir: str | os.PathLike,
    quantize: str,
    opset: int,
    tolerance: dict[str, float],
    int8_tolerance: dict[str, float],
    num_check_samples: int,
    overwrite: bool,
) -> ExportReport:
    """The LoRATv2 part of `lorat_hf.export_onnx.export_onnx` (same arguments; `model` fused fp32, `source` what the
    caller passed)."""
    if quantize == "static":
        raise ValueError("LoRATv2 exports take quantize='dynamic' (or 'none'); static calibration is LoRAT-only.")
    tolerance = {"kv_cache": KV_CACHE_TOLERANCE, **tolerance}
    check_inputs = loratv2_check_inputs(model, num_check_samples, seed=2)
    output_dir = Path(output_dir)
    with staged_directory(output_dir, overwrite=overwrite) as staging:
        files = export_loratv2_graphs(model, staging, opset)
        model.config.save_pretrained(staging)  # the network reads it back
        fp32 = check_loratv2_parity(model, OnnxLoratv2Network(staging), check_inputs)
        logger.info("ONNX Runtime fp32 vs torch (streamed): %s", fp32)
        if (
            fp32.score_map_max_abs > tolerance["score_map"]
            or fp32.box_px_max > tolerance["box_px"]
            or fp32.kv_cache_max_abs > tolerance["kv_cache"]
        ):
            raise ExportParityError(
                f"ONNX Runtime's streamed outputs differ from torch's beyond tolerance ({tolerance}): score map by "
                f"{fp32.score_map_max_abs:.3g}, boxes by {fp32.box_px_max:.3g} px, KV cache by "
                f"{fp32.kv_cache_max_abs:.3g}. Nothing was written; try another --opset, or report the "
                "torch/onnxruntime versions."
            )
        int8 = None
        if quantize == "dynamic":
            for step, name in loratv2_graph_files(model.config, int8=True).items():
                quantize_int8(files[step], staging / name, "dynamic")
            int8 = check_loratv2_parity(model, OnnxLoratv2Network(staging, int8=True), check_inputs)
            logger.info("ONNX Runtime int8 vs torch fp32 (streamed): %s", int8)
            require_int8_box_parity(int8, int8_tolerance["box_px"], "int8 graphs'", "export fp32 instead")
        report = ExportReport(str(output_dir), opset, fp32, int8, quantize, tolerance, int8_tolerance)
        save_export_files(staging, model, source, report)
    return report


__all__ = [
    "Loratv2TemplateStep",
    "Loratv2RegionStep",
    "check_loratv2_parity",
    "export_loratv2_graphs",
    "export_loratv2_onnx",
    "loratv2_check_inputs",
]
