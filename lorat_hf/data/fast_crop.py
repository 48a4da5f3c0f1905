"""Fast training crops: decode only the resolution a crop needs and resize only the region that lands in it.

The exact path (`lorat_hf.cropping.crop_image`) decodes the full frame, converts it to float, takes its mean as the
padding colour and bilinearly resizes the integer ROI in float32 torch, exactly as the official cropper does. The
fast path here produces the same crop geometry with less work:

1. JPEG frames whose crop shrinks them by 2x or more are decoded at 1/2, 1/4 or 1/8 size with libjpeg's DCT
   scaling (`lorat_hf.video_io.decode_frame`, `cv2.IMREAD_REDUCED_COLOR_*`): decoded pixel `u` covers frame pixels
   `[k u, k (u + 1))`, so the crop map of the decoded image is `(k * scale, translation)`. Other formats are decoded
   in full.
2. The integer input/output ROIs are computed with the official pixel alignment on the decoded image
   (`lorat_hf.cropping.pixel_aligned_rois`), only that ROI is resized (`cv2.resize`, `INTER_LINEAR`, uint8) and
   written into a canvas of the padding colour (the decoded image's per-channel mean).
3. The returned params describe the pixels actually produced, in frame coordinates: the float32 pixel-aligned map of
   the decoded image with its scale divided by `k`; boxes map both ways with them exactly as with the exact path.

Differences from the exact path: the reduced decode averages each k x k block where the exact path's bilinear
downsampling (no antialiasing) point-samples the full frame, the resize output is rounded to uint8 and the padding
colour is the mean of the reduced image. The fast crop equals "area-downsample by k, then bilinear" to < 1 grey
level; its distance to the exact crop is the exact path's aliasing. Measured mean absolute difference per crop
(grey levels, 0..255), template and jittered search crops of random boxes: 0.5 to 1.3 on average on natural-looking
JPEG frames (1/f texture, sharp-edged shapes, noise; 12 seeds, 30 crops each), up to 4.7 on single crops dominated
by sharp edges at 1/4 decoding; without reduction (k = 1) at most 0.77 (uint8 rounding). On the synthetic 1280x720
benchmark videos, whose targets carry high-frequency patterns (checkers, stripes), see `benchmarks/RESULTS.md`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..cropping import CropResult, adjusted_params, pixel_aligned_rois
from ..video_io import DecodedFrame, bgr_to_rgb, decode_frame, is_jpeg


@dataclass
class FastCropResult(CropResult):
    """A `CropResult` of the fast path. `image` is a `(3, out_h, out_w)` float32 view of an `(out_h, out_w, 3)` buffer
    (`image.permute(1, 2, 0)` is contiguous); `params` is in frame pixels; `input_roi` is in decoded pixels (multiply
    by `reduction` for frame pixels)."""

    reduction: int = 1


def decode_reduction(params: np.ndarray, max_reduction: int = 8) -> int:
    """Largest reduction `k` in {1, 2, 4, 8} (at most `max_reduction`) such that the crop still shrinks the decoded
    image or keeps its size on both axes (`k * scale <= 1`): decoding never loses resolution the crop keeps."""
    scales = np.asarray(params, dtype=np.float64)[0]
    if not (np.all(np.isfinite(scales)) and np.all(scales > 0)):
        raise ValueError(f"Crop scales must be positive and finite, got {scales.tolist()}.")
    largest_scale = float(scales.max())
    for reduction in (8, 4, 2):
        if reduction <= max_reduction and reduction * largest_scale <= 1.0:
            return reduction
    return 1


def fast_crop(
    frame: DecodedFrame,
    params: np.ndarray,
    output_wh: Sequence[int],
    padding_color: torch.Tensor | Sequence[float] | None = None,
) -> FastCropResult:
    """Crop `frame` with the frame-pixel map `params` (`(2, 2)` `[[sx, sy], [tx, ty]]`) into `output_wh`.

    Returns a `FastCropResult` with a float32 RGB crop in 0..255 and the pixel-aligned map actually realised, in
    frame pixels. `padding_color` (RGB, 0..255) defaults to the decoded frame's mean colour.
    """
    reduction = frame.reduction
    params = np.asarray(params, dtype=np.float64)
    decoded_params = params.copy()
    decoded_params[0] *= reduction
    out_w, out_h = int(output_wh[0]), int(output_wh[1])
    input_roi, output_roi = pixel_aligned_rois(decoded_params, frame.size_wh, (out_w, out_h))
    padding = (
        frame.mean_rgb if padding_color is None else torch.as_tensor(padding_color, dtype=torch.float32).reshape(3)
    )

    ix1, iy1, ix2, iy2 = (int(v) for v in input_roi)
    ox1, oy1, ox2, oy2 = (int(v) for v in output_roi)
    if ox1 < ox2 and oy1 < oy2 and ix1 < ix2 and iy1 < iy2:
        region = frame.bgr[iy1:iy2, ix1:ix2]
        if (ix2 - ix1, iy2 - iy1) != (ox2 - ox1, oy2 - oy1):
            region = cv2.resize(region, (ox2 - ox1, oy2 - oy1), interpolation=cv2.INTER_LINEAR)
        canvas = bgr_to_rgb(region).astype(np.float32)
        if (ox1, oy1, ox2, oy2) != (0, 0, out_w, out_h):
            canvas = cv2.copyMakeBorder(
                canvas, oy1, out_h - oy2, ox1, out_w - ox2, cv2.BORDER_CONSTANT, value=padding.tolist()
            )
    else:
        canvas = np.empty((out_h, out_w, 3), dtype=np.float32)
        canvas[...] = padding.numpy()
    realised = adjusted_params(input_roi, output_roi)
    realised[0] /= reduction
    image = torch.from_numpy(canvas).permute(2, 0, 1)
    return FastCropResult(image, realised, input_roi, output_roi, padding, reduction)


__all__ = [
    "DecodedFrame",
    "FastCropResult",
    "decode_frame",
    "decode_reduction",
    "fast_crop",
    "is_jpeg",
]
