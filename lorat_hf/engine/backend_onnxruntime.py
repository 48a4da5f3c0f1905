"""ONNX Runtime backend: the engine runs a tracker exported by `lorat-export` instead of the torch model.

`OnnxRuntimeBackend(folder)` is a `TrackingBackend`: the engine crops, batches, decodes and updates states as for the
torch model, and the backend's `search` runs the exported forward (template crop + token types + search crop ->
score map + boxes) in one ONNX Runtime call. `LoraTracker.from_pretrained(folder, backend="onnxruntime")` (or
`"onnxruntime-int8"`, lorat-track / lorat-eval run `--backend ...`) builds one; any front door that takes a backend
(`LoraTracker(backend)`, `track_step(backend, ...)`, `track_videos(backend, ...)`) runs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..configuration_lora_tracker import LoraTrackerConfig
from .backends import TrackingBackend
from .state import TargetState

ONNX_MODEL_NAME = "model.onnx"
ONNX_INT8_MODEL_NAME = "model_int8.onnx"
INPUT_NAMES = ("template_pixel_values", "search_pixel_values", "template_token_type_ids")
OUTPUT_NAMES = ("score_map", "pred_boxes")
BACKENDS = ("torch", "onnxruntime", "onnxruntime-int8")
BACKEND_FILES = {"onnxruntime": ONNX_MODEL_NAME, "onnxruntime-int8": ONNX_INT8_MODEL_NAME}


def require_onnx() -> None:
    """Raise an `ImportError` naming the extra to install when onnx / onnxruntime / onnxscript are missing."""
    missing = []
    for module in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(
            f"ONNX export and the onnxruntime backend need {', '.join(missing)}: pip install 'lorat_hf[onnx]'."
        )


def onnxruntime_session(path: str | os.PathLike, num_threads: int | None = None):
    """A CPU `onnxruntime.InferenceSession` with every graph optimisation, `num_threads` intra-op threads (default:
    torch's thread count)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = num_threads or torch.get_num_threads()
    options.log_severity_level = 3
    # no busy-waiting between runs: the tracker's own work (crops, decoding) and other processes get the cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxRuntimeBackend(TrackingBackend):
    """An exported LoRAT graph run by ONNX Runtime on the CPU (float32 inputs; int8 inside a quantised graph).

    Args:
        folder: an export folder (`model.onnx`, `config.json`, ...; see `lorat_hf.export_onnx`).
        file_name: the graph to run: `model.onnx` (fp32) or `model_int8.onnx`.
        num_threads: ONNX Runtime intra-op threads (default: torch's thread count).
        max_batch_size: split each search step into runs of at most this many targets (None: one run).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        file_name: str = ONNX_MODEL_NAME,
        num_threads: int | None = None,
        max_batch_size: int | None = None,
    ):
        require_onnx()
        folder = Path(folder)
        path = folder / file_name
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} has no {file_name}: export the tracker first with `lorat-export --model <tracker> "
                f"--output {folder}`" + (" --quantize dynamic" if file_name == ONNX_INT8_MODEL_NAME else "") + "."
            )
        self.config = LoraTrackerConfig.from_pretrained(folder)
        self.device = torch.device("cpu")
        self.onnx_path = path
        self.max_batch_size = max_batch_size
        self.session = onnxruntime_session(path, num_threads)

    def run(
        self,
        template_pixel_values: torch.Tensor,
        search_pixel_values: torch.Tensor,
        template_token_type_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The exported forward: crops `(B, 3, H, W)` and token types `(B, zH, zW)` -> `score_map (B, H, W)`,
        `pred_boxes (B, H, W, 4)`, float32 CPU tensors."""
        chunk = self.max_batch_size or len(search_pixel_values)
        inputs = (template_pixel_values, search_pixel_values, template_token_type_ids)
        score_maps, boxes = [], []
        for start in range(0, len(search_pixel_values), chunk):
            feeds = {
                name: tensor[start : start + chunk]
                .detach()
                .cpu()
                .to(torch.int64 if name.endswith("ids") else torch.float32)
                .numpy()
                for name, tensor in zip(INPUT_NAMES, inputs, strict=True)
            }
            score_map, pred_boxes = self.session.run(list(OUTPUT_NAMES), feeds)
            score_maps.append(torch.from_numpy(score_map))
            boxes.append(torch.from_numpy(pred_boxes))
        return torch.cat(score_maps), torch.cat(boxes)

    def search(
        self, states: Sequence[TargetState], search_pixel_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.run(
            torch.stack([state.template_pixel_values for state in states]),
            search_pixel_values,
            torch.stack([state.template_token_type_ids for state in states]),
        )


def load_onnxruntime_backend(
    folder: str | os.PathLike, backend: str = "onnxruntime", num_threads: int | None = None
) -> TrackingBackend:
    """The ONNX Runtime backend of a local export folder for `backend` (`"onnxruntime"` or `"onnxruntime-int8"`):
    an `OnnxRuntimeBackend` for LoRAT, an `OnnxRuntimeLoratv2Backend` for a LoRATv2 export."""
    if backend not in BACKEND_FILES:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {BACKENDS}.")
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"The {backend} backend reads a local export folder; {os.fspath(folder)!r} is not a folder. Export one "
            "with `lorat-export --model <tracker> --output <folder>`."
        )
    if _model_type(folder) == "loratv2":
        from .backend_onnxruntime_loratv2 import OnnxRuntimeLoratv2Backend

        return OnnxRuntimeLoratv2Backend(folder, int8=backend == "onnxruntime-int8", num_threads=num_threads)
    return OnnxRuntimeBackend(folder, BACKEND_FILES[backend], num_threads)


def _model_type(folder: str | os.PathLike) -> str | None:
    """The `model_type` in a folder's `config.json` (None without one)."""
    path = Path(folder) / "config.json"
    return json.loads(path.read_text(encoding="utf-8")).get("model_type") if path.is_file() else None


__all__ = ["OnnxRuntimeBackend", "load_onnxruntime_backend", "onnxruntime_session", "require_onnx", "BACKENDS"]
