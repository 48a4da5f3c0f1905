"""Helpers for the inference tests: a tiny tracker whose outputs vary, synthetic clips, clips on disk."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import OFFICIAL, tiny_config
from torch import nn


def lively_tiny_model(seed: int = 0, **config_overrides):
    """The tiny tracker (56 px template, 112 px search) with every weight re-drawn so that its score maps and boxes
    vary across cells and inputs (the default init gives near-constant outputs). Boxes are ~0.1-0.2 of the crop."""
    from lorat_hf import LoraTrackerModel

    return lively_weights(LoraTrackerModel(tiny_config(**config_overrides)), seed)


def lively_weights(model, seed: int = 0):
    """Re-draw every weight of a tracker (LoRAT or LoRATv2) so that its outputs vary across cells and inputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim >= 2:
                fan_in = math.prod(parameter.shape[1:])
                std = 0.3 if "embeddings" in name and "patch" not in name else 1 / math.sqrt(fan_in)
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
            elif "lambda1" in name:
                parameter.copy_(0.2 + 0.8 * torch.rand(parameter.shape, generator=generator))
            elif "norm" in name and name.endswith("weight"):
                parameter.copy_(1 + 0.3 * (torch.rand(parameter.shape, generator=generator) - 0.5))
            else:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
        heads = [model.tracker_head] if hasattr(model, "tracker_head") else list(model.heads)
        for head in heads:
            head.score_mlp.layers[-1].weight.mul_(3.0)
            head.box_mlp.layers[-1].weight.mul_(0.3)
            head.box_mlp.layers[-1].bias.copy_(-1.95 + 0.1 * torch.randn(4, generator=generator))
    return model.eval()


def moving_square_clip(
    num_frames: int = 8,
    size_wh: tuple[int, int] = (160, 120),
    seed: int = 0,
    square: int = 28,
    step: tuple[int, int] = (5, 3),
) -> tuple[list[np.ndarray], np.ndarray]:
    """RGB frames of a checkerboard-textured square moving over a blocky random background, and its xyxy boxes."""
    rng = np.random.default_rng(seed)
    width, height = size_wh
    blocks = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    background = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    checker = (np.indices((square, square)).sum(axis=0) // 4 % 2).astype(bool)
    patch = np.where(checker[..., None], np.array([250, 40, 40], np.uint8), np.array([30, 30, 220], np.uint8))
    frames, boxes = [], []
    x, y = width // 4, height // 4
    for _ in range(num_frames):
        frame = background.copy()
        frame[y : y + square, x : x + square] = patch
        frames.append(frame)
        boxes.append([x, y, x + square, y + square])
        x = min(max(x + step[0], 0), width - square)
        y = min(max(y + step[1], 0), height - square)
    return frames, np.asarray(boxes, dtype=np.float64)


def tracking_fixtures(model_seed: int, clip_seed: int = 0, num_frames: int = 6):
    """Module-scoped `model` (`lively_tiny_model(model_seed)`) and `clip` (`moving_square_clip`) fixtures.

    In a test module: `model, clip = tracking_fixtures(model_seed=5, clip_seed=6, num_frames=5)`.
    """

    @pytest.fixture(scope="module")
    def model():
        return lively_tiny_model(seed=model_seed)

    @pytest.fixture(scope="module")
    def clip():
        return moving_square_clip(num_frames=num_frames, seed=clip_seed)

    return model, clip


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write RGB frames to an .mp4 (mp4v) or .avi (MJPG) file with plain OpenCV."""
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_frame_folder(folder: Path, frames: list[np.ndarray], pattern: str = "{:d}.png") -> Path:
    """Write RGB frames as lossless images named by `pattern` (default `0.png, 1.png, ... 10.png`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / pattern.format(index)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def convert_case_a(output: Path, merge: bool = False) -> Path:
    """The official case-a model converted into an adapter folder (or a merged model folder)."""
    from lorat_hf.convert import convert

    case = OFFICIAL / "model_a_224_gelu"
    return convert(case / "dinov2.safetensors", case / "lorat_release.safetensors", output, num_heads=2, merge=merge)


class FixedOutputModel(nn.Module):
    """Stands in for a tracker and returns given score maps / boxes, to test decoding through the engine."""

    def __init__(self, config, score_map: torch.Tensor, pred_boxes: torch.Tensor):
        super().__init__()
        self.config = config
        self.anchor = nn.Parameter(torch.zeros(1))
        self.score_map, self.pred_boxes = score_map, pred_boxes
        self.batch_sizes: list[int] = []

    def forward(self, template_pixel_values, search_pixel_values, template_token_type_ids):
        from lorat_hf import LoraTrackerOutput

        batch = search_pixel_values.shape[0]
        self.batch_sizes.append(batch)
        return LoraTrackerOutput(score_map=self.score_map[:batch], pred_boxes=self.pred_boxes[:batch])
