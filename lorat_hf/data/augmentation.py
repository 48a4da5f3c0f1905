"""LoRAT training augmentations on crops, without torchvision.

Applied after cropping, in the official order (`config/LoRAT/run.yaml`, `augmentation`):

1. horizontal flip, p = 0.5, independently for the template and each search crop (the box follows);
2. colour jitter, brightness / contrast / saturation 0.4, independently per crop, in a random order, with
   torchvision-functional semantics on float images: brightness blends with black, contrast with the mean of the
   grayscale image, saturation with the grayscale image (`0.2989 R + 0.587 G + 0.114 B`), each clamped to the range;
3. DeiT-III "3-augment", jointly for all crops: exactly one of grayscale, solarize (values >= 128 inverted) or
   Gaussian blur with sigma ~ U[0.1, 2.0]. As in the official code, which goes through PIL, the crops are truncated
   to uint8 first and this step works on 8-bit pixels (PIL-style luma `0.299 R + 0.587 G + 0.114 B` for grayscale).

Images are `(H, W, 3)` float32 RGB arrays in 0..255; boxes are continuous `xyxy` in crop pixels. Every random draw
comes from the caller's numpy `Generator` and happens in a fixed order (flip each crop, template first, jitter each
crop, 3-augment), so a sample is reproducible from its generator. LoRATv2 tuplets (a template and several search
crops) go through the same steps, per crop and jointly as above (`trackit/data/methods/LoRATv2_train`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

GRAYSCALE_WEIGHTS = np.array((0.2989, 0.587, 0.114), dtype=np.float32)  # torchvision rgb_to_grayscale
THREE_AUGMENT_OPS = ("grayscale", "solarize", "blur")
_MAX_VALUE = 255.0


# ----- geometry -----
def horizontal_flip(image: np.ndarray, box_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an `(H, W, C)` image and its continuous `xyxy` box: `x -> W - x`."""
    width = image.shape[1]
    box = np.asarray(box_xyxy, dtype=np.float64)
    flipped = np.array((width - box[2], box[1], width - box[0], box[3]))
    return cv2.flip(np.ascontiguousarray(image), 1), flipped


# ----- colour jitter (torchvision functional semantics, 0..255 floats) -----
def _float_image(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image, dtype=np.float32)


