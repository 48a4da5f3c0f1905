"""Drawing primitives of the synthetic generator: smooth key-point curves, sub-pixel exact area coverage of boxes,
rounded rectangles and ellipses, textures (patterns, colours) and their descriptions in words."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

PATTERNS = ("checker", "stripes", "dots", "rings", "blobs", "grid")
_TEXTURE_SIZE = 96


def catmull_rom(keys: np.ndarray, num_frames: int, interval: int) -> np.ndarray:
    """`(num_frames, D)` C1-smooth curve through ``keys`` `(K, D)` placed every ``interval`` frames."""
    keys = np.asarray(keys, dtype=np.float64)
    position = np.arange(num_frames, dtype=np.float64) / interval
    index = np.minimum(position.astype(np.int64), len(keys) - 2)
    u = (position - index)[:, None]
    p0 = keys[np.maximum(index - 1, 0)]
    p1, p2 = keys[index], keys[index + 1]
    p3 = keys[np.minimum(index + 2, len(keys) - 1)]
    return 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2 + (3 * p1 - p0 - 3 * p2 + p3) * u**3)


def num_keys(num_frames: int, interval: int) -> int:
    return max(2, math.ceil((num_frames - 1) / interval) + 2)


def pixel_extent(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer ``[x0, x1) x [y0, y1)`` pixel range a box covers, clipped to the frame (may be empty)."""
    x0 = max(int(math.floor(box[0])), 0)
    y0 = max(int(math.floor(box[1])), 0)
    x1 = min(int(math.ceil(box[2])), width)
    y1 = min(int(math.ceil(box[3])), height)
    return x0, y0, x1, y1


def axis_coverage(start: float, stop: float, first: int, last: int) -> np.ndarray:
    cells = np.arange(first, last, dtype=np.float64)
    return np.clip(np.minimum(cells + 1.0, stop) - np.maximum(cells, start), 0.0, 1.0)


