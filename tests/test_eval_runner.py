"""`lorat-eval run`: batched one-pass evaluation with a tiny random model on tiny synthetic benchmarks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from data_factories import make_generic, make_got10k

import lorat_hf.engine.videos
from lorat_hf.commands.evaluate import main
from lorat_hf.data import TrackingSequence
from lorat_hf.engine import TrackedVideo
from lorat_hf.evaluation import load_report, parse_boxes, write_pytracking_result
from lorat_hf.evaluation.runner import _Job, _write_job

REPO = Path(__file__).resolve().parents[1]
NAMES = ("walk", "car2", "car10")


@pytest.fixture(scope="module")
def generic(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("generic")
    sequences = make_generic(root / "G", names=NAMES, num_frames=5, size_wh=(96, 72), extension="jpg")
    return root / "G", sequences


def run_args(
    model_dir: Path, root: Path, output: Path, cache: Path, *extra: str, dataset: str = "generic"
) -> list[str]:
    return ["run", "--model", str(model_dir), "--dataset", dataset, "--dataset-root", str(root), "--output",
            str(output), "--cache-dir", str(cache), "--batch-size", "2", "--num-workers", "1", *extra]  # fmt: skip


def test_run_writes_results_report_plots_and_resumes(tmp_path, model_dir, generic, monkeypatch, capsys):
    root, sequences = generic
    baseline = tmp_path / "baseline"
    for name, sequence in sequences.items():
        write_pytracking_result(baseline, name, sequence.groundtruth_xywh)
    output = tmp_path / "out"
    args = run_args(model_dir, root, output, tmp_path / "cache", "--compare", str(baseline))
    assert main(args) == 0
    for name, sequence in sequences.items():
        boxes = parse_boxes((output / "results" / f"{name}.txt").read_text())
        assert boxes.shape == (5, 4) and np.isfinite(boxes).all()
        np.testing.assert_allclose(boxes[0], sequence.groundtruth_xywh[0], atol=1e-3)  # frame 0 = the init box
        times = np.loadtxt(output / "results" / f"{name}_time.txt")
        assert times.shape == (5,) and (times > 0).all()
    report = load_report(output / "report.json")
    assert report["protocol"] == "ostrack" and report["num_sequences"] == 3 and report["model"] == str(model_dir)
    for kind in ("success", "precision", "normalized_precision"):
        assert (output / f"{kind}.png").stat().st_size > 1000
    table = capsys.readouterr().out
    assert "tiny" in table and "baseline" in table and "100.00" in table  # the GT baseline scores 100 precision
    first = {name: (output / "results" / f"{name}.txt").read_bytes() for name in NAMES}

    # resume: nothing left to track -> the engine is not called at all
    def fail(*args, **kwargs):
        raise AssertionError("a finished sequence was tracked again")

    monkeypatch.setattr(lorat_hf.engine.videos, "track_step", fail)
    monkeypatch.setattr(lorat_hf.engine.videos, "initialize_targets", fail)
    assert main(args) == 0
    monkeypatch.undo()

    # an interrupted run: only the sequence whose file is missing is tracked again, with the same result
    (output / "results" / "car2.txt").unlink()
    started = []
    original = lorat_hf.engine.videos.initialize_targets

    def counting(model, processor, frames, boxes, object_ids=None):
        started.extend(object_ids)
        return original(model, processor, frames, boxes, object_ids)

    monkeypatch.setattr(lorat_hf.engine.videos, "initialize_targets", counting)
    assert main(args) == 0
    assert started == ["car2#0"]
    assert (output / "results" / "car2.txt").read_bytes() == first["car2"]


def test_run_refuses_to_resume_with_other_settings(tmp_path, model_dir, generic, capsys):
    root, _ = generic
    output = tmp_path / "out"
    output.mkdir()
    config = {"model": "other-model", "dataset": "generic", "dataset_root": str(root.resolve()), "split": None,
              "runs": 1, "rasterize": True}  # fmt: skip
    (output / "run_config.json").write_text(json.dumps(config))
    assert main(run_args(model_dir, root, output, tmp_path / "cache")) == 1
    assert "holds results of another evaluation (model: 'other-model'" in capsys.readouterr().err
    assert not (output / "results").exists()


def test_run_got10k_test_split_writes_the_server_zip(tmp_path, model_dir, capsys):
    make_got10k(tmp_path / "GOT10k", "test", num_frames=4, size_wh=(80, 64))
    output = tmp_path / "out"
    assert main(run_args(model_dir, tmp_path / "GOT10k", output, tmp_path / "cache", "--split", "test",
                         "--runs", "2", dataset="got10k")) == 0  # fmt: skip
    assert "annotations withheld" in capsys.readouterr().out
    assert not (output / "report.json").exists()
    with zipfile.ZipFile(output / "got10k_submission.zip") as archive:
        names = sorted(archive.namelist())
        assert names[:3] == [
            "GOT-10k_Test_000001/GOT-10k_Test_000001_001.txt",
            "GOT-10k_Test_000001/GOT-10k_Test_000001_002.txt",
            "GOT-10k_Test_000001/GOT-10k_Test_000001_time.txt",
        ]
        boxes = archive.read(names[0]).decode().splitlines()
        times = archive.read(names[2]).decode().splitlines()
    assert len(boxes) == 4 and all(value.lstrip("-").isdigit() for line in boxes for value in line.split(","))
    assert len(times) == 4 and len(times[0].split(",")) == 2  # one column per run
    assert (output / "results_001").is_dir() and (output / "results_002").is_dir()
    assert (output / "got10k" / "GOT-10k_Test_000002" / "GOT-10k_Test_000002_002.txt").is_file()


def test_results_are_written_in_the_benchmarks_own_convention(tmp_path):
    """LaSOT files are 1-based: tracker outputs (0-based continuous) get +1; frame 0 is the shipped GT line."""
    groundtruth = np.array([[11, 21, 30, 40], [12, 22, 30, 40]], dtype=np.float64)
    sequence = TrackingSequence(
        dataset="lasot", name="cat-1", frame_paths=["a.jpg", "b.jpg"], groundtruth_xywh=groundtruth,
        boxes_xyxy=np.array([[10, 20, 40, 60], [11, 21, 41, 61]], dtype=np.float64), visible=np.ones(2, bool),
        image_width=100, image_height=100, coordinate_offset=1.0,
    )  # fmt: skip
    tracked = TrackedVideo("cat-1#0", boxes_xyxy=np.array([[10.0, 20, 40, 60], [11.25, 21.5, 41.25, 61.5]]),
                           scores=np.ones(2), seconds=np.array([0.5, 0.25]))  # fmt: skip
    _write_job(_Job(sequence, 0, tmp_path), tracked)
    assert (tmp_path / "cat-1.txt").read_text() == "11.000\t21.000\t30.000\t40.000\n12.250\t22.500\t30.000\t40.000\n"
    assert np.loadtxt(tmp_path / "cat-1_time.txt").tolist() == [0.5, 0.25]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_run_distributed_over_two_processes_matches_one_process(tmp_path, model_dir, generic):
    root, _ = generic
    single = tmp_path / "single"
    assert main(run_args(model_dir, root, single, tmp_path / "cache", "--runs", "2")) == 0
    assert load_report(single / "report.json")["details"]["runs"] == 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", str(_free_port()), "-m", "lorat_hf.commands.evaluate",
               *run_args(model_dir, root, tmp_path / "ddp", tmp_path / "cache", "--runs", "2")]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "process 0 takes" in result.stderr and "process 1 takes" in result.stderr
    assert "process 1 takes 0" not in result.stderr and result.stdout.count("| AUC") == 1  # one merged report
    for name in NAMES:
        for run in ("results_001", "results_002"):
            expected = parse_boxes((single / run / f"{name}.txt").read_text())
            np.testing.assert_allclose(parse_boxes((tmp_path / "ddp" / run / f"{name}.txt").read_text()), expected,
                                       atol=0.02)  # fmt: skip
    assert load_report(tmp_path / "ddp" / "report.json")["metrics"] == pytest.approx(
        load_report(single / "report.json")["metrics"], abs=0.5
    )
