"""Settings of the synthetic video generator and the in-memory video it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np


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
        min_visible_fraction: visibility threshold of the flags (see the `lorat_hf.data.synthetic` docstring).
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
    """A generated video. ``frames`` `(N, H, W, 3)` uint8 RGB; annotations as in the `lorat_hf.data.synthetic` docstring."""

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
