"""`LoraTrackerImageProcessor`: frames in, model inputs out, and predictions back to frame pixels.

It owns every image-side step shared by training, evaluation and inference: the SiamFC template/search crops (exact
official arithmetic, `lorat_hf.cropping`), ImageNet normalisation, the template foreground token types, the Hann-window
decoding of the score map and the inverse crop mapping. Saved as `preprocessor_config.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from .boxes import clip_boxes_to_image
from .configuration_lora_tracker import CropGeometry
from .cropping import crop_image, image_mean_color, invert_params, map_boxes, search_crop_params, siamfc_crop_params
from .labels import template_token_type_ids_from_boxes
from .video_io import FrameInput, to_rgb_array


def hann_window(grid_wh: Sequence[int]) -> torch.Tensor:
    """`(H, W)` outer product of two symmetric Hann windows (`periodic=False`), float32."""
    width, height = int(grid_wh[0]), int(grid_wh[1])
    return torch.outer(torch.hann_window(height, periodic=False), torch.hann_window(width, periodic=False))


@dataclass
class TemplateInputs:
    """A prepared template: `pixel_values (3, Hz, Wz)` normalised, `token_type_ids (zH, zW)` int64, the pixel-aligned
    crop map `params (2, 2)`, the target box in crop pixels `box_in_crop (4,)` and the frame's mean colour `(3,)`."""

    pixel_values: torch.Tensor
    token_type_ids: torch.Tensor
    params: np.ndarray
    box_in_crop: np.ndarray
    padding_color: torch.Tensor


@dataclass
class SearchInputs:
    """A prepared search region: `pixel_values (3, Hx, Wx)` normalised and the pixel-aligned map `params (2, 2)`."""

    pixel_values: torch.Tensor
    params: np.ndarray


