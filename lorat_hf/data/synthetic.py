"""Deterministic synthetic tracking videos with exact ground truth, and writers for the LaSOT and generic layouts.

A video shows one textured target (a rectangle, possibly with rounded corners) moving smoothly over a cluttered,
slowly panning background, changing scale and aspect ratio, next to similar-looking distractors (same pattern in
other colours, or same colours with another pattern) and behind occluders (scene objects it passes behind). Optional
effects: leaving the frame, motion blur, illumination change and sensor noise. Everything is drawn from one seed.

Ground truth is derived from the rendering, not estimated:

* ``boxes_xyxy`` `(N, 4)`: the target's full extent (occluded parts included) in continuous 0-based ``xyxy`` pixels,
  clipped to the frame; ``NaN`` when no part of it is inside the frame. The rendered target covers exactly the pixels
  ``[floor(x1), ceil(x2)) x [floor(y1), ceil(y2))`` of that box (area coverage is computed analytically).
* ``visible_fraction`` `(N,)`: the rendered, unoccluded in-frame area of the target divided by its full rendered
  area (`SyntheticVideo.target_area`, which excludes rounded-off corners).
* ``out_of_view`` = in-frame share of the box area ``< min_visible_fraction``; ``full_occlusion`` = not out of view and
  ``visible_fraction < min_visible_fraction``; ``visible`` = neither. Motion blur and noise are applied to the frame
  after compositing (like real footage), so they do not change the geometry.

Files: `write_lasot_layout` writes LaSOT's own conventions (see its docstring: 1-based integer pixel-extent boxes,
``full_occlusion.txt``, ``out_of_view.txt``, ``nlp.txt``, ``img/%08d.jpg``, split list files) and keeps the exact
float annotations next to them in ``synthetic.json``; `write_generic_layout` writes exact float ``x,y,w,h`` plus
``visible.txt``. Both are resumable: finished sequences are skipped when called again with the same arguments.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from ..file_utils import write_text_atomic

logger = logging.getLogger(__name__)

PATTERNS = ("checker", "stripes", "dots", "rings", "blobs", "grid")
_TEXTURE_SIZE = 96
_NOISE_PAD = 61  # sensor noise = one pre-drawn field shifted by up to this many pixels per frame
_MANIFEST = "synthetic_manifest.json"
_SIDECAR = "synthetic.json"


@dataclass
class SyntheticVideoConfig:
    """Knobs of the synthetic video generator (sizes in pixels unless a name says ``fraction``).

    Args:
        frame_size: ``(width, height)`` of the frames.
        num_frames: frames per sequence.
        target_size: range of the target's initial side ``sqrt(w * h)`` as a fraction of the frame's short side.
        target_aspect_ratio: range of the initial ``w / h``.
        min_target_size: smallest width/height the target may shrink to.
        speed: mean target speed as a fraction of the frame diagonal per frame.
        keyframe_interval: frames between motion key points (smaller = more turns).
        scale_change: largest ``|log(scale)|`` reached relative to frame 0.
        aspect_change: largest ``|log(aspect-ratio change)|``.
        rounded_corner_prob: probability that the target has rounded corners.
        num_distractors: ``(min, max)`` number of similar-looking distractors (drawn behind the target).
        occlusion_prob: probability of each of ``max_occlusions`` occlusion events.
        max_occlusions: occluders per sequence at most.
        full_occlusion_ratio: share of occlusion events with an occluder large enough to hide the target.
        out_of_view_prob: probability that the target leaves the frame once.
        motion_blur_prob: probability that a 6-frame window is motion-blurred.
        motion_blur_strength: blur length per pixel/frame of target speed.
        illumination_change: amplitude of the global gain change (0.3 = gain within [0.7, 1.3]) and of a moving
            light gradient (half of it).
        camera_motion: largest background pan, as a fraction of the frame's short side.
        background_clutter: clutter shapes per 100,000 background pixels.
        noise_std: Gaussian sensor noise (0..255 units).
        min_visible_fraction: visibility threshold of the flags (see the module docstring).
    """

    frame_size: tuple[int, int] = (320, 240)
    num_frames: int = 100
    target_size: tuple[float, float] = (0.15, 0.3)
    target_aspect_ratio: tuple[float, float] = (0.5, 2.0)
    min_target_size: float = 8.0
    speed: float = 0.012
    keyframe_interval: int = 15
    scale_change: float = 0.35
    aspect_change: float = 0.25
    rounded_corner_prob: float = 0.5
    num_distractors: tuple[int, int] = (1, 2)
    occlusion_prob: float = 0.4
    max_occlusions: int = 2
    full_occlusion_ratio: float = 0.4
    out_of_view_prob: float = 0.15
    motion_blur_prob: float = 0.1
    motion_blur_strength: float = 1.0
    illumination_change: float = 0.2
    camera_motion: float = 0.05
    background_clutter: float = 12.0
    noise_std: float = 2.0
    min_visible_fraction: float = 0.25

    def __post_init__(self) -> None:
        self.frame_size = tuple(int(v) for v in self.frame_size)
        self.target_size = tuple(float(v) for v in self.target_size)
        self.target_aspect_ratio = tuple(float(v) for v in self.target_aspect_ratio)
        self.num_distractors = tuple(int(v) for v in self.num_distractors)
        if len(self.frame_size) != 2 or min(self.frame_size) < 32:
            raise ValueError(f"frame_size must be (width, height) with both >= 32, got {self.frame_size}.")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}.")
        for name in ("target_size", "target_aspect_ratio", "num_distractors"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a (min, max) range with 0 <= min <= max, got {(low, high)}.")
        if not 0 < self.target_size[1] <= 0.9:
            raise ValueError(f"target_size must lie in (0, 0.9], got {self.target_size}.")
        if self.target_aspect_ratio[0] <= 0:
            raise ValueError(f"target_aspect_ratio must be positive, got {self.target_aspect_ratio}.")
        for name in (
            "rounded_corner_prob",
            "occlusion_prob",
            "full_occlusion_ratio",
            "out_of_view_prob",
            "motion_blur_prob",
            "min_visible_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability/fraction in [0, 1], got {getattr(self, name)}.")
        for name in (
            "min_target_size",
            "speed",
            "scale_change",
            "aspect_change",
            "motion_blur_strength",
            "illumination_change",
            "camera_motion",
            "background_clutter",
            "noise_std",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.illumination_change >= 1:
            raise ValueError(f"illumination_change must be < 1, got {self.illumination_change}.")
        if self.keyframe_interval < 1 or self.max_occlusions < 0:
            raise ValueError("keyframe_interval must be >= 1 and max_occlusions >= 0.")

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SyntheticVideoConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown SyntheticVideoConfig fields {unknown}.")
        return cls(**values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SyntheticVideoConfig:
        """``"easy"`` (no occlusion/out-of-view, one distractor), ``"medium"`` (the defaults) or ``"hard"``."""
        presets = {
            "easy": dict(
                num_distractors=(0, 1),
                occlusion_prob=0.0,
                out_of_view_prob=0.0,
                motion_blur_prob=0.0,
                illumination_change=0.1,
                scale_change=0.2,
                speed=0.008,
                noise_std=1.0,
            ),
            "medium": {},
            "hard": dict(
                num_distractors=(2, 4),
                occlusion_prob=0.7,
                max_occlusions=3,
                full_occlusion_ratio=0.5,
                out_of_view_prob=0.35,
                motion_blur_prob=0.25,
                illumination_change=0.35,
                scale_change=0.6,
                aspect_change=0.4,
                speed=0.02,
                keyframe_interval=10,
                target_size=(0.08, 0.25),
                background_clutter=25.0,
                noise_std=4.0,
            ),
        }
        if name not in presets:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(presets)}.")
        return cls(**{**presets[name], **overrides})


@dataclass
class SyntheticSequence:
    """A generated video. ``frames`` `(N, H, W, 3)` uint8 RGB; annotations as described in the module docstring."""

    frames: np.ndarray
    boxes_xyxy: np.ndarray
    visible: np.ndarray
    visible_fraction: np.ndarray
    out_of_view: np.ndarray
    full_occlusion: np.ndarray
    target_pattern: str
    description: str
    seed: int
    config: SyntheticVideoConfig
    target_masks: np.ndarray | None = None
    """`(N, H, W)` float32 area coverage of the target (before occlusion), when requested."""


# --------------------------------------------------------------------------------------------------------------------
# Geometry and drawing primitives
# --------------------------------------------------------------------------------------------------------------------


def _catmull_rom(keys: np.ndarray, num_frames: int, interval: int) -> np.ndarray:
    """`(num_frames, D)` C1-smooth curve through ``keys`` `(K, D)` placed every ``interval`` frames."""
    keys = np.asarray(keys, dtype=np.float64)
    position = np.arange(num_frames, dtype=np.float64) / interval
    index = np.minimum(position.astype(np.int64), len(keys) - 2)
    u = (position - index)[:, None]
    p0 = keys[np.maximum(index - 1, 0)]
    p1, p2 = keys[index], keys[index + 1]
    p3 = keys[np.minimum(index + 2, len(keys) - 1)]
    return 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2 + (3 * p1 - p0 - 3 * p2 + p3) * u**3)


def _num_keys(num_frames: int, interval: int) -> int:
    return max(2, math.ceil((num_frames - 1) / interval) + 2)


def _pixel_extent(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer ``[x0, x1) x [y0, y1)`` pixel range a box covers, clipped to the frame (may be empty)."""
    x0 = max(int(math.floor(box[0])), 0)
    y0 = max(int(math.floor(box[1])), 0)
    x1 = min(int(math.ceil(box[2])), width)
    y1 = min(int(math.ceil(box[3])), height)
    return x0, y0, x1, y1


