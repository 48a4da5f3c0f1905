"""ONNX Runtime backend for LoRATv2: the template step and the search step run as exported graphs, the KV cache as
explicit tensors between them.

An export folder of a LoRATv2 tracker (`lorat-export`, `lorat_hf.export_onnx.export_onnx`) holds:

* `template.onnx`: `template_pixel_values (B, 3, Hz, Wz)`, `template_token_type_ids (B, zH, zW)` int64 ->
  `keys`, `values` `(layers, B, heads, template_tokens, head_dim)` (chunk 0 of the cache).
* `search.onnx` (the tracked, last search region): `search_pixel_values (B, 3, Hx, Wx)`, `past_keys`, `past_values`
  `(layers, B, heads, P, head_dim)` (every earlier chunk) -> `score_map (B, H, W)`, `pred_boxes (B, H, W, 4)` and the
  region's own `keys`, `values` `(layers, B, heads, region_tokens, head_dim)`.
* `reference.onnx` (phase 2 only: search region 0, the reference): crop + the template's keys/values -> its `keys`,
  `values`.
* `*_int8.onnx`: the same graphs with int8 MatMuls (`--quantize dynamic`).

`OnnxLoratv2Network` offers `Loratv2Model`'s streaming API (`new_kv_cache`, `init_template`, `update_region`,
`track_region`) over those sessions, so `OnnxRuntimeLoratv2Backend` is the torch `Loratv2Backend` (phase 2's
reference rule included) with another network.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..configuration_loratv2 import Loratv2Config
from ..modeling_loratv2 import Loratv2KVCache, Loratv2Output
from .backend_onnxruntime import onnxruntime_session, require_onnx
from .loratv2 import Loratv2Backend

TEMPLATE_GRAPH, REFERENCE_GRAPH, SEARCH_GRAPH = "template", "reference", "search"
TEMPLATE_INPUTS = ("template_pixel_values", "template_token_type_ids")
STEP_INPUTS = ("search_pixel_values", "past_keys", "past_values")
KV_OUTPUTS = ("keys", "values")
SEARCH_OUTPUTS = ("score_map", "pred_boxes", *KV_OUTPUTS)


def loratv2_graph_files(config: Loratv2Config, int8: bool = False) -> dict[str, str]:
    """The graph file of each step of a LoRATv2 export: `{"template": ..., "search": ...[, "reference": ...]}`."""
    steps = [TEMPLATE_GRAPH, SEARCH_GRAPH] + ([REFERENCE_GRAPH] if config.num_search_regions > 1 else [])
    return {step: f"{step}{'_int8' if int8 else ''}.onnx" for step in steps}


def stack_past(cache: Loratv2KVCache, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys and values of token positions `[0, end)` of every layer, `(layers, rows, heads, end, head_dim)` float32."""
    keys = torch.stack([k[:, :, :end] for k in cache.keys]).float().numpy()
    values = torch.stack([v[:, :, :end] for v in cache.values]).float().numpy()
    return keys, values


class OnnxLoratv2Network:
    """`Loratv2Model`'s streaming API run by ONNX Runtime on the graphs of an export folder (CPU, float32 cache).

    Unlike the model's, these calls take no `cache_rows`: the batch is the whole cache (the backend stacks targets).
    """

    def __init__(self, folder: str | os.PathLike, int8: bool = False, num_threads: int | None = None):
        require_onnx()
        folder = Path(folder)
        self.config = Loratv2Config.from_pretrained(folder)
        self.files = loratv2_graph_files(self.config, int8)
        missing = [name for name in self.files.values() if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} has no {', '.join(missing)}: export the tracker first with `lorat-export --model <tracker> "
                f"--output {folder}`" + (" --quantize dynamic" if int8 else "") + "."
            )
        self.sessions = {step: onnxruntime_session(folder / name, num_threads) for step, name in self.files.items()}
        self.dtype = torch.float32

    def new_kv_cache(self, num_rows: int, dtype: torch.dtype | None = None) -> Loratv2KVCache:
        return Loratv2KVCache.empty(self.config, num_rows, dtype=torch.float32)

    def _store(self, cache: Loratv2KVCache, chunk: int, keys: np.ndarray, values: np.ndarray) -> None:
        start, length = self.config.chunk_offsets[chunk], self.config.chunk_sizes[chunk]
        for layer in range(len(cache.keys)):
            cache.keys[layer][:, :, start : start + length] = torch.from_numpy(keys[layer])
            cache.values[layer][:, :, start : start + length] = torch.from_numpy(values[layer])

    def _run_step(self, step: str, chunk: int, pixel_values: torch.Tensor, cache: Loratv2KVCache) -> list[np.ndarray]:
        past_keys, past_values = stack_past(cache, self.config.chunk_offsets[chunk])
        feeds = dict(zip(STEP_INPUTS, (_numpy(pixel_values), past_keys, past_values), strict=True))
        names = SEARCH_OUTPUTS if step == SEARCH_GRAPH else KV_OUTPUTS
        outputs = self.sessions[step].run(list(names), feeds)
        self._store(cache, chunk, outputs[-2], outputs[-1])
        return outputs

    def init_template(
        self, template_pixel_values: torch.Tensor, kv_cache: Loratv2KVCache, template_token_type_ids: torch.Tensor
    ) -> None:
        feeds = {
            "template_pixel_values": _numpy(template_pixel_values),
            "template_token_type_ids": template_token_type_ids.detach().cpu().to(torch.int64).numpy(),
        }
        keys, values = self.sessions[TEMPLATE_GRAPH].run(list(KV_OUTPUTS), feeds)
        self._store(kv_cache, 0, keys, values)

    def update_region(self, region: int, search_pixel_values: torch.Tensor, kv_cache: Loratv2KVCache) -> None:
        if region != 0 or REFERENCE_GRAPH not in self.sessions:
            raise ValueError(
                f"An exported LoRATv2 encodes only the reference region 0 of a phase-2 model, not {region}."
            )
        self._run_step(REFERENCE_GRAPH, 1, search_pixel_values, kv_cache)

    def track_region(self, region: int, search_pixel_values: torch.Tensor, kv_cache: Loratv2KVCache) -> Loratv2Output:
        tracked = self.config.num_search_regions - 1
        if region != tracked:
            raise ValueError(f"An exported LoRATv2 tracks its last search region ({tracked}), not {region}.")
        score_map, pred_boxes, _, _ = self._run_step(SEARCH_GRAPH, region + 1, search_pixel_values, kv_cache)
        return Loratv2Output(score_map=torch.from_numpy(score_map), pred_boxes=torch.from_numpy(pred_boxes))


def _numpy(pixel_values: torch.Tensor) -> np.ndarray:
    return pixel_values.detach().cpu().to(torch.float32).numpy()


class OnnxRuntimeLoratv2Backend(Loratv2Backend):
    """`Loratv2Backend` over the ONNX Runtime graphs of a LoRATv2 export folder (see the module docstring).

    Args:
        folder: the export folder.
        int8: run the `*_int8.onnx` graphs.
        num_threads: ONNX Runtime intra-op threads (default: torch's thread count).
        max_batch_size: split each step into runs of at most this many targets (None: one run).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        int8: bool = False,
        num_threads: int | None = None,
        max_batch_size: int | None = None,
    ):
        network = OnnxLoratv2Network(folder, int8, num_threads)
        self._bind(network, network, torch.device("cpu"), torch.float32, None, max_batch_size)


__all__ = ["OnnxLoratv2Network", "OnnxRuntimeLoratv2Backend", "loratv2_graph_files", "stack_past"]
