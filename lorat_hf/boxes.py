"""Bounding-box arithmetic shared by cropping, labels, the loss, the tracker and evaluation.

Convention: boxes are *continuous* ``xyxy`` in pixels unless a name says otherwise. Pixel ``i`` covers ``[i, i + 1)``,
so an ``xywh`` box ``(x, y, w, h)`` is the ``xyxy`` box ``(x, y, x + w, y + h)``. Every function works on the last
axis of an array of shape ``(..., 4)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

BOX_FORMATS = ("xywh", "xyxy")
RASTERIZE_EPS = 1e-4


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``(x, y, w, h)`` -> ``(x1, y1, x2, y2)``; shape ``(..., 4)``, dtype preserved (float64 for ints)."""
    boxes = np.asarray(boxes)
    out = boxes.astype(np.float64) if not np.issubdtype(boxes.dtype, np.floating) else boxes.copy()
    out[..., 2] = out[..., 0] + out[..., 2]
    out[..., 3] = out[..., 1] + out[..., 3]
    return out


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``(x1, y1, x2, y2)`` -> ``(x, y, w, h)``; shape ``(..., 4)``."""
    boxes = np.asarray(boxes)
    out = boxes.astype(np.float64) if not np.issubdtype(boxes.dtype, np.floating) else boxes.copy()
    out[..., 2] = out[..., 2] - out[..., 0]
    out[..., 3] = out[..., 3] - out[..., 1]
    return out


def box_center(boxes: np.ndarray) -> np.ndarray:
    """Centres ``(..., 2)`` of ``xyxy`` boxes, float64."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.stack(((boxes[..., 0] + boxes[..., 2]) * 0.5, (boxes[..., 1] + boxes[..., 3]) * 0.5), axis=-1)


def box_size(boxes: np.ndarray) -> np.ndarray:
    """Widths and heights ``(..., 2)`` of ``xyxy`` boxes."""
    boxes = np.asarray(boxes)
    return np.stack((boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]), axis=-1)


def clamp_box_size(boxes: np.ndarray, min_size: float | Sequence[float]) -> np.ndarray:
    """Grow ``xyxy`` boxes around their centre so that width and height are at least ``min_size`` pixels (float64)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    min_wh = np.broadcast_to(np.asarray(min_size, dtype=np.float64), (2,))
    center = box_center(boxes)
    half = np.maximum(box_size(boxes), min_wh) / 2.0
    return np.concatenate((center - half, center + half), axis=-1)


def rasterize_boxes(boxes: np.ndarray, eps: float = RASTERIZE_EPS) -> np.ndarray:
    """Integer, end-exclusive cell ranges touched by continuous ``xyxy`` boxes.

    ``(floor(x1), floor(y1), floor(x2 + 1 - eps), floor(y2 + 1 - eps))``: every cell the box overlaps, the official
    rule used for template foreground masks, positive training cells, crop ROIs and submission files. Returns int64.
    """
    boxes = np.array(boxes, dtype=np.float64)
    boxes[..., 2:] += 1.0 - eps
    return np.floor(boxes).astype(np.int64)


def clip_boxes_to_image(boxes: np.ndarray, image_size_wh: Sequence[float] | np.ndarray) -> np.ndarray:
    """Clip ``xyxy`` coordinates to ``[0, W] x [0, H]`` (a box may collapse to zero size)."""
    boxes = np.array(boxes, dtype=np.float64 if not np.issubdtype(np.asarray(boxes).dtype, np.floating) else None)
    size = np.asarray(image_size_wh, dtype=np.float64)
    boxes[..., 0] = np.clip(boxes[..., 0], 0, size[..., 0])
    boxes[..., 1] = np.clip(boxes[..., 1], 0, size[..., 1])
    boxes[..., 2] = np.clip(boxes[..., 2], 0, size[..., 0])
    boxes[..., 3] = np.clip(boxes[..., 3], 0, size[..., 1])
    return boxes


def boxes_are_valid(boxes: np.ndarray) -> np.ndarray:
    """True where an ``xyxy`` box is finite with ``x1 < x2`` and ``y1 < y2``; shape ``(...)``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    finite = np.all(np.isfinite(boxes), axis=-1)
    return finite & np.all(boxes[..., :2] < boxes[..., 2:], axis=-1)


def boxes_intersect_image(boxes: np.ndarray, image_size_wh: Sequence[float] | np.ndarray) -> np.ndarray:
    """True where an ``xyxy`` box overlaps the image ``[0, W] x [0, H]`` with a positive area."""
    boxes = np.asarray(boxes, dtype=np.float64)
    size = np.asarray(image_size_wh, dtype=np.float64)
    w = np.minimum(boxes[..., 2], size[..., 0]) - np.maximum(boxes[..., 0], 0.0)
    h = np.minimum(boxes[..., 3], size[..., 1]) - np.maximum(boxes[..., 1], 0.0)
    return (w > 0) & (h > 0)


