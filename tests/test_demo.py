"""The embedded demo tracker, `examples/demo.py` (`make demo`) and `benchmarks/compare_opencv.py`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "examples" / "configs" / "demo-tracker.yaml"
MAX_CHECKPOINT_BYTES = 10 * 1024 * 1024
# The shipped tracker scores 69.7 on the 3 held-out 40-frame clips below (79.3 / 77.6 / 52.3 for seeds 101-103);
# 60 guards against a broken export or inference path without depending on float-level details.
MIN_SHORT_CLIP_AUC = 60.0


def _load_script(relative: str, monkeypatch: pytest.MonkeyPatch):
    """Import a script as `python <script>` would run it (its own folder first on `sys.path`)."""
    path = REPO / relative
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Everything here must work without a network: the Hub clients are told so.

    The scripts set torch's and OpenCV's thread counts for the whole process; they are restored afterwards, because
    other tests in the same worker compare reductions bit-exactly with the official implementation.
    """
    import cv2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


def test_embedded_checkpoint_is_a_small_merged_tracker_made_by_the_committed_recipe():
    from lorat_hf import LoraTrackerModel
    from lorat_hf.assets import default_model_path, demo_training_seeds
    from lorat_hf.tracking import LoraTracker
    from lorat_hf.training.arguments import load_recipe

    folder = Path(default_model_path())
    names = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "train_config.json", "README.md"} <= names
    assert sum(path.stat().st_size for path in folder.iterdir()) <= MAX_CHECKPOINT_BYTES

    # the weights were produced by exactly the committed recipe (same fields, seed and schedule)
    trained = json.loads((folder / "train_config.json").read_text())["arguments"]
    for group, fields in load_recipe(RECIPE).items():
        for key, value in fields.items():
            if key in ("output_dir", "report_to"):
                continue
            assert trained[group][key] == value, (group, key, trained[group][key], value)
    assert trained["training"]["max_train_steps"] is None  # the whole schedule ran
    assert demo_training_seeds() == (trained["data"]["synthetic_seed"], trained["data"]["synthetic_seed"] + 1)

    tracker = LoraTracker.from_pretrained()  # no path: the embedded tracker, offline
    assert type(tracker.model) is LoraTrackerModel  # merged: a plain model, no peft wrapper
    assert all(p.dtype == torch.float32 for p in tracker.model.parameters())
    config = tracker.model.config
    model_args = trained["model"]
    assert config.template_size_wh == (model_args["template_size"],) * 2
    assert config.search_size_wh == (model_args["search_size"],) * 2
    assert config.patch_size == model_args["dinov2_overrides"]["patch_size"]
    assert config.hidden_size == model_args["dinov2_overrides"]["hidden_size"]
    assert tracker.image_processor.template_size_wh == config.template_size_wh


def test_embedded_tracker_follows_held_out_synthetic_clips():
    from lorat_hf.assets import check_held_out_seed, demo_video_config
    from lorat_hf.data.synthetic import generate_sequence
    from lorat_hf.evaluation import SequenceData, evaluate_sequences
    from lorat_hf.tracking import LoraTracker

    tracker = LoraTracker.from_pretrained(box_format="xyxy")
    config = demo_video_config(num_frames=40)
    scored = []
    for seed in (101, 102, 103):
        check_held_out_seed(seed)
        video = generate_sequence(config, seed=seed)
        boxes = [video.boxes_xyxy[0]]
        tracker.init(video.frames[0], video.boxes_xyxy[0])
        boxes += [tracker.track(frame)[0] for frame in video.frames[1:]]
        gt = video.boxes_xyxy.copy()
        gt[:, 2:] -= gt[:, :2]
        predictions = np.asarray(boxes)
        predictions[:, 2:] -= predictions[:, :2]
        scored.append(SequenceData(f"seed-{seed}", gt, [predictions]))
    report = evaluate_sequences("ostrack", scored, dataset="generic", mode="uav")
    assert report.metrics["success_auc"] >= MIN_SHORT_CLIP_AUC, report.per_sequence


def test_held_out_seed_check_refuses_the_training_seeds():
    from lorat_hf.assets import check_held_out_seed, demo_training_seeds

    for seed in demo_training_seeds():
        with pytest.raises(ValueError, match="trained or validated on"):
            check_held_out_seed(seed)


def test_demo_runs_end_to_end_twice_and_refuses_a_foreign_folder(tmp_path, capsys, monkeypatch):
    demo = _load_script("examples/demo.py", monkeypatch)
    output = tmp_path / "demo"
    for _ in range(2):  # re-running replaces its own outputs
        assert demo.main(["--output-dir", str(output), "--frames", "12"]) == 0
    printed = capsys.readouterr().out
    for name in ("clip.mp4", "tracked.mp4", "boxes.csv", "boxes.json", "report.json", "success.png", "demo.png"):
        assert (output / name).is_file() and (output / name).stat().st_size > 0, name
        assert str(output / name) in printed
    report = json.loads((output / "report.json").read_text())
    assert report["protocol"] == "ostrack" and report["num_sequences"] == 1
    auc = report["metrics"]["success_auc"]
    assert f"Success AUC {auc:.1f}" in printed
    boxes = json.loads((output / "boxes.json").read_text())["frames"]
    assert len(boxes) == 12 and boxes[0]["score"] == 1.0

    import cv2

    picture = cv2.imread(str(output / "demo.png"))
    assert picture.shape[0] == 240 and picture.shape[1] > 4 * 320  # 4 frames side by side

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("do not touch")
    with pytest.raises(SystemExit, match="did not write"):
        demo.main(["--output-dir", str(foreign), "--frames", "3"])
    assert [p.name for p in foreign.iterdir()] == ["thesis.txt"]


def test_compare_opencv_quick_writes_a_table_for_every_tracker(tmp_path, capsys, monkeypatch):
    compare = _load_script("benchmarks/compare_opencv.py", monkeypatch)
    results_md = (REPO / "benchmarks" / "RESULTS.md").read_text()
    output = tmp_path / "compare"
    assert compare.main(["--quick", "--num-frames", "8", "--output-dir", str(output)]) == 0
    table = (output / "comparison.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split("|")[1].strip() for row in rows] == [
        "LoRAT (embedded demo tracker)", "OpenCV CSRT", "OpenCV KCF", "OpenCV MIL",
    ]  # fmt: skip
    summary = json.loads((output / "comparison.json").read_text())
    assert summary["protocol"] == "ostrack" and len(summary["sequences"]) == 2 and summary["num_frames"] == 16
    for row in summary["rows"]:
        assert 0 <= row["success_auc"] <= 100 and row["fps"] > 0
    assert (output / "success.png").is_file()
    assert (REPO / "benchmarks" / "RESULTS.md").read_text() == results_md  # --quick never touches RESULTS.md
    from lorat_hf.assets import demo_training_seeds

    with pytest.raises(SystemExit, match="training/validation videos"):
        compare.main(["--quick", "--seed", str(demo_training_seeds()[0]), "--output-dir", str(output)])