def _affine_colour(image: np.ndarray, matrix: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """`clip(image @ matrix.T + offset)` per pixel in one OpenCV pass (`cv2.transform`), float32."""
    affine = np.concatenate((matrix, np.full((3, 1), offset)), axis=1).astype(np.float32)
    out = cv2.transform(_float_image(image), affine)
    return np.clip(out, 0.0, _MAX_VALUE, out=out)


def rgb_to_grayscale(image: np.ndarray) -> np.ndarray:
    """`(H, W, 3)` float RGB -> `(H, W)` float32 luma with torchvision's weights (not rounded)."""
    return cv2.transform(_float_image(image), GRAYSCALE_WEIGHTS[None])


def adjust_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with black: `clip(factor * image)`."""
    return _affine_colour(image, factor * np.eye(3))


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the mean of the grayscale image: `clip(factor * image + (1 - factor) * mean)`."""
    image = _float_image(image)
    mean = float(np.dot(cv2.mean(image)[:3], GRAYSCALE_WEIGHTS))  # = mean of the luma image (linear)
    return _affine_colour(image, factor * np.eye(3), (1.0 - factor) * mean)


def adjust_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the grayscale image: `clip(factor * image + (1 - factor) * luma)`."""
    return _affine_colour(image, factor * np.eye(3) + (1.0 - factor) * np.outer(np.ones(3), GRAYSCALE_WEIGHTS))


def _factor_range(strength: float, name: str) -> tuple[float, float] | None:
    if strength < 0:
        raise ValueError(f"{name} jitter strength must be >= 0, got {strength}.")
    return None if strength == 0 else (max(0.0, 1.0 - strength), 1.0 + strength)


@dataclass(frozen=True)
class ColorJitterParams:
    """One colour-jitter draw: `order` of the operations (0 brightness, 1 contrast, 2 saturation) and the factors
    (`None` when that jitter is off)."""

    order: tuple[int, ...]
    brightness: float | None
    contrast: float | None
    saturation: float | None


def draw_color_jitter(
    rng: np.random.Generator, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4
) -> ColorJitterParams:
    """Random order and factors `U[max(0, 1 - s), 1 + s]` (the official draw sequence: a permutation of four
    slots, the fourth being the unused hue, then the factors in brightness, contrast, saturation order)."""
    order = tuple(int(i) for i in rng.permutation(4) if i < 3)
    factors = []
    for strength, name in ((brightness, "brightness"), (contrast, "contrast"), (saturation, "saturation")):
        bounds = _factor_range(strength, name)
        factors.append(None if bounds is None else float(rng.uniform(*bounds)))
    return ColorJitterParams(order, *factors)


def apply_color_jitter(image: np.ndarray, params: ColorJitterParams) -> np.ndarray:
    """Apply one colour-jitter draw to an `(H, W, 3)` float image in 0..255."""
    operations = {
        0: (adjust_brightness, params.brightness),
        1: (adjust_contrast, params.contrast),
        2: (adjust_saturation, params.saturation),
    }
    for index in params.order:
        function, factor = operations[index]
        if factor is not None:
            image = function(image, factor)
    return image


# ----- DeiT-III 3-augment (8-bit, PIL semantics) -----
def to_uint8(image: np.ndarray) -> np.ndarray:
    """Truncate a 0..255 float image to uint8 (what `to_pil_image` does to the official float crops)."""
    return np.clip(image, 0.0, _MAX_VALUE).astype(np.uint8)


def grayscale_uint8(image: np.ndarray) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB -> 3-channel luma (`0.299 R + 0.587 G + 0.114 B`, rounded)."""
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def solarize_uint8(image: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Invert every value >= `threshold` (`v -> 255 - v`)."""
    values = np.arange(256)
    return cv2.LUT(image, np.where(values >= threshold, 255 - values, values).astype(np.uint8))


def gaussian_blur_uint8(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation `sigma` pixels (kernel +-3 sigma, edge pixels replicated)."""
    if sigma <= 0:
        raise ValueError(f"The blur sigma must be positive, got {sigma}.")
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class ThreeAugmentParams:
    """One 3-augment draw: `operation` in `THREE_AUGMENT_OPS`, and the blur `sigma` (`None` otherwise)."""

    operation: str
    sigma: float | None = None


def draw_three_augment(rng: np.random.Generator, sigma_range: tuple[float, float] = (0.1, 2.0)) -> ThreeAugmentParams:
    """Choose exactly one of grayscale, solarize and blur uniformly (blur: sigma ~ U[sigma_range])."""
    operation = THREE_AUGMENT_OPS[int(rng.integers(3))]
    if operation == "blur":
        return ThreeAugmentParams(operation, float(rng.uniform(*sigma_range)))
    return ThreeAugmentParams(operation)


def apply_three_augment(image: np.ndarray, params: ThreeAugmentParams, solarize_threshold: int = 128) -> np.ndarray:
    """Apply one 3-augment draw to an `(H, W, 3)` uint8 RGB image."""
    if params.operation == "grayscale":
        return grayscale_uint8(image)
    if params.operation == "solarize":
        return solarize_uint8(image, solarize_threshold)
    if params.operation == "blur":
        return gaussian_blur_uint8(image, params.sigma)
    raise ValueError(f"Unknown 3-augment operation {params.operation!r}; expected one of {THREE_AUGMENT_OPS}.")


# ----- the crop pipeline -----
@dataclass
class AugmentationRecord:
    """What was applied to the crops of one sample, template first (for inspection and tests).

    Attributes:
        flipped: per crop, whether it was mirrored.
        jitters: per crop, its colour-jitter draw (empty when colour jitter is off).
        three_augment: the joint 3-augment draw (`None` when off).
    """

    flipped: tuple[bool, ...] = ()
    jitters: tuple[ColorJitterParams, ...] = ()
    three_augment: ThreeAugmentParams | None = None

    @property
    def template_flipped(self) -> bool:
        return self.flipped[0]

    @property
    def search_flipped(self) -> bool:
        """Whether the last (tracked) search crop was mirrored."""
        return self.flipped[-1]

    @property
    def template_jitter(self) -> ColorJitterParams | None:
        return self.jitters[0] if self.jitters else None

    @property
    def search_jitter(self) -> ColorJitterParams | None:
        return self.jitters[-1] if self.jitters else None


@dataclass
class PairAugmentation:
    r"""The official crop augmentations for a template and one or more search crops (LoRAT pairs, LoRATv2 tuplets).

    Args:
        flip_probability (`float`): horizontal-flip probability, drawn independently per crop (0.5).
        brightness, contrast, saturation (`float`): colour-jitter strengths, drawn independently per crop (0.4).
        three_augment (`bool`): apply DeiT-III 3-augment jointly to all crops (True).
        blur_sigma_range (`tuple[float, float]`): blur sigma range in pixels ((0.1, 2.0)).
        solarize_threshold (`int`): solarize threshold on 0..255 (128).
    """

    flip_probability: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    three_augment: bool = True
    blur_sigma_range: tuple[float, float] = field(default=(0.1, 2.0))
    solarize_threshold: int = 128

    def __post_init__(self):
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}.")
        low, high = self.blur_sigma_range
        if not 0 < low <= high:
            raise ValueError(f"blur_sigma_range must satisfy 0 < low <= high, got {self.blur_sigma_range}.")
        for name in ("brightness", "contrast", "saturation"):
            _factor_range(getattr(self, name), name)

    def __call__(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], rng: np.random.Generator
    ) -> tuple[list[np.ndarray], list[np.ndarray], AugmentationRecord]:
        """Augment `(H, W, 3)` float32 RGB crops in 0..255 (template first, then each search crop) and their `xyxy`
        boxes. Draws, in the official order: a flip per crop, a colour jitter per crop, one joint 3-augment.

        Returns `(images, boxes, record)`; images stay float32 in 0..255 (integer valued after the 3-augment).
        """
        if len(images) != len(boxes) or not images:
            raise ValueError(f"Expected one box per crop and at least one crop, got {len(images)} and {len(boxes)}.")
        images = list(images)
        boxes = [np.asarray(box, np.float64) for box in boxes]
        flipped = []
        for index in range(len(images)):
            flip = self.flip_probability > 0 and rng.random() < self.flip_probability
            if flip:
                images[index], boxes[index] = horizontal_flip(images[index], boxes[index])
            flipped.append(bool(flip))
        record = AugmentationRecord(flipped=tuple(flipped))
        if self.brightness or self.contrast or self.saturation:
            jitters = []
            for index in range(len(images)):
                jitters.append(draw_color_jitter(rng, self.brightness, self.contrast, self.saturation))
                images[index] = apply_color_jitter(images[index], jitters[-1])
            record.jitters = tuple(jitters)
        if self.three_augment:
            record.three_augment = draw_three_augment(rng, self.blur_sigma_range)
            images = [
                apply_three_augment(to_uint8(image), record.three_augment, self.solarize_threshold).astype(np.float32)
                for image in images
            ]
        return images, boxes, record


__all__ = [
    "AugmentationRecord",
    "ColorJitterParams",
    "PairAugmentation",
    "ThreeAugmentParams",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "apply_color_jitter",
    "apply_three_augment",
    "draw_color_jitter",
    "draw_three_augment",
    "gaussian_blur_uint8",
    "grayscale_uint8",
    "horizontal_flip",
    "rgb_to_grayscale",
    "solarize_uint8",
    "to_uint8",
]
