"""ONNX Runtime backend: an exported tracker (`lorat-export`) behind the torch model's call signature.

`OnnxRuntimeTrackerModel(folder)` is what the tracking engine calls instead of a `LoraTrackerModel`: same `config`,
same keyword inputs, a `LoraTrackerOutput` with `score_map` and `pred_boxes`; everything else (crops, decoding,
states) is the engine's. `LoraTracker.from_pretrained(folder, backend="onnxruntime")` (or `"onnxruntime-int8"`)
builds one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .configuration_lora_tracker import LoraTrackerConfig
from .export_onnx import INPUT_NAMES, ONNX_INT8_MODEL_NAME, ONNX_MODEL_NAME, _onnxruntime_session, require_onnx
from .modeling_lora_tracker import LoraTrackerOutput

BACKENDS = ("torch", "onnxruntime", "onnxruntime-int8")
BACKEND_FILES = {"onnxruntime": ONNX_MODEL_NAME, "onnxruntime-int8": ONNX_INT8_MODEL_NAME}


class OnnxRuntimeTrackerModel(nn.Module):
    """An exported tracker graph run by ONNX Runtime on the CPU, called like a `LoraTrackerModel` (inference only).

    Args:
        folder: an export folder (`model.onnx`, `config.json`, ...; see `lorat_hf.export_onnx`).
        file_name: the graph to run: `model.onnx` (fp32) or `model_int8.onnx`.
        num_threads: ONNX Runtime intra-op threads (default: torch's thread count).
    """

    def __init__(self, folder: str | os.PathLike, file_name: str = ONNX_MODEL_NAME, num_threads: int | None = None):
        super().__init__()
        require_onnx()
        folder = Path(folder)
        path = folder / file_name
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} has no {file_name}: export the tracker first with `lorat-export --model <tracker> "
                f"--output {folder}`" + (" --quantize dynamic" if file_name == ONNX_INT8_MODEL_NAME else "") + "."
            )
        self.config = LoraTrackerConfig.from_pretrained(folder)
        self.onnx_path = path
        self.session = _onnxruntime_session(path, num_threads)

    def forward(
        self,
        template_pixel_values: torch.Tensor,
        search_pixel_values: torch.Tensor,
        template_token_type_ids: torch.Tensor,
        **kwargs: Any,
    ) -> LoraTrackerOutput:
        """Inputs as `LoraTrackerModel.forward` (float32 CPU tensors); `score_map (B, H, W)`, `pred_boxes (B, H, W, 4)`."""
        inputs = (template_pixel_values, search_pixel_values, template_token_type_ids)
        feeds = {
            name: tensor.detach().cpu().to(torch.int64 if name.endswith("ids") else torch.float32).numpy()
            for name, tensor in zip(INPUT_NAMES, inputs, strict=True)
        }
        score_map, pred_boxes = self.session.run(["score_map", "pred_boxes"], feeds)
        return LoraTrackerOutput(score_map=torch.from_numpy(score_map), pred_boxes=torch.from_numpy(pred_boxes))


def load_onnxruntime_model(
    folder: str | os.PathLike, backend: str = "onnxruntime", num_threads: int | None = None
) -> OnnxRuntimeTrackerModel:
    """The `OnnxRuntimeTrackerModel` of an export folder for `backend` (`"onnxruntime"` or `"onnxruntime-int8"`)."""
    if backend not in BACKEND_FILES:
        raise ValueError(f"Unknown ONNX Runtime backend {backend!r}; choose one of {sorted(BACKEND_FILES)}.")
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"The onnxruntime backend reads a local export folder; {os.fspath(folder)!r} is not a folder. Export "
            "one with `lorat-export --model <tracker> --output <folder>`."
        )
    return OnnxRuntimeTrackerModel(folder, BACKEND_FILES[backend], num_threads)


__all__ = ["OnnxRuntimeTrackerModel", "load_onnxruntime_model", "BACKENDS"]