class LoraTrackerImageProcessor(CropGeometry, BaseImageProcessor):
    r"""Image processor for [`LoraTrackerModel`].

    Args:
        template_size, search_size (`int` or `[width, height]`): crop sizes in pixels (112/224 or 196/378).
        patch_size (`int`): backbone patch size (token stride).
        template_area_factor, search_area_factor (`float`): SiamFC context factors (2.0; 4.0 or 5.0).
        min_object_size (`float`): previous-box size floor in pixels before a search crop (10).
        window_penalty (`float`): Hann-window weight of the decoding (0.45).
        image_mean, image_std (`list[float]`): normalisation applied to `crop / 255`.
    """

    model_input_names = ["template_pixel_values", "search_pixel_values", "template_token_type_ids"]

    def __init__(
        self,
        template_size: int | list[int] = 112,
        search_size: int | list[int] = 224,
        patch_size: int = 14,
        template_area_factor: float = 2.0,
        search_area_factor: float = 4.0,
        min_object_size: float = 10.0,
        window_penalty: float = 0.45,
        image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.template_size = template_size if isinstance(template_size, int) else list(template_size)
        self.search_size = search_size if isinstance(search_size, int) else list(search_size)
        self.patch_size = int(patch_size)
        self.template_area_factor = float(template_area_factor)
        self.search_area_factor = float(search_area_factor)
        self.min_object_size = float(min_object_size)
        self.window_penalty = float(window_penalty)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]

    @classmethod
    def from_tracker_config(cls, config, **kwargs: Any) -> LoraTrackerImageProcessor:
        """The processor matching a `LoraTrackerConfig` (sizes, factors, window penalty)."""
        values = dict(
            template_size=config.template_size,
            search_size=config.search_size,
            patch_size=config.patch_size,
            template_area_factor=config.template_area_factor,
            search_area_factor=config.search_area_factor,
            min_object_size=config.min_object_size,
            window_penalty=config.window_penalty,
        )
        values.update(kwargs)
        return cls(**values)

    # ----- pixels -----
    def normalize_crop(self, crop: torch.Tensor) -> torch.Tensor:
        """`(..., 3, H, W)` float crop in 0..255 -> `(crop / 255 - mean) / std`."""
        mean = torch.tensor(self.image_mean, dtype=crop.dtype, device=crop.device).view(3, 1, 1)
        std = torch.tensor(self.image_std, dtype=crop.dtype, device=crop.device).view(3, 1, 1)
        return (crop / 255.0 - mean) / std

    def prepare_template(self, frame: FrameInput, box_xyxy: Sequence[float] | np.ndarray) -> TemplateInputs:
        """Template crop (context `template_area_factor`, frame-mean padding) and its foreground token types."""
        frame = to_rgb_array(frame)
        box = np.asarray(box_xyxy, dtype=np.float64)
        padding = image_mean_color(frame)
        params = siamfc_crop_params(box, self.template_area_factor, self.template_size_wh)
        crop = crop_image(frame, params, self.template_size_wh, padding)
        box_in_crop = map_boxes(box, crop.params)
        token_types = template_token_type_ids_from_boxes(box_in_crop[None], self.template_grid_wh, self.patch_size)[0]
        return TemplateInputs(self.normalize_crop(crop.image), token_types, crop.params, box_in_crop, padding)

    def prepare_search(
        self, frame: FrameInput, reference_box_xyxy: Sequence[float] | np.ndarray, padding_color: torch.Tensor
    ) -> SearchInputs:
        """Search crop around `reference_box_xyxy` (grown to `min_object_size`), padded with `padding_color`."""
        frame = to_rgb_array(frame)
        params = search_crop_params(
            reference_box_xyxy, self.search_area_factor, self.search_size_wh, self.min_object_size
        )
        crop = crop_image(frame, params, self.search_size_wh, padding_color)
        return SearchInputs(self.normalize_crop(crop.image), crop.params)

    # ----- decoding -----
    def select_best_cells(
        self, score_map: torch.Tensor, pred_boxes: torch.Tensor, window_penalty: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hann-penalised argmax of `sigmoid(score_map)`.

        Args:
            score_map: `(B, H, W)` logits; pred_boxes: `(B, H, W, 4)` normalised `xyxy`.
        Returns:
            `(boxes_search_px (B, 4) float32, confidence (B,) un-penalised, best_index (B,) flat row*W+col)`.
        """
        penalty = self.window_penalty if window_penalty is None else window_penalty
        batch, height, width = score_map.shape
        probabilities = score_map.float().sigmoid()
        penalised = probabilities * (1 - penalty) + hann_window((width, height)).to(probabilities.device) * penalty
        best_index = penalised.reshape(batch, -1).argmax(dim=1)
        confidence = probabilities.reshape(batch, -1).gather(1, best_index[:, None])[:, 0]
        boxes = pred_boxes.float().reshape(batch, -1, 4)[torch.arange(batch, device=best_index.device), best_index]
        size = torch.tensor(self.search_size_wh * 2, dtype=boxes.dtype, device=boxes.device)
        return boxes * size, confidence, best_index

    @staticmethod
    def boxes_to_frame(
        boxes_search_px: np.ndarray | torch.Tensor,
        params: np.ndarray,
        frame_wh: Sequence[int] | np.ndarray,
        clip: bool = True,
    ) -> np.ndarray:
        """Map boxes `(B, 4)` from search-crop pixels to frame pixels with the inverse of the pixel-aligned `params`
        `(B, 2, 2)` (float64), clipped to the frame (`frame_wh` `(2,)` or `(B, 2)`) unless `clip=False`."""
        if isinstance(boxes_search_px, torch.Tensor):
            boxes_search_px = boxes_search_px.detach().cpu().numpy()
        mapped = map_boxes(np.asarray(boxes_search_px, dtype=np.float64), invert_params(params))
        return clip_boxes_to_image(mapped, frame_wh) if clip else mapped

    # ----- batched convenience API -----
    def preprocess(
        self,
        images: FrameInput | list[FrameInput],
        boxes: Sequence[Sequence[float]] | np.ndarray,
        search_images: FrameInput | list[FrameInput] | None = None,
        search_reference_boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
        box_format: str = "xyxy",
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Model inputs for a batch: template crops of `images` around `boxes`, and optionally search crops of
        `search_images` around `search_reference_boxes` (default: the template boxes), padded with each template
        frame's mean colour. Boxes are pixels in `box_format` (`"xyxy"` or `"xywh"`).

        Returns a `BatchFeature` with `template_pixel_values (B, 3, Hz, Wz)`, `template_token_type_ids (B, zH, zW)`,
        `template_params (B, 2, 2)` and, with search images, `search_pixel_values (B, 3, Hx, Wx)`, `search_params`.
        """
        from .boxes import to_xyxy

        images = images if isinstance(images, list) else [images]
        boxes_xyxy = to_xyxy(np.asarray(boxes, dtype=np.float64).reshape(len(images), 4), box_format)
        templates = [self.prepare_template(frame, box) for frame, box in zip(images, boxes_xyxy, strict=True)]
        data = {
            "template_pixel_values": torch.stack([t.pixel_values for t in templates]),
            "template_token_type_ids": torch.stack([t.token_type_ids for t in templates]),
            "template_params": torch.from_numpy(np.stack([t.params for t in templates])),
        }
        if search_images is not None:
            search_images = search_images if isinstance(search_images, list) else [search_images]
            references = (
                boxes_xyxy
                if search_reference_boxes is None
                else to_xyxy(
                    np.asarray(search_reference_boxes, dtype=np.float64).reshape(len(search_images), 4), box_format
                )
            )
            searches = [
                self.prepare_search(frame, box, template.padding_color)
                for frame, box, template in zip(search_images, references, templates, strict=True)
            ]
            data["search_pixel_values"] = torch.stack([s.pixel_values for s in searches])
            data["search_params"] = torch.from_numpy(np.stack([s.params for s in searches]))
        return BatchFeature(data=data, tensor_type=return_tensors)


__all__ = ["LoraTrackerImageProcessor", "TemplateInputs", "SearchInputs", "hann_window"]
