"""LoRAT training criterion: IoU-aware BCE over all cells + GIoU on positive cells (labels: `lorat_hf.labels`).

Matches the official `SimpleCriteria` (weights 1:1, fp32, positives averaged over
ranks and clamped at 1).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .boxes import box_iou_and_giou
from .labels import positive_mask_from_normalized_boxes


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


__all__ = ["lora_tracker_loss"]
