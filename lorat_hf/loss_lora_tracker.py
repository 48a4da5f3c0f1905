"""LoRAT training labels and criterion: IoU-aware BCE over all cells + GIoU on positive cells.

Matches the official `BoxWithScoreMapLabelGenerator` and `SimpleCriteria` (weights 1:1, fp32, positives averaged over
ranks and clamped at 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .boxes import box_iou_and_giou, clip_boxes_to_image, rasterize_boxes


def positive_cells_from_box(
    box_search_px: np.ndarray, search_size_wh: Sequence[int], grid_wh: Sequence[int]
) -> np.ndarray:
    """Positive response cells of one training pair: every cell the ground-truth box touches.

    `box_search_px` is `xyxy` in search-crop pixels (float64). It is clipped to the crop, scaled by
    `grid / search` per axis and rasterised (end-exclusive). Returns a `(grid_h, grid_w)` bool mask.
    """
    width, height = int(grid_wh[0]), int(grid_wh[1])
    box = clip_boxes_to_image(np.asarray(box_search_px, dtype=np.float64), search_size_wh)
    scale = np.asarray(grid_wh, dtype=np.float64) / np.asarray(search_size_wh, dtype=np.float64)
    box[0::2] *= scale[0]
    box[1::2] *= scale[1]
    x1, y1, x2, y2 = rasterize_boxes(box)
    mask = np.zeros((height, width), dtype=bool)
    mask[max(y1, 0) : min(y2, height), max(x1, 0) : min(x2, width)] = True
    return mask


def normalized_target_box(box_search_px: np.ndarray, search_size_wh: Sequence[int]) -> np.ndarray:
    """Regression target: the clipped box divided by the search size in float64, then cast to float32."""
    box = clip_boxes_to_image(np.asarray(box_search_px, dtype=np.float64), search_size_wh)
    box[0::2] /= float(search_size_wh[0])
    box[1::2] /= float(search_size_wh[1])
    return box.astype(np.float32)


def _mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value = value / dist.get_world_size()
    return value


def lora_tracker_loss(
    score_map: torch.Tensor,
    pred_boxes: torch.Tensor,
    target_boxes: torch.Tensor,
    positive_mask: torch.Tensor | None = None,
    cls_weight: float = 1.0,
    reg_weight: float = 1.0,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Official LoRAT criterion.

    Args:
        score_map: `(B, H, W)` logits.
        pred_boxes: `(B, H, W, 4)` normalised `xyxy` predictions.
        target_boxes: `(B, 4)` normalised `xyxy` ground truth (clipped to the crop).
        positive_mask: `(B, H, W)` bool positive cells; when omitted they are rasterised from `target_boxes`.
    Returns:
        `(loss, {"cls_loss", "reg_loss", "num_positives"})`; the dict holds detached tensors.
    """
    batch, height, width = score_map.shape
    score_map = score_map.float().reshape(batch, height * width)
    pred_boxes = pred_boxes.float().reshape(batch, height * width, 4)
    target_boxes = target_boxes.float()
    if positive_mask is None:
        positive_mask = positive_mask_from_normalized_boxes(target_boxes, (width, height))
    batch_index, cell_index = positive_mask.reshape(batch, -1).to(score_map.device).nonzero(as_tuple=True)

    num_positives = torch.tensor(float(batch_index.numel()), device=score_map.device)
    num_positives = _mean_over_ranks(num_positives).clamp(min=1.0)

    positive_pred = pred_boxes[batch_index, cell_index]
    positive_target = target_boxes[batch_index]
    iou, giou = box_iou_and_giou(positive_target, positive_pred, eps=eps)
    cls_target = torch.zeros_like(score_map)
    cls_target[batch_index, cell_index] = iou.detach()

    cls_loss = F.binary_cross_entropy_with_logits(score_map, cls_target, reduction="sum") / num_positives
    if batch_index.numel() > 0:
        reg_loss = (1.0 - giou).sum() / num_positives
    else:
        reg_loss = pred_boxes.sum() * 0.0
    loss = cls_weight * cls_loss + reg_weight * reg_loss
    terms = {"cls_loss": cls_loss.detach(), "reg_loss": reg_loss.detach(), "num_positives": num_positives.detach()}
    return loss, terms


def positive_mask_from_normalized_boxes(target_boxes: torch.Tensor, grid_wh: Sequence[int]) -> torch.Tensor:
    """`(B, 4)` normalised `xyxy` -> `(B, H, W)` bool positive cells (rasterised in float64 grid units)."""
    width, height = int(grid_wh[0]), int(grid_wh[1])
    boxes = target_boxes.detach().double().cpu().numpy().copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, 1) * width
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, 1) * height
    masks = np.zeros((len(boxes), height, width), dtype=bool)
    for index, (x1, y1, x2, y2) in enumerate(rasterize_boxes(boxes)):
        masks[index, max(y1, 0) : min(y2, height), max(x1, 0) : min(x2, width)] = True
    return torch.from_numpy(masks).to(target_boxes.device)


__all__ = [
    "lora_tracker_loss",
    "positive_cells_from_box",
    "normalized_target_box",
    "positive_mask_from_normalized_boxes",
]
