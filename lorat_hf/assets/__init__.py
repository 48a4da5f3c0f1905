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
import os
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


def synthetic_training_videos(
    model_path: str | os.PathLike | None = None,
) -> tuple[dict[str, Any], tuple[int, int]] | None:
    """What a tracker folder's `train_config.json` says about the synthetic videos it was trained on:
    `({"frame_size": (w, h), "num_frames": n}, (train_seed, validation_seed))` (`examples/train.py` generates the
    training videos with `synthetic_seed` and the validation ones with `synthetic_seed + 1`).

    `model_path` defaults to the embedded demo tracker; None when the folder has no `train_config.json` (a Hub id, a
    converted official model) or was not trained on `synthetic` videos.
    """
    from ..training.arguments import parse_dataset_entry

    path = Path(model_path if model_path is not None else default_model_path()) / TRAIN_CONFIG_NAME
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))["arguments"]["data"]
    if not any(parse_dataset_entry(entry)[0] == "synthetic" for entry in data["train_datasets"]):
        return None
    settings = {"frame_size": tuple(data["synthetic_frame_size"]), "num_frames": data["synthetic_sequence_length"]}
    seed = int(data["synthetic_seed"])
    return settings, (seed, seed + 1)


def demo_video_config(**overrides: Any):
    """The `SyntheticVideoConfig` of the videos the demo tracker was trained on (frame size and length from its
    training configuration, every other setting the generator's "medium" defaults); `overrides` replace fields."""
    from ..data.synthetic import SyntheticVideoConfig

    settings, _ = synthetic_training_videos()
    return SyntheticVideoConfig.preset("medium", **{**settings, **overrides})


def demo_training_seeds() -> tuple[int, int]:
    """Run seeds of the synthetic videos the demo tracker saw in training: `(train, validation)`."""
    return synthetic_training_videos()[1]


def check_held_out_seed(seed: int) -> None:
    """Raise `ValueError` when `seed` is one of the run seeds whose videos the demo tracker saw in training."""
    seeds = demo_training_seeds()
    if int(seed) in seeds:
        raise ValueError(
            f"Seed {seed} generated videos the demo tracker was trained or validated on (seeds {seeds}); pick another "
            "seed for a held-out test."
        )


__all__ = [
    "DEMO_TRACKER_DIRNAME",
    "check_held_out_seed",
    "default_model_path",
    "demo_training_seeds",
    "demo_video_config",
    "synthetic_training_videos",
]
