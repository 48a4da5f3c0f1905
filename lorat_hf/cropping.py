"""SiamFC-style cropping exactly as the official LoRAT code does it.

A crop is an axis-aligned affine map ``crop = image * scale + translation`` (per axis), held as a ``(2, 2)`` array
``[[scale_x, scale_y], [translation_x, translation_y]]``. The requested map centres the target and sizes the crop
from its context; the crop itself is done on whole pixels (an integer input ROI resized into an integer output ROI),
and the map actually realised (``adjusted``) is what boxes must be mapped with, both ways.

This module is the exact path (float32 torch bilinear interpolation) used by evaluation and parity tests; the fast
training path lives in `lorat_hf.data.fast_crop` and must stay close to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .boxes import box_center, box_size, boxes_intersect_image, clamp_box_size, clip_boxes_to_image, rasterize_boxes


@dataclass
class CropResult:
    """One crop: pixels and the exact map that produced them.

    Attributes:
        image: `(C, out_h, out_w)` float32 crop (same value range as the input image).
        params: `(2, 2)` float64 holding the float32 pixel-aligned `[[sx, sy], [tx, ty]]` (image -> crop).
        input_roi: `(4,)` int64 `xyxy` integer region of the image that was resized (end-exclusive).
        output_roi: `(4,)` int64 `xyxy` region of the crop it was written to; the rest is padding.
        padding_color: `(C,)` float32 colour of the padding.
    """

    image: torch.Tensor
    params: np.ndarray
    input_roi: np.ndarray
    output_roi: np.ndarray
    padding_color: torch.Tensor


def siamfc_crop_params(box_xyxy: np.ndarray, area_factor: float, output_wh: Sequence[int]) -> np.ndarray:
    """Requested crop map (float64 `(2, 2)`) centring `box_xyxy` with context `area_factor`.

    Context `p = (f - 1) * (w + h) / 2` is added to both sides; one scale `sqrt(out_w * out_h / ((w + p)(h + p)))`
    on both axes; the box centre goes to the crop centre.
    """
    box = np.asarray(box_xyxy, dtype=np.float64)
    output = np.asarray(output_wh, dtype=np.float64)
    wh = box_size(box)
    area = wh + (area_factor - 1.0) * (wh.sum() * 0.5)
    scale = np.repeat(np.sqrt(output.prod() / area.prod()), 2)
    translation = output / 2.0 - box_center(box) * scale
    return np.stack((scale, translation))


def search_crop_params(
    previous_box_xyxy: np.ndarray, area_factor: float, output_wh: Sequence[int], min_object_size: float = 10.0
) -> np.ndarray:
    """Tracking-time search crop map: the previous box grown to at least `min_object_size` px, then centred."""
    return siamfc_crop_params(clamp_box_size(previous_box_xyxy, min_object_size), area_factor, output_wh)


def jittered_crop_params(
    box_xyxy: np.ndarray,
    area_factor: float,
    output_wh: Sequence[int],
    scale_jitter: float,
    translation_jitter: float,
    rng: np.random.Generator,
    min_object_size: float = 10.0,
    retry_count: int = 10,
) -> tuple[np.ndarray, bool]:
    """Training crop map with SiamFC scale/translation jitter; returns `(params, is_positive)`.

    Per axis `scale /= exp(N(0, 1) * scale_jitter)`, the centring translation is recomputed with it, then
    `translation += U(-1, 1) * translation_jitter * 0.5 * (w * sx + h * sy)`. An attempt fails when the mapped box
    misses the crop or its clipped size is below `min_object_size`; after `retry_count + 2` failed attempts the
    last params are returned with `is_positive=False` (the official loop's counting).
    """
    box = np.asarray(box_xyxy, dtype=np.float64)
    output = np.asarray(output_wh, dtype=np.float64)
    base = siamfc_crop_params(box, area_factor, output_wh)
    if scale_jitter == 0 and translation_jitter == 0:
        return base, True
    wh = box_size(box)
    attempt = -1
    while True:
        attempt += 1
        scale = base[0] / np.exp(rng.standard_normal(2) * scale_jitter)
        translation = output / 2.0 - box_center(box) * scale
        translation = rng.uniform(-1.0, 1.0, 2) * ((wh * scale).sum() * 0.5 * translation_jitter) + translation
        params = np.stack((scale, translation))
        mapped = map_boxes(box, params)
        if boxes_intersect_image(mapped, output):
            size = box_size(clip_boxes_to_image(mapped, output))
            if np.all(size >= min_object_size):
                return params, True
        if attempt > retry_count:
            return params, False


def map_boxes(boxes_xyxy: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Apply a crop map to `xyxy` boxes `(..., 4)` (float64): `x * s + t` per axis."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64)
    scale, translation = params[..., 0, :], params[..., 1, :]
    out = np.empty_like(boxes)
    out[..., 0::2] = boxes[..., 0::2] * scale[..., 0:1] + translation[..., 0:1]
    out[..., 1::2] = boxes[..., 1::2] * scale[..., 1:2] + translation[..., 1:2]
    return out


def invert_params(params: np.ndarray) -> np.ndarray:
    """Inverse map `(1 / s, -t / s)` in float64 (crop -> image)."""
    params = np.asarray(params, dtype=np.float64)
    return np.stack((1.0 / params[..., 0, :], -params[..., 1, :] / params[..., 0, :]), axis=-2)


def crop_box_to_image(box_crop_xyxy: np.ndarray, params: np.ndarray, image_wh: Sequence[int]) -> np.ndarray:
    """Map a box from crop pixels back to the image with the inverse of `params`, clipped to the image."""
    return clip_boxes_to_image(map_boxes(box_crop_xyxy, invert_params(params)), image_wh)


def pixel_aligned_rois(
    params: np.ndarray, image_wh: Sequence[int], output_wh: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Integer `(input_roi, output_roi)` (`xyxy`, end-exclusive) that realise `params` on whole pixels.

    The image rectangle is mapped into the crop, clipped and rasterised (output ROI); that ROI is mapped back,
    rasterised and clipped to the image (input ROI). This order reproduces the official cropper exactly.
    """
    width, height = image_wh
    output_roi = map_boxes(np.array([0.0, 0.0, width, height]), params)
    output_roi = rasterize_boxes(clip_boxes_to_image(output_roi, output_wh))
    input_roi = map_boxes(output_roi.astype(np.float64), invert_params(params))
    input_roi = clip_boxes_to_image(rasterize_boxes(input_roi).astype(np.float64), (width, height)).astype(np.int64)
    return input_roi, output_roi


def adjusted_params(input_roi: np.ndarray, output_roi: np.ndarray) -> np.ndarray:
    """The map the integer ROIs realise, in float32 as the official cropper returns it (held in float64)."""
    source = torch.as_tensor(np.asarray(input_roi), dtype=torch.float32)
    target = torch.as_tensor(np.asarray(output_roi), dtype=torch.float32)
    scale = (target[2:] - target[:2]) / (source[2:] - source[:2])
    translation = target[:2] - source[:2] * scale
    return torch.stack((scale, translation)).double().numpy()


def image_to_float_chw(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """`(H, W, C)` uint8 (numpy or torch) -> `(C, H, W)` float32 in 0..255; float CHW tensors pass through."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3:
            raise ValueError(f"Expected an (H, W, C) image, got shape {image.shape}.")
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    if image.ndim == 3 and image.dtype == torch.uint8 and image.shape[-1] in (1, 3):
        return image.permute(2, 0, 1).float()
    return image.float()


def image_mean_color(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Per-channel float32 mean of an image (the official padding colour), `(C,)`."""
    return image_to_float_chw(image).mean(dim=(-2, -1))


def crop_image(
    image: np.ndarray | torch.Tensor,
    params: np.ndarray,
    output_wh: Sequence[int],
    padding_color: torch.Tensor | Sequence[float] | None = None,
) -> CropResult:
    """Crop with the official pixel-aligned method: bilinear (`align_corners=False`, no antialias) of the integer
    input ROI into the output ROI of a canvas filled with `padding_color` (default: the image's per-channel mean).

    `image` is `(H, W, C)` uint8 (numpy or torch) or `(C, H, W)` float; the crop is float32 and keeps the value range
    (0..255 for uint8 input). Only the input ROI is converted to float.
    """
    channels_last = isinstance(image, np.ndarray) or (image.dtype == torch.uint8 and image.shape[-1] in (1, 3))
    if image.ndim != 3:
        raise ValueError(f"Expected a single image with 3 dimensions, got shape {tuple(image.shape)}.")
    height, width, channels = image.shape if channels_last else (image.shape[1], image.shape[2], image.shape[0])
    if padding_color is None:
        padding = image_mean_color(image)
    else:
        padding = torch.as_tensor(padding_color, dtype=torch.float32).reshape(channels)
    out_w, out_h = int(output_wh[0]), int(output_wh[1])
    canvas = padding.view(channels, 1, 1).expand(channels, out_h, out_w).clone()
    input_roi, output_roi = pixel_aligned_rois(params, (width, height), (out_w, out_h))
    ix1, iy1, ix2, iy2 = (int(v) for v in input_roi)
    ox1, oy1, ox2, oy2 = (int(v) for v in output_roi)
    if ox1 < ox2 and oy1 < oy2 and ix1 < ix2 and iy1 < iy2:
        region = image_to_float_chw(image[iy1:iy2, ix1:ix2] if channels_last else image[:, iy1:iy2, ix1:ix2])
        resized = F.interpolate(region[None], size=(oy2 - oy1, ox2 - ox1), mode="bilinear", align_corners=False)
        canvas[:, oy1:oy2, ox1:ox2] = resized[0]
    return CropResult(canvas, adjusted_params(input_roi, output_roi), input_roi, output_roi, padding)


__all__ = [
    "CropResult",
    "siamfc_crop_params",
    "search_crop_params",
    "jittered_crop_params",
    "map_boxes",
    "invert_params",
    "crop_box_to_image",
    "pixel_aligned_rois",
    "adjusted_params",
    "crop_image",
    "image_to_float_chw",
    "image_mean_color",
]
