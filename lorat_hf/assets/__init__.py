"""Files shipped inside the package: the embedded demo tracker.

No DINOv2 or LoRAT weights can be assumed to be reachable, so the package carries a small tracker of its own
(`demo-tracker/`, a `LoraTrackerModel` folder of a few MB). It was trained from random initialisation (full
fine-tuning) by `examples/train.py` with `examples/configs/demo-tracker.yaml` (`make train-demo`) on the package's
own synthetic videos (`lorat_hf.data.synthetic`, the "medium" preset); its model card (`demo-tracker/README.md`) gives
the recipe and the scores. It tracks synthetic scenes like those it was trained on; it is not a general-purpose
tracker.

    from lorat_hf.assets import default_model_path
    from lorat_hf.tracking import LoraTracker

    tracker = LoraTracker.from_pretrained(default_model_path())   # or LoraTracker.from_pretrained()

`demo_video_config()` and `demo_training_seeds()` describe the videos it was trained on, so that held-out videos
of the same kind can be generated with another seed (`examples/demo.py`, `benchmarks/compare_opencv.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEMO_TRACKER_DIRNAME = "demo-tracker"
TRAIN_CONFIG_NAME = "train_config.json"


def default_model_path() -> str:
    """Local folder of the embedded demo tracker (loads offline with `LoraTracker.from_pretrained`).

    Raises `FileNotFoundError` when the package was installed without its data files.
    """
    folder = Path(__file__).resolve().parent / DEMO_TRACKER_DIRNAME
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"The embedded demo tracker is missing from {folder} (the package was installed without its data files). "
            "Reinstall lorat_hf with its package data (pip install lorat_hf / pip install -e .), or pass a tracker "
            "folder or Hub repo id explicitly (--model)."
        )
    return str(folder)


def demo_train_config() -> dict[str, Any]:
    """The effective training configuration saved with the demo tracker (`train_config.json`)."""
    path = Path(default_model_path()) / TRAIN_CONFIG_NAME
    return json.loads(path.read_text(encoding="utf-8"))


def demo_video_config(**overrides: Any):
    """The `SyntheticVideoConfig` of the videos the demo tracker was trained on (frame size and length from its
    training configuration, every other setting the generator's "medium" defaults); `overrides` replace fields."""
    from ..data.synthetic import SyntheticVideoConfig

    data = demo_train_config()["arguments"]["data"]
    settings = dict(frame_size=tuple(data["synthetic_frame_size"]), num_frames=data["synthetic_sequence_length"])
    return SyntheticVideoConfig.preset("medium", **{**settings, **overrides})


def demo_training_seeds() -> tuple[int, int]:
    """Run seeds of the synthetic videos seen in training: `(train, validation)` (`examples/train.py` uses
    `synthetic_seed` for the training videos and `synthetic_seed + 1` for the validation ones)."""
    seed = int(demo_train_config()["arguments"]["data"]["synthetic_seed"])
    return seed, seed + 1


def check_held_out_seed(seed: int) -> None:
    """Raise `ValueError` when `seed` is one of the run seeds whose videos the demo tracker saw in training."""
    if int(seed) in demo_training_seeds():
        raise ValueError(
            f"Seed {seed} generated videos the demo tracker was trained or validated on (seeds "
            f"{demo_training_seeds()}); pick another seed for a held-out test."
        )


__all__ = [
    "DEMO_TRACKER_DIRNAME",
    "check_held_out_seed",
    "default_model_path",
    "demo_train_config",
    "demo_training_seeds",
    "demo_video_config",
]