def to_xyxy(box: Sequence[float] | np.ndarray, box_format: str) -> np.ndarray:
    """Convert user boxes given in ``box_format`` (``"xywh"`` or ``"xyxy"``) to float64 ``xyxy``."""
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
    box = np.asarray(box, dtype=np.float64)
    return xywh_to_xyxy(box) if box_format == "xywh" else box.copy()


def from_xyxy(box: np.ndarray, box_format: str) -> np.ndarray:
    """Convert float ``xyxy`` boxes to ``box_format`` (``"xywh"`` or ``"xyxy"``)."""
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
    box = np.asarray(box, dtype=np.float64)
    return xyxy_to_xywh(box) if box_format == "xywh" else box.copy()


BOX_FORMAT_FIELDS = {"xywh": "[x, y, w, h]", "xyxy": "[x1, y1, x2, y2]"}


def parse_user_boxes(value: object, box_format: str, single: bool) -> np.ndarray:
    """A user's box (``single``) or list of boxes -> float64 ``(N, 4)`` in ``box_format``, or one clear ``ValueError``.

    Strings, ragged lists and non-numbers are refused with the value as the user wrote it and the expected form.
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
    fields = BOX_FORMAT_FIELDS[box_format]
    expected = f"4 numbers {fields} ({box_format})" if single else f"a list of boxes, each 4 numbers {fields}"
    what = "box" if single else "boxes"
    if isinstance(value, (str, bytes)):
        raise ValueError(
            f"The {what} must be {expected}, got the string {value!r}: pass numbers, e.g. [10, 20, 50, 40]."
        )
    try:
        boxes = np.asarray([value] if single else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"The {what} must be {expected}, got {value!r}.") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"The {what} must be {expected}, got shape {np.shape(value)}: {value!r}.")
    return boxes


def check_init_box(
    box_xyxy: np.ndarray,
    image_size_wh: Sequence[int],
    box_format: str = "xyxy",
    user_box: Sequence[float] | np.ndarray | None = None,
) -> None:
    """Raise a ``ValueError`` that says what is wrong with an initial target box (one box, ``xyxy``).

    ``box_format`` and ``user_box`` (the box as the user gave it, in ``box_format``) only phrase the message in the
    user's own terms; without ``user_box`` the box is shown converted back to ``box_format``.
    """
    box_xyxy = np.asarray(box_xyxy, dtype=np.float64)
    width, height = int(image_size_wh[0]), int(image_size_wh[1])
    if box_xyxy.shape != (4,):
        raise ValueError(f"An initial box must have 4 numbers, got shape {tuple(box_xyxy.shape)}.")
    if user_box is not None:
        shown = [int(v) if v.is_integer() else v for v in np.asarray(user_box, dtype=np.float64).tolist()]
    else:
        shown = from_xyxy(box_xyxy, box_format).round(3).tolist()
    if not np.all(np.isfinite(box_xyxy)):
        raise ValueError(f"The initial box {shown} ({box_format}) contains NaN or infinity.")
    if not (box_xyxy[0] < box_xyxy[2] and box_xyxy[1] < box_xyxy[3]):
        hint = " Did you pass an xyxy box with box_format='xywh' (or the reverse)?"
        raise ValueError(f"The initial box {shown} ({box_format}) has a non-positive width or height.{hint}")
    if not boxes_intersect_image(box_xyxy, (width, height)):
        raise ValueError(
            f"The initial box {shown} ({box_format}) lies outside the {width}x{height} frame. Boxes are in pixels of "
            f"the first frame; check the box format (box_format='xywh' or 'xyxy') and the frame you passed."
        )


def box_iou_and_giou(
    boxes_a: torch.Tensor, boxes_b: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise IoU and generalised IoU of two ``(..., 4)`` ``xyxy`` tensors.

    ``eps`` is a lower clamp of the union and of the enclosing area (``inter / max(union, eps)``), which is what the
    official criterion does; adding it instead moves the values by up to ~1e-5.
    """
    area_a = (boxes_a[..., 2] - boxes_a[..., 0]) * (boxes_a[..., 3] - boxes_a[..., 1])
    area_b = (boxes_b[..., 2] - boxes_b[..., 0]) * (boxes_b[..., 3] - boxes_b[..., 1])
    top_left = torch.maximum(boxes_a[..., :2], boxes_b[..., :2])
    bottom_right = torch.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
    inter_wh = (bottom_right - top_left).clamp(min=0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = (area_a + area_b - inter).clamp(min=eps)
    iou = inter / union
    enclose_wh = torch.maximum(boxes_a[..., 2:], boxes_b[..., 2:]) - torch.minimum(boxes_a[..., :2], boxes_b[..., :2])
    enclose = (enclose_wh[..., 0] * enclose_wh[..., 1]).clamp(min=eps)
    giou = iou - (enclose - union) / enclose
    return iou, giou