@dataclass
class Layer:
    """One drawn object: a texture stretched over a moving box with a shape."""

    texture: np.ndarray
    boxes: np.ndarray
    shape: str = "rectangle"
    corner: float = 0.0

    def alpha(self, t: int, width: int, height: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """Pixel ROI and its `(h, w)` float32 area coverage at frame ``t``."""
        box = self.boxes[t]
        roi = pixel_extent(box, width, height)
        x0, y0, x1, y1 = roi
        if x1 <= x0 or y1 <= y0:
            return roi, np.zeros((0, 0), dtype=np.float32)
        if self.shape == "ellipse":
            return roi, ellipse_coverage(box, roi)
        alpha = np.outer(axis_coverage(box[1], box[3], y0, y1), axis_coverage(box[0], box[2], x0, x1))
        if self.corner > 0:
            alpha *= corner_mask(box, roi, self.corner)
        return roi, alpha.astype(np.float32)

    def full_area(self, t: int) -> float:
        """Rendered area (sum of coverage) of the whole object at frame ``t``, ignoring the frame's borders."""
        box = self.boxes[t]
        shift = np.array([math.floor(box[0]), math.floor(box[1])] * 2, dtype=np.float64)
        moved = Layer(self.texture, (box - shift)[None], self.shape, self.corner)
        canvas_w, canvas_h = math.ceil(box[2] - shift[0]) + 1, math.ceil(box[3] - shift[1]) + 1
        return float(moved.alpha(0, canvas_w, canvas_h)[1].sum(dtype=np.float64))


def corner_mask(box: np.ndarray, roi: tuple[int, int, int, int], corner: float) -> np.ndarray:
    """1 inside a rounded rectangle, 0 in its cut corners, tested at pixel centres clamped into the box.

    Clamping keeps the edge pixels of the straight sides inside the shape, so the covered pixel range stays exactly
    the box's extent (the straight part of every side is at least ``(1 - 2 * corner) * side`` long).
    """
    x0, y0, x1, y1 = roi
    radius = corner * min(box[2] - box[0], box[3] - box[1])
    cx = np.clip(np.arange(x0, x1) + 0.5, box[0], box[2])[None, :]
    cy = np.clip(np.arange(y0, y1) + 0.5, box[1], box[3])[:, None]
    dx = np.maximum(np.maximum(box[0] + radius - cx, cx - (box[2] - radius)), 0.0)
    dy = np.maximum(np.maximum(box[1] + radius - cy, cy - (box[3] - radius)), 0.0)
    # points clamped onto a straight side sit exactly at distance `radius`: compare with a rounding tolerance
    return (np.hypot(dx, dy) <= radius * (1 + 1e-9) + 1e-9).astype(np.float64)


def ellipse_coverage(box: np.ndarray, roi: tuple[int, int, int, int], samples: int = 4) -> np.ndarray:
    x0, y0, x1, y1 = roi
    offsets = (np.arange(samples) + 0.5) / samples
    sx = (np.arange(x0, x1)[:, None] + offsets[None, :]).reshape(-1)
    sy = (np.arange(y0, y1)[:, None] + offsets[None, :]).reshape(-1)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ax, ay = max((box[2] - box[0]) / 2, 1e-6), max((box[3] - box[1]) / 2, 1e-6)
    inside = ((sx[None, :] - cx) / ax) ** 2 + ((sy[:, None] - cy) / ay) ** 2 <= 1.0
    return inside.reshape(y1 - y0, samples, x1 - x0, samples).mean(axis=(1, 3)).astype(np.float32)


def warp_texture(texture: np.ndarray, box: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """Texture stretched over ``box``, sampled at the pixel centres of ``roi`` (bilinear, sub-pixel exact)."""
    x0, y0, x1, y1 = roi
    tex_h, tex_w = texture.shape[:2]
    sx = tex_w / (box[2] - box[0])
    sy = tex_h / (box[3] - box[1])
    matrix = np.array(
        [[sx, 0.0, (x0 + 0.5 - box[0]) * sx - 0.5], [0.0, sy, (y0 + 0.5 - box[1]) * sy - 0.5]], dtype=np.float64
    )
    return cv2.warpAffine(
        texture,
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """RGB in 0..255 (float32) for a hue in degrees and saturation/value in [0, 1]."""
    hsv = np.array([[[hue % 360.0, saturation, value]]], dtype=np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] * 255.0


_HUE_NAMES = (
    (15, "red"),
    (45, "orange"),
    (70, "yellow"),
    (160, "green"),
    (200, "cyan"),
    (260, "blue"),
    (290, "purple"),
    (335, "pink"),
    (360, "red"),
)


def _colour_name(hue: float, saturation: float, value: float) -> str:
    if value < 0.3:
        return "black"
    if saturation < 0.25:
        return "white" if value > 0.8 else "grey"
    return next(name for limit, name in _HUE_NAMES if hue % 360 < limit)


@dataclass
class TextureSpec:
    pattern: str
    colours: list[tuple[float, float, float]]
    period: float
    angle: float
    border: bool
    grain: int = field(default=0)

    def render(self) -> np.ndarray:
        size = _TEXTURE_SIZE
        rng = np.random.default_rng(self.grain)
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        period = self.period
        if self.pattern == "checker":
            mask = ((np.floor(x / period) + np.floor(y / period)) % 2).astype(bool)
        elif self.pattern == "stripes":
            mask = ((x * math.cos(self.angle) + y * math.sin(self.angle)) / period) % 1.0 < 0.5
        elif self.pattern == "dots":
            mask = ((x % period) - period / 2) ** 2 + ((y % period) - period / 2) ** 2 < (period * 0.3) ** 2
        elif self.pattern == "rings":
            mask = (np.hypot(x - size / 2, y - size / 2) / period) % 1.0 < 0.5
        elif self.pattern == "grid":
            mask = ((x % period) < period * 0.3) | ((y % period) < period * 0.3)
        elif self.pattern == "blobs":
            field_ = cv2.resize(rng.random((5, 5)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
            mask = field_ > np.median(field_)
        else:
            raise ValueError(f"Unknown pattern {self.pattern!r}; choose one of {PATTERNS}.")
        first, second = (hsv_to_rgb(*colour) for colour in self.colours[:2])
        texture = np.where(mask[..., None], second, first).astype(np.float32)
        texture += rng.normal(0.0, 6.0, texture.shape).astype(np.float32)
        if self.border:
            edge = hsv_to_rgb(*self.colours[2])
            texture[:3], texture[-3:], texture[:, :3], texture[:, -3:] = edge, edge, edge, edge
        return np.clip(texture, 0, 255)

    def description(self) -> str:
        names = [_colour_name(*colour) for colour in self.colours[:2]]
        colours = names[0] if names[0] == names[1] else f"{names[0]} and {names[1]}"
        shape = {
            "checker": "checkered",
            "stripes": "striped",
            "dots": "dotted",
            "rings": "ringed",
            "blobs": "spotted",
            "grid": "grid-patterned",
        }[self.pattern]
        return f"a {colours} {shape} box"


def _random_colour(rng: np.random.Generator, hue: float | None = None) -> tuple[float, float, float]:
    hue = rng.uniform(0, 360) if hue is None else hue
    return float(hue % 360), float(rng.uniform(0.55, 1.0)), float(rng.uniform(0.55, 1.0))


def random_texture_spec(rng: np.random.Generator, pattern: str | None = None) -> TextureSpec:
    hue = rng.uniform(0, 360)
    colours = [
        _random_colour(rng, hue),
        _random_colour(rng, hue + rng.uniform(90, 270)),
        (float(rng.uniform(0, 360)), float(rng.uniform(0, 0.4)), float(rng.choice([0.15, 0.95]))),
    ]
    return TextureSpec(
        pattern=pattern or str(rng.choice(PATTERNS)),
        colours=colours,
        period=float(rng.uniform(14, 32)),
        angle=float(rng.uniform(0, math.pi)),
        border=bool(rng.random() < 0.5),
        grain=int(rng.integers(2**31)),
    )


def distractor_spec(rng: np.random.Generator, target: TextureSpec) -> TextureSpec:
    """Similar to the target but distinguishable: same pattern in other colours, or same colours, other pattern."""
    if rng.random() < 0.5:
        shift = rng.uniform(70, 290)
        colours = [(h + shift, s, v) for h, s, v in target.colours[:2]] + [target.colours[2]]
        return replace(target, colours=[(float(h % 360), s, v) for h, s, v in colours], grain=int(rng.integers(2**31)))
    other = [pattern for pattern in PATTERNS if pattern != target.pattern]
    return replace(target, pattern=str(rng.choice(other)), grain=int(rng.integers(2**31)))