def _axis_coverage(start: float, stop: float, first: int, last: int) -> np.ndarray:
    cells = np.arange(first, last, dtype=np.float64)
    return np.clip(np.minimum(cells + 1.0, stop) - np.maximum(cells, start), 0.0, 1.0)


@dataclass
class _Layer:
    """One drawn object: a texture stretched over a moving box with a shape."""

    texture: np.ndarray
    boxes: np.ndarray
    shape: str = "rectangle"
    corner: float = 0.0

    def alpha(self, t: int, width: int, height: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """Pixel ROI and its `(h, w)` float32 area coverage at frame ``t``."""
        box = self.boxes[t]
        roi = _pixel_extent(box, width, height)
        x0, y0, x1, y1 = roi
        if x1 <= x0 or y1 <= y0:
            return roi, np.zeros((0, 0), dtype=np.float32)
        if self.shape == "ellipse":
            return roi, _ellipse_coverage(box, roi)
        alpha = np.outer(_axis_coverage(box[1], box[3], y0, y1), _axis_coverage(box[0], box[2], x0, x1))
        if self.corner > 0:
            alpha *= _corner_mask(box, roi, self.corner)
        return roi, alpha.astype(np.float32)

    def full_area(self, t: int) -> float:
        """Rendered area (sum of coverage) of the whole object at frame ``t``, ignoring the frame's borders."""
        box = self.boxes[t]
        shift = np.array([math.floor(box[0]), math.floor(box[1])] * 2, dtype=np.float64)
        moved = _Layer(self.texture, (box - shift)[None], self.shape, self.corner)
        canvas_w, canvas_h = math.ceil(box[2] - shift[0]) + 1, math.ceil(box[3] - shift[1]) + 1
        return float(moved.alpha(0, canvas_w, canvas_h)[1].sum(dtype=np.float64))


def _corner_mask(box: np.ndarray, roi: tuple[int, int, int, int], corner: float) -> np.ndarray:
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


def _ellipse_coverage(box: np.ndarray, roi: tuple[int, int, int, int], samples: int = 4) -> np.ndarray:
    x0, y0, x1, y1 = roi
    offsets = (np.arange(samples) + 0.5) / samples
    sx = (np.arange(x0, x1)[:, None] + offsets[None, :]).reshape(-1)
    sy = (np.arange(y0, y1)[:, None] + offsets[None, :]).reshape(-1)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ax, ay = max((box[2] - box[0]) / 2, 1e-6), max((box[3] - box[1]) / 2, 1e-6)
    inside = ((sx[None, :] - cx) / ax) ** 2 + ((sy[:, None] - cy) / ay) ** 2 <= 1.0
    return inside.reshape(y1 - y0, samples, x1 - x0, samples).mean(axis=(1, 3)).astype(np.float32)


def _warp_texture(texture: np.ndarray, box: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
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


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
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
class _TextureSpec:
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
        first, second = (_hsv_to_rgb(*colour) for colour in self.colours[:2])
        texture = np.where(mask[..., None], second, first).astype(np.float32)
        texture += rng.normal(0.0, 6.0, texture.shape).astype(np.float32)
        if self.border:
            edge = _hsv_to_rgb(*self.colours[2])
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


def _random_texture_spec(rng: np.random.Generator, pattern: str | None = None) -> _TextureSpec:
    hue = rng.uniform(0, 360)
    colours = [
        _random_colour(rng, hue),
        _random_colour(rng, hue + rng.uniform(90, 270)),
        (float(rng.uniform(0, 360)), float(rng.uniform(0, 0.4)), float(rng.choice([0.15, 0.95]))),
    ]
    return _TextureSpec(
        pattern=pattern or str(rng.choice(PATTERNS)),
        colours=colours,
        period=float(rng.uniform(14, 32)),
        angle=float(rng.uniform(0, math.pi)),
        border=bool(rng.random() < 0.5),
        grain=int(rng.integers(2**31)),
    )


def _distractor_spec(rng: np.random.Generator, target: _TextureSpec) -> _TextureSpec:
    """Similar to the target but distinguishable: same pattern in other colours, or same colours, other pattern."""
    if rng.random() < 0.5:
        shift = rng.uniform(70, 290)
        colours = [(h + shift, s, v) for h, s, v in target.colours[:2]] + [target.colours[2]]
        return replace(target, colours=[(float(h % 360), s, v) for h, s, v in colours], grain=int(rng.integers(2**31)))
    other = [pattern for pattern in PATTERNS if pattern != target.pattern]
    return replace(target, pattern=str(rng.choice(other)), grain=int(rng.integers(2**31)))


# --------------------------------------------------------------------------------------------------------------------
# The video
# --------------------------------------------------------------------------------------------------------------------


class SyntheticVideo:
    """A planned synthetic video: annotations are computed at construction, frames rendered on demand.

    `render_frame` is deterministic and independent of call order, so frames can be streamed to disk.
    """

    def __init__(self, config: SyntheticVideoConfig | None = None, seed: int = 0):
        self.config = config or SyntheticVideoConfig()
        self.seed = int(seed)
        cfg = self.config
        self.width, self.height = cfg.frame_size
        self.num_frames = cfg.num_frames
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7]))
        self._plan_background(rng)
        self._plan_target(rng)
        self._plan_distractors(rng)
        self._plan_occluders(rng)
        self._plan_effects(rng)
        self._annotate()

    # ---------------------------------------------------------------------------------------------------- planning

    def _walk(self, rng: np.random.Generator, start: np.ndarray, margin: np.ndarray) -> np.ndarray:
        """Key points of a smooth random walk inside ``[margin, size - margin]``."""
        cfg = self.config
        count = _num_keys(self.num_frames, cfg.keyframe_interval)
        low, high = margin, np.array([self.width, self.height], dtype=np.float64) - margin
        high = np.maximum(high, low + 1.0)
        step = cfg.speed * math.hypot(self.width, self.height) * cfg.keyframe_interval
        keys = [np.asarray(start, dtype=np.float64)]
        angle = rng.uniform(0, 2 * math.pi)
        for _ in range(count - 1):
            angle += rng.normal(0.0, 0.8)
            point = keys[-1] + step * rng.uniform(0.5, 1.5) * np.array([math.cos(angle), math.sin(angle)])
            for axis in range(2):
                if point[axis] < low[axis] or point[axis] > high[axis]:
                    point[axis] = np.clip(
                        2 * np.clip(point[axis], low[axis], high[axis]) - point[axis], low[axis], high[axis]
                    )
                    angle = math.pi - angle if axis == 0 else -angle
            keys.append(point)
        return np.stack(keys)

    def _sizes(self, rng: np.random.Generator, side: float, aspect: float, scale_amp: float, aspect_amp: float):
        cfg = self.config
        count = _num_keys(self.num_frames, cfg.keyframe_interval)
        scale_keys = np.concatenate([[0.0], rng.uniform(-scale_amp, scale_amp, count - 1)])
        aspect_keys = np.concatenate([[0.0], rng.uniform(-aspect_amp, aspect_amp, count - 1)])
        log_scale = _catmull_rom(scale_keys[:, None], self.num_frames, cfg.keyframe_interval)[:, 0]
        log_aspect = _catmull_rom(aspect_keys[:, None], self.num_frames, cfg.keyframe_interval)[:, 0]
        width = side * math.sqrt(aspect) * np.exp(log_scale + log_aspect / 2)
        height = side * math.sqrt(1 / aspect) * np.exp(log_scale - log_aspect / 2)
        limit = 0.9 * min(self.width, self.height)
        return np.clip(width, cfg.min_target_size, limit), np.clip(height, cfg.min_target_size, limit)

    def _boxes(self, centres: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
        half = np.stack([widths, heights], axis=1) / 2
        return np.concatenate([centres - half, centres + half], axis=1)

    def _plan_background(self, rng: np.random.Generator) -> None:
        cfg = self.config
        self.pan = int(round(cfg.camera_motion * min(self.width, self.height)))
        canvas_w, canvas_h = self.width + 2 * self.pan, self.height + 2 * self.pan
        base = _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.8))
        canvas = np.empty((canvas_h, canvas_w, 3), dtype=np.float32)
        canvas[:] = base
        for cells, amplitude in ((3, 45.0), (8, 25.0), (20, 12.0)):
            grid_shape = (cells, max(2, round(cells * canvas_w / canvas_h)))
            grid = rng.normal(0.0, amplitude, (*grid_shape, 1)) + rng.normal(0.0, 0.4 * amplitude, (*grid_shape, 3))
            canvas += cv2.resize(grid.astype(np.float32), (canvas_w, canvas_h), interpolation=cv2.INTER_CUBIC)
        canvas = np.clip(canvas, 0, 255).astype(np.uint8)
        num_shapes = int(round(cfg.background_clutter * canvas_w * canvas_h / 1e5))
        short = min(canvas_w, canvas_h)
        for _ in range(num_shapes):
            colour = tuple(
                float(c) for c in _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.05, 0.7), rng.uniform(0.2, 0.95))
            )
            centre = (int(rng.integers(canvas_w)), int(rng.integers(canvas_h)))
            size = int(rng.uniform(0.03, 0.15) * short) + 2
            kind = rng.integers(4)
            if kind == 0:
                cv2.rectangle(
                    canvas,
                    (centre[0] - size, centre[1] - size // 2),
                    (centre[0] + size, centre[1] + size // 2),
                    colour,
                    -1,
                    cv2.LINE_AA,
                )
            elif kind == 1:
                cv2.circle(canvas, centre, size, colour, -1, cv2.LINE_AA)
            elif kind == 2:
                end = (
                    centre[0] + int(rng.integers(-3 * size, 3 * size)),
                    centre[1] + int(rng.integers(-3 * size, 3 * size)),
                )
                cv2.line(canvas, centre, end, colour, int(rng.integers(1, 5)), cv2.LINE_AA)
            else:
                points = (np.array(centre) + rng.integers(-size, size + 1, (3, 2))).astype(np.int32)
                cv2.fillPoly(canvas, [points], colour, cv2.LINE_AA)
        self._background = canvas.astype(np.float32)
        count = _num_keys(self.num_frames, 2 * cfg.keyframe_interval)
        keys = rng.uniform(0, 2 * self.pan, (count, 2)) if self.pan else np.zeros((count, 2))
        self._camera = np.rint(_catmull_rom(keys, self.num_frames, 2 * cfg.keyframe_interval)).astype(np.int64)
        self._camera = np.clip(self._camera, 0, 2 * self.pan)

    def _plan_target(self, rng: np.random.Generator) -> None:
        cfg = self.config
        short = min(self.width, self.height)
        side = max(rng.uniform(*cfg.target_size) * short, cfg.min_target_size)
        low, high = cfg.target_aspect_ratio
        aspect = math.exp(rng.uniform(math.log(low), math.log(high))) if high > low else low
        widths, heights = self._sizes(rng, side, aspect, cfg.scale_change, cfg.aspect_change)
        margin = np.array([widths[0], heights[0]]) / 2 + 2.0
        start = rng.uniform(margin, np.maximum(np.array([self.width, self.height]) - margin, margin + 1e-3))
        keys = self._walk(rng, start, np.array([widths.max(), heights.max()]) / 2 * 0.6)
        first_event = max(2, math.ceil(0.15 * self.num_frames / cfg.keyframe_interval))
        if rng.random() < cfg.out_of_view_prob and first_event <= len(keys) - 2:
            key = int(rng.integers(first_event, len(keys) - 1))
            previous = keys[key - 1]
            distances = [previous[0], self.width - previous[0], previous[1], self.height - previous[1]]
            side_index = int(np.argmin(distances))
            axis = side_index // 2
            extent = (widths.max() if axis == 0 else heights.max()) * 0.75 + 4.0
            border = 0.0 if side_index % 2 == 0 else (self.width, self.height)[axis]
            outside = border - extent if side_index % 2 == 0 else border + extent
            keys[key, axis] = outside
            if key + 1 <= len(keys) - 2 and rng.random() < 0.5:
                keys[key + 1, axis] = outside
        centres = _catmull_rom(keys, self.num_frames, cfg.keyframe_interval)
        self.target_spec = _random_texture_spec(rng)
        corner = float(rng.uniform(0.1, 0.3)) if rng.random() < cfg.rounded_corner_prob else 0.0
        self.target = _Layer(self.target_spec.render(), self._boxes(centres, widths, heights), corner=corner)

    def _plan_distractors(self, rng: np.random.Generator) -> None:
        cfg = self.config
        low, high = cfg.num_distractors
        count = int(rng.integers(low, high + 1))
        base_w, base_h = self.target.boxes[0, 2:] - self.target.boxes[0, :2]
        self.distractors = []
        for _ in range(count):
            factor = rng.uniform(0.75, 1.3)
            widths, heights = self._sizes(
                rng,
                math.sqrt(base_w * base_h) * factor,
                base_w / base_h * math.exp(rng.uniform(-0.2, 0.2)),
                cfg.scale_change,
                cfg.aspect_change,
            )
            margin = np.array([widths.max(), heights.max()]) / 2
            start = rng.uniform(margin * 0.6, np.maximum(np.array([self.width, self.height]) - margin * 0.6, margin))
            centres = _catmull_rom(self._walk(rng, start, margin * 0.6), self.num_frames, cfg.keyframe_interval)
            spec = _distractor_spec(rng, self.target_spec)
            self.distractors.append(
                _Layer(spec.render(), self._boxes(centres, widths, heights), corner=self.target.corner)
            )

    def _plan_occluders(self, rng: np.random.Generator) -> None:
        cfg = self.config
        self.occluders = []
        frames = np.arange(self.num_frames, dtype=np.float64)[:, None]
        first = max(3, int(0.2 * self.num_frames))
        for _ in range(cfg.max_occlusions):
            if rng.random() >= cfg.occlusion_prob or first >= self.num_frames:
                continue
            full = rng.random() < cfg.full_occlusion_ratio
            shape = "ellipse" if rng.random() < 0.5 else "rectangle"
            for _attempt in range(6):
                t0 = int(rng.integers(first, self.num_frames))
                box = self.target.boxes[t0]
                size = box[2:] - box[:2]
                centre = (box[:2] + box[2:]) / 2
                if full:
                    grow = rng.uniform(1.5, 2.2, 2) if shape == "ellipse" else rng.uniform(1.25, 1.8, 2)
                    occ_size = size * grow + 4.0
                else:
                    occ_size = size * rng.uniform([0.3, 0.5], [0.7, 1.2])
                    centre = centre + size * rng.uniform(-0.4, 0.4, 2)
                velocity = rng.uniform(-0.3, 0.3, 2)
                centres = centre + (frames - t0) * velocity
                boxes = np.concatenate([centres - occ_size / 2, centres + occ_size / 2], axis=1)
                head = slice(0, min(3, self.num_frames))
                target_head = self.target.boxes[head]
                apart = (
                    (boxes[head, 0] >= target_head[:, 2] + 2)
                    | (boxes[head, 2] <= target_head[:, 0] - 2)
                    | (boxes[head, 1] >= target_head[:, 3] + 2)
                    | (boxes[head, 3] <= target_head[:, 1] - 2)
                )
                if np.all(apart):
                    spec = _random_texture_spec(rng)
                    self.occluders.append(_Layer(spec.render(), boxes, shape=shape))
                    break

    def _plan_effects(self, rng: np.random.Generator) -> None:
        cfg = self.config
        interval = max(2, int(1.5 * cfg.keyframe_interval))
        count = _num_keys(self.num_frames, interval)
        gain = _catmull_rom(rng.uniform(-1, 1, (count, 1)), self.num_frames, interval)[:, 0]
        gain[:] -= gain[0]
        self._gain = 1.0 + cfg.illumination_change * np.clip(gain, -1, 1)
        gradient = _catmull_rom(rng.uniform(-1, 1, (count, 1)), self.num_frames, interval)[:, 0]
        self._gradient_amount = 0.5 * cfg.illumination_change * np.clip(gradient, -1, 1)
        angle = rng.uniform(0, 2 * math.pi)
        y, x = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)
        ramp = (x - self.width / 2) * math.cos(angle) + (y - self.height / 2) * math.sin(angle)
        self._ramp = (ramp / (max(self.width, self.height) / 2)).astype(np.float32)[..., None]
        windows = math.ceil(self.num_frames / 6)
        self._blurred = np.repeat(rng.random(windows) < cfg.motion_blur_prob, 6)[: self.num_frames]
        self._blurred[0] = False
        centres = (self.target.boxes[:, :2] + self.target.boxes[:, 2:]) / 2
        self._velocity = np.gradient(centres, axis=0) if self.num_frames > 1 else np.zeros((1, 2))
        noise_rng = np.random.default_rng(rng.integers(2**31))
        if cfg.noise_std > 0:
            pad = _NOISE_PAD
            self._noise = noise_rng.standard_normal((self.height + pad, self.width + pad, 3), dtype=np.float32)
            self._noise *= np.float32(cfg.noise_std)
            self._noise_offsets = noise_rng.integers(0, pad + 1, (self.num_frames, 2))

    # ------------------------------------------------------------------------------------------------- annotations

    def _occlusion_transmittance(self, t: int, roi: tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, x1, y1 = roi
        transmittance = np.ones((y1 - y0, x1 - x0), dtype=np.float32)
        for occluder in self.occluders:
            (ox0, oy0, ox1, oy1), alpha = occluder.alpha(t, self.width, self.height)
            ix0, iy0, ix1, iy1 = max(x0, ox0), max(y0, oy0), min(x1, ox1), min(y1, oy1)
            if ix1 > ix0 and iy1 > iy0:
                transmittance[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] *= (
                    1.0 - alpha[iy0 - oy0 : iy1 - oy0, ix0 - ox0 : ix1 - ox0]
                )
        return transmittance

    def _annotate(self) -> None:
        cfg = self.config
        boxes = self.target.boxes
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        self.target_area = np.array([self.target.full_area(t) for t in range(self.num_frames)])
        clipped = boxes.copy()
        clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0, self.width)
        clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0, self.height)
        in_frame_area = np.maximum(clipped[:, 2] - clipped[:, 0], 0) * np.maximum(clipped[:, 3] - clipped[:, 1], 0)
        visible_fraction = np.zeros(self.num_frames)
        for t in range(self.num_frames):
            roi, alpha = self.target.alpha(t, self.width, self.height)
            if alpha.size:
                unoccluded = (alpha * self._occlusion_transmittance(t, roi)).sum(dtype=np.float64)
                visible_fraction[t] = float(unoccluded) / self.target_area[t]
        has_extent = in_frame_area > 0
        clipped[~has_extent] = np.nan
        self.boxes_xyxy = clipped
        self.visible_fraction = visible_fraction
        self.out_of_view = in_frame_area / area < cfg.min_visible_fraction
        self.full_occlusion = ~self.out_of_view & (visible_fraction < cfg.min_visible_fraction)
        self.visible = ~self.out_of_view & ~self.full_occlusion

    @property
    def target_pattern(self) -> str:
        return self.target_spec.pattern

    @property
    def description(self) -> str:
        return f"{self.target_spec.description()} moving among look-alike boxes"

    # --------------------------------------------------------------------------------------------------- rendering

    @staticmethod
    def _paint(canvas: np.ndarray, layer: _Layer, t: int) -> None:
        height, width = canvas.shape[:2]
        roi, alpha = layer.alpha(t, width, height)
        if not alpha.size:
            return
        x0, y0, x1, y1 = roi
        patch = _warp_texture(layer.texture, layer.boxes[t], roi)
        region = canvas[y0:y1, x0:x1]
        region += alpha[..., None] * (patch - region)

    def render_frame(self, t: int, return_mask: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Frame ``t`` as `(H, W, 3)` uint8 RGB (and the target's `(H, W)` float32 area coverage if requested)."""
        if not 0 <= t < self.num_frames:
            raise IndexError(f"Frame {t} is outside the video (0..{self.num_frames - 1}).")
        ox, oy = self._camera[t]
        canvas = self._background[oy : oy + self.height, ox : ox + self.width].copy()
        for layer in self.distractors:
            self._paint(canvas, layer, t)
        self._paint(canvas, self.target, t)
        for layer in self.occluders:
            self._paint(canvas, layer, t)
        canvas *= self._gain[t] + self._gradient_amount[t] * self._ramp
        if self._blurred[t]:
            canvas = self._motion_blur(canvas, t)
        if self.config.noise_std > 0:
            nx, ny = self._noise_offsets[t]
            canvas += self._noise[ny : ny + self.height, nx : nx + self.width]
        frame = np.clip(canvas, 0, 255, out=canvas).astype(np.uint8)
        if not return_mask:
            return frame
        mask = np.zeros((self.height, self.width), dtype=np.float32)
        (x0, y0, x1, y1), alpha = self.target.alpha(t, self.width, self.height)
        if alpha.size:
            mask[y0:y1, x0:x1] = alpha
        return frame, mask

    def occlusion_transmittance(self, t: int) -> np.ndarray:
        """`(H, W)` float32 share of each pixel not covered by occluders at frame ``t``."""
        return self._occlusion_transmittance(t, (0, 0, self.width, self.height))

    def _motion_blur(self, canvas: np.ndarray, t: int) -> np.ndarray:
        velocity = self._velocity[t]
        speed = float(np.hypot(*velocity))
        length = int(round(self.config.motion_blur_strength * max(4.0, 1.5 * speed)))
        length = min(length, 31) | 1
        if length < 3:
            return canvas
        direction = velocity / speed if speed > 1e-6 else np.array([1.0, 0.0])
        kernel = np.zeros((length, length), dtype=np.float32)
        centre = length // 2
        offset = direction * centre
        start = (int(round(centre - offset[0])), int(round(centre - offset[1])))
        end = (int(round(centre + offset[0])), int(round(centre + offset[1])))
        cv2.line(kernel, start, end, 1.0, 1, cv2.LINE_AA)
        kernel /= kernel.sum()
        return cv2.filter2D(canvas, -1, kernel, borderType=cv2.BORDER_REFLECT)

    def frames(self):
        """Iterate over the rendered frames."""
        for t in range(self.num_frames):
            yield self.render_frame(t)


def generate_sequence(
    config: SyntheticVideoConfig | None = None, seed: int = 0, return_masks: bool = False
) -> SyntheticSequence:
    """Render a whole synthetic video in memory (see `SyntheticVideo` to stream long or large ones)."""
    video = SyntheticVideo(config, seed)
    frames = np.empty((video.num_frames, video.height, video.width, 3), dtype=np.uint8)
    masks = np.empty((video.num_frames, video.height, video.width), dtype=np.float32) if return_masks else None
    for t in range(video.num_frames):
        if return_masks:
            frames[t], masks[t] = video.render_frame(t, return_mask=True)
        else:
            frames[t] = video.render_frame(t)
    return SyntheticSequence(
        frames=frames,
        boxes_xyxy=video.boxes_xyxy.copy(),
        visible=video.visible.copy(),
        visible_fraction=video.visible_fraction.copy(),
        out_of_view=video.out_of_view.copy(),
        full_occlusion=video.full_occlusion.copy(),
        target_pattern=video.target_pattern,
        description=video.description,
        seed=video.seed,
        config=video.config,
        target_masks=masks,
    )


# --------------------------------------------------------------------------------------------------------------------
# Writing benchmark layouts
# --------------------------------------------------------------------------------------------------------------------


def sequence_seed(seed: int, index: int) -> int:
    """The per-sequence seed used by the layout writers for sequence ``index`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def read_synthetic_annotations(sequence_folder: str | os.PathLike) -> dict[str, Any]:
    """The exact annotations saved in a written sequence's ``synthetic.json`` (arrays for the per-frame fields)."""
    path = Path(sequence_folder) / _SIDECAR
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not a sequence written by lorat_hf.data.synthetic.")
    content = json.loads(path.read_text())
    for key, dtype in (
        ("boxes_xyxy", np.float64),
        ("visible_fraction", np.float64),
        ("visible", bool),
        ("out_of_view", bool),
        ("full_occlusion", bool),
    ):
        content[key] = np.asarray(content[key], dtype=dtype)
    content["boxes_xyxy"] = content["boxes_xyxy"].reshape(-1, 4)
    return content


def _write_image(path: Path, frame: np.ndarray, jpeg_quality: int) -> None:
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"Could not write {path}.")


class _LayoutWriter:
    """Shared bookkeeping: deterministic names through a manifest, atomic sequence folders, resumption."""

    def __init__(self, root: Path, layout: str, config: SyntheticVideoConfig, seed: int, split: str | None):
        self.root = root
        self.layout = layout
        self.config = config
        self.seed = int(seed)
        self.split = split
        self.manifest_path = root / _MANIFEST
        self.manifest: dict[str, Any] = {"sequences": {}}

    def load_manifest(self) -> None:
        if self.manifest_path.is_file():
            self.manifest = json.loads(self.manifest_path.read_text())
            self.manifest.setdefault("sequences", {})

    def key(self, index: int) -> str:
        payload = {
            "layout": self.layout,
            "split": self.split,
            "seed": self.seed,
            "index": index,
            "config": self.config.to_dict(),
        }
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    def folder(self, name: str) -> Path:
        return self.root / name.rsplit("-", 1)[0] / name if self.layout == "lasot" else self.root / name

    def new_name(self, pattern: str) -> str:
        used = set(self.manifest["sequences"].values())
        parent = self.root / pattern if self.layout == "lasot" else self.root
        if parent.is_dir():
            used.update(path.name for path in parent.iterdir())
        numbers = [
            int(match.group(1)) for name in used if (match := re.fullmatch(re.escape(pattern) + r"-(\d+)", name))
        ]
        return f"{pattern}-{max(numbers, default=0) + 1}"

    def run(self, num_sequences: int, write_files) -> list[str]:
        if num_sequences < 1:
            raise ValueError(f"num_sequences must be >= 1, got {num_sequences}.")
        self.root.mkdir(parents=True, exist_ok=True)
        names = []
        show = os.environ.get("LOCAL_RANK", "0") in ("", "0")
        with FileLock(str(self.root / f".{_MANIFEST}.lock")):
            self.load_manifest()
            for index in tqdm(
                range(num_sequences), desc=f"Writing synthetic {self.layout} sequences", disable=not show
            ):
                key = self.key(index)
                video = None
                name = self.manifest["sequences"].get(key)
                if name is None:
                    video = SyntheticVideo(self.config, sequence_seed(self.seed, index))
                    name = self.new_name(video.target_pattern)
                    self.manifest["sequences"][key] = name
                    write_text_atomic(self.manifest_path, json.dumps(self.manifest, indent=1, sort_keys=True) + "\n")
                names.append(name)
                final = self.folder(name)
                if final.is_dir():
                    continue
                video = video or SyntheticVideo(self.config, sequence_seed(self.seed, index))
                final.parent.mkdir(parents=True, exist_ok=True)
                temporary = final.with_name(f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
                temporary.mkdir()
                try:
                    write_files(video, name, temporary)
                    sidecar = {
                        "generator": "lorat_hf.data.synthetic",
                        "seed": video.seed,
                        "run_seed": self.seed,
                        "index": index,
                        "split": self.split,
                        "config": self.config.to_dict(),
                        "target_pattern": video.target_pattern,
                        "description": video.description,
                        "boxes_xyxy": video.boxes_xyxy.tolist(),
                        "visible_fraction": video.visible_fraction.tolist(),
                        "visible": video.visible.tolist(),
                        "out_of_view": video.out_of_view.tolist(),
                        "full_occlusion": video.full_occlusion.tolist(),
                    }
                    (temporary / _SIDECAR).write_text(json.dumps(sidecar) + "\n")
                    os.replace(temporary, final)
                except BaseException:
                    shutil.rmtree(temporary, ignore_errors=True)
                    raise
        return names


def _lasot_pixel_boxes(boxes_xyxy: np.ndarray) -> list[str]:
    lines = []
    for box in boxes_xyxy:
        if not np.all(np.isfinite(box)):
            lines.append("0,0,0,0")
            continue
        x0, y0 = math.floor(box[0]), math.floor(box[1])
        x1, y1 = math.ceil(box[2]), math.ceil(box[3])
        lines.append(f"{x0 + 1},{y0 + 1},{x1 - x0},{y1 - y0}")
    return lines


def write_lasot_layout(
    root: str | os.PathLike,
    num_sequences: int,
    config: SyntheticVideoConfig | None = None,
    seed: int = 0,
    split: str = "test",
    *,
    jpeg_quality: int = 90,
) -> list[str]:
    """Write synthetic sequences in the LaSOT layout so that ``load_sequences("lasot", root, split)`` reads them.

    Per sequence ``<root>/<pattern>/<pattern>-<k>/`` (the target's texture pattern plays the role of the class):
    ``img/%08d.jpg``, ``groundtruth.txt``, ``full_occlusion.txt``, ``out_of_view.txt``, ``nlp.txt`` and
    ``synthetic.json`` (the exact float annotations, see `read_synthetic_annotations`). ``split`` (``train`` or
    ``test``) adds the names to ``training_set.txt`` / ``testing_set.txt`` (both files are created).

    ``groundtruth.txt`` follows LaSOT's conventions rather than storing floats LaSOT tools would not expect: 1-based
    integers giving the tight pixel extent of the target (every pixel it covers: ``x = floor(x1) + 1``,
    ``w = ceil(x2) - floor(x1)``), and ``0,0,0,0`` when no part of it is in the frame. So the boxes the LaSOT reader
    returns (1 subtracted) are exactly the covered pixel range, within one pixel of the exact box on each side; use
    ``synthetic.json`` or `synthetic_sequences_dataset` when sub-pixel truth matters.

    Names are assigned once per ``(split, seed, index, config)`` and recorded in ``synthetic_manifest.json``; calling
    again with the same arguments skips finished sequences (resumable) and never touches other folders.
    Returns the sequence names in index order.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    root = Path(root).expanduser()
    writer = _LayoutWriter(root, "lasot", config or SyntheticVideoConfig(), seed, split)

    def write_files(video: SyntheticVideo, name: str, folder: Path) -> None:
        (folder / "img").mkdir()
        for t in range(video.num_frames):
            _write_image(folder / "img" / f"{t + 1:08d}.jpg", video.render_frame(t), jpeg_quality)
        (folder / "groundtruth.txt").write_text("\n".join(_lasot_pixel_boxes(video.boxes_xyxy)) + "\n")
        (folder / "full_occlusion.txt").write_text(",".join(str(int(v)) for v in video.full_occlusion) + "\n")
        (folder / "out_of_view.txt").write_text(",".join(str(int(v)) for v in video.out_of_view) + "\n")
        (folder / "nlp.txt").write_text(video.description + "\n")

    names = writer.run(num_sequences, write_files)
    with FileLock(str(root / f".{_MANIFEST}.lock")):
        for part, filename in (("train", "training_set.txt"), ("test", "testing_set.txt")):
            path = root / filename
            listed = [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
            if part == split:
                listed += [name for name in names if name not in set(listed)]
            if part == split or not path.is_file():
                write_text_atomic(path, "".join(f"{name}\n" for name in listed))
    return names


def write_generic_layout(
    root: str | os.PathLike,
    num_sequences: int,
    config: SyntheticVideoConfig | None = None,
    seed: int = 0,
    *,
    image_format: str = "jpg",
    jpeg_quality: int = 90,
) -> list[str]:
    """Write synthetic sequences in the generic layout (``load_sequences("generic", root)``).

    Per sequence ``<root>/<pattern>-<k>/``: ``img/%08d.<jpg|png>``, ``groundtruth.txt`` with the exact 0-based
    ``x,y,w,h`` floats (shortest round-trip text; ``nan,nan,nan,nan`` when the target is entirely outside the frame),
    ``visible.txt`` (one 0/1 per frame) and ``synthetic.json``. Resumable like `write_lasot_layout`.
    """
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}.")
    root = Path(root).expanduser()
    writer = _LayoutWriter(root, "generic", config or SyntheticVideoConfig(), seed, None)

    def write_files(video: SyntheticVideo, name: str, folder: Path) -> None:
        (folder / "img").mkdir()
        for t in range(video.num_frames):
            _write_image(folder / "img" / f"{t + 1:08d}.{image_format}", video.render_frame(t), jpeg_quality)
        lines = []
        for box in video.boxes_xyxy:
            if np.all(np.isfinite(box)):
                lines.append(",".join(repr(float(v)) for v in (box[0], box[1], box[2] - box[0], box[3] - box[1])))
            else:
                lines.append("nan,nan,nan,nan")
        (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        (folder / "visible.txt").write_text("".join(f"{int(v)}\n" for v in video.visible))

    return writer.run(num_sequences, write_files)


def synthetic_sequences_dataset(
    root: str | os.PathLike,
    num_sequences: int,
    config: SyntheticVideoConfig | None = None,
    seed: int = 0,
    *,
    image_format: str = "jpg",
    jpeg_quality: int = 90,
    cache_dir: str | os.PathLike | None = None,
):
    """Write (or reuse) synthetic sequences under ``root`` and return them as a `datasets.Dataset` in the sequence
    schema (``dataset == "generic"``, exact float boxes), rows in index order."""
    from .sequences import load_sequences

    names = write_generic_layout(
        root, num_sequences, config, seed, image_format=image_format, jpeg_quality=jpeg_quality
    )
    dataset = load_sequences("generic", root, cache_dir=cache_dir)
    positions = {name: position for position, name in enumerate(dataset["name"])}
    return dataset.select([positions[name] for name in names])


__all__ = [
    "PATTERNS",
    "SyntheticSequence",
    "SyntheticVideo",
    "SyntheticVideoConfig",
    "generate_sequence",
    "read_synthetic_annotations",
    "sequence_seed",
    "synthetic_sequences_dataset",
    "write_generic_layout",
    "write_lasot_layout",
]
