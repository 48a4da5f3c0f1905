"""Training labels and token types of the SiamFC-style trackers: one home for every box -> grid rasterisation.

* `template_token_type_ids_from_boxes`: the template's foreground token types (image processor, pair dataset, and the
  model's forward when it is given template boxes instead of token types);
* `positive_cells_from_box` / `positive_mask_from_normalized_boxes`: the response cells a ground-truth box touches
  (pair dataset; the loss when no mask is given);
* `normalized_target_box`: the regression target (pair dataset).

All follow the official LoRAT label generators bit for bit (float64 arithmetic, `boxes.rasterize_boxes`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .boxes import clip_boxes_to_image, rasterize_boxes

TEMPLATE_BACKGROUND, TEMPLATE_FOREGROUND, SEARCH_TOKEN = 0, 1, 2


def _fill_cells(cells: np.ndarray, grid_wh: Sequence[int], value: int, dtype: type) -> np.ndarray:
    """`(B, 4)` end-exclusive integer cell ranges `x1, y1, x2, y2` -> `(B, grid_h, grid_w)` masks, clipped to the grid."""
    width, height = int(grid_wh[0]), int(grid_wh[1])
    cells = np.array(cells, dtype=np.int64).reshape(-1, 4)
    cells[:, 0::2] = cells[:, 0::2].clip(0, width)
    cells[:, 1::2] = cells[:, 1::2].clip(0, height)
    masks = np.zeros((len(cells), height, width), dtype=dtype)
    for index, (x1, y1, x2, y2) in enumerate(cells):
        masks[index, y1:y2, x1:x2] = value
    return masks


def template_token_type_ids_from_boxes(
    template_boxes: torch.Tensor | np.ndarray, grid_wh: tuple[int, int], patch_size: int
) -> torch.Tensor:
    """Official template foreground mask: every patch the box touches is foreground.

    `template_boxes` `(B, 4)` are `xyxy` in template-crop pixels. Each box is divided by the stride, rasterised with
    `floor(x1), floor(y1), floor(x2 + 1 - 1e-4), floor(y2 + 1 - 1e-4)` (end-exclusive) and clipped to the grid.
    Returns `(B, grid_h, grid_w)` int64 with 1 = foreground, 0 = background (on the boxes' device for a tensor).
    """
    device = template_boxes.device if isinstance(template_boxes, torch.Tensor) else None
    boxes = template_boxes.detach().cpu().double().numpy() if device is not None else np.asarray(template_boxes, float)
    cells = rasterize_boxes(boxes.reshape(-1, 4) / patch_size)
    mask = torch.from_numpy(_fill_cells(cells, grid_wh, TEMPLATE_FOREGROUND, np.int64))
    return mask.to(device) if device is not None else mask


def positive_cells_from_box(
    box_search_px: np.ndarray, search_size_wh: Sequence[int], grid_wh: Sequence[int]
) -> np.ndarray:
    """Positive response cells of one training pair: every cell the ground-truth box touches.

    `box_search_px` is `xyxy` in search-crop pixels (float64). It is clipped to the crop, scaled by
    `grid / search` per axis and rasterised (end-exclusive). Returns a `(grid_h, grid_w)` bool mask.
    """
    box = clip_boxes_to_image(np.asarray(box_search_px, dtype=np.float64), search_size_wh)
    scale = np.asarray(grid_wh, dtype=np.float64) / np.asarray(search_size_wh, dtype=np.float64)
    box[0::2] *= scale[0]
    box[1::2] *= scale[1]
    return _fill_cells(rasterize_boxes(box)[None], grid_wh, True, bool)[0]


def positive_mask_from_normalized_boxes(target_boxes: torch.Tensor, grid_wh: Sequence[int]) -> torch.Tensor:
    """`(B, 4)` normalised `xyxy` -> `(B, H, W)` bool positive cells (rasterised in float64 grid units)."""
    width, height = int(grid_wh[0]), int(grid_wh[1])
    boxes = target_boxes.detach().double().cpu().numpy().copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, 1) * width
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, 1) * height
    masks = _fill_cells(rasterize_boxes(boxes).reshape(-1, 4), grid_wh, True, bool)
    return torch.from_numpy(masks).to(target_boxes.device)


def normalized_target_box(box_search_px: np.ndarray, search_size_wh: Sequence[int]) -> np.ndarray:
    """Regression target: the clipped box divided by the search size in float64, then cast to float32."""
    box = clip_boxes_to_image(np.asarray(box_search_px, dtype=np.float64), search_size_wh)
    box[0::2] /= float(search_size_wh[0])
    box[1::2] /= float(search_size_wh[1])
    return box.astype(np.float32)


__all__ = [
    "TEMPLATE_BACKGROUND",
    "TEMPLATE_FOREGROUND",
    "SEARCH_TOKEN",
    "template_token_type_ids_from_boxes",
    "positive_cells_from_box",
    "positive_mask_from_normalized_boxes",
    "normalized_target_box",
]
