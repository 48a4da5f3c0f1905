"""The synthetic video generator: plans a scene (background, target, distractors, occluders, effects) from one seed,
derives the exact annotations from it and renders frames on demand."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .config import SyntheticSequence, SyntheticVideoConfig
from .drawing import Layer, catmull_rom, distractor_spec, hsv_to_rgb, num_keys, random_texture_spec, warp_texture

_NOISE_PAD = 61  # sensor noise = one pre-drawn field shifted by up to this many pixels per frame


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
        count = num_keys(self.num_frames, cfg.keyframe_interval)
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
        count = num_keys(self.num_frames, cfg.keyframe_interval)
        scale_keys = np.concatenate([[0.0], rng.uniform(-scale_amp, scale_amp, count - 1)])
        aspect_keys = np.concatenate([[0.0], rng.uniform(-aspect_amp, aspect_amp, count - 1)])
        log_scale = catmull_rom(scale_keys[:, None], self.num_frames, cfg.keyframe_interval)[:, 0]
        log_aspect = catmull_rom(aspect_keys[:, None], self.num_frames, cfg.keyframe_interval)[:, 0]
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
        base = hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.8))
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
                float(c) for c in hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.05, 0.7), rng.uniform(0.2, 0.95))
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
        count = num_keys(self.num_frames, 2 * cfg.keyframe_interval)
        keys = rng.uniform(0, 2 * self.pan, (count, 2)) if self.pan else np.zeros((count, 2))
        self._camera = np.rint(catmull_rom(keys, self.num_frames, 2 * cfg.keyframe_interval)).astype(np.int64)
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
        centres = catmull_rom(keys, self.num_frames, cfg.keyframe_interval)
        self.target_spec = random_texture_spec(rng)
        corner = float(rng.uniform(0.1, 0.3)) if rng.random() < cfg.rounded_corner_prob else 0.0
        self.target = Layer(self.target_spec.render(), self._boxes(centres, widths, heights), corner=corner)

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
            centres = catmull_rom(self._walk(rng, start, margin * 0.6), self.num_frames, cfg.keyframe_interval)
            spec = distractor_spec(rng, self.target_spec)
            self.distractors.append(
                Layer(spec.render(), self._boxes(centres, widths, heights), corner=self.target.corner)
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
                    spec = random_texture_spec(rng)
                    self.occluders.append(Layer(spec.render(), boxes, shape=shape))
                    break

    def _plan_effects(self, rng: np.random.Generator) -> None:
        cfg = self.config
        interval = max(2, int(1.5 * cfg.keyframe_interval))
        count = num_keys(self.num_frames, interval)
        gain = catmull_rom(rng.uniform(-1, 1, (count, 1)), self.num_frames, interval)[:, 0]
        gain[:] -= gain[0]
        self._gain = 1.0 + cfg.illumination_change * np.clip(gain, -1, 1)
        gradient = catmull_rom(rng.uniform(-1, 1, (count, 1)), self.num_frames, interval)[:, 0]
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
    def _paint(canvas: np.ndarray, layer: Layer, t: int) -> None:
        height, width = canvas.shape[:2]
        roi, alpha = layer.alpha(t, width, height)
        if not alpha.size:
            return
        x0, y0, x1, y1 = roi
        patch = warp_texture(layer.texture, layer.boxes[t], roi)
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
