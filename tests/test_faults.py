"""Fault injection: every fault ends in a clear message, with nothing lost or half-written (docs/reliability.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from data_factories import make_generic

import lorat_hf.engine.videos
from lorat_hf import LoraTrackerModel
from lorat_hf.commands.evaluate import main as eval_main
from lorat_hf.evaluation import parse_boxes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny"
    torch.manual_seed(0)
    LoraTrackerModel(tiny_config()).save_pretrained(path)
    return path


def eval_args(model_dir: Path, root: Path, output: Path, cache: Path, batch_size: int = 1) -> list[str]:
    return ["run", "--model", str(model_dir), "--dataset", "generic", "--dataset-root", str(root), "--output",
            str(output), "--cache-dir", str(cache), "--batch-size", str(batch_size), "--num-workers", "1"]  # fmt: skip


def count_started(monkeypatch) -> list[str]:
    """Record the (sequence, run) keys the engine starts tracking."""
    started: list[str] = []
    original = lorat_hf.engine.videos.initialize_targets

    def counting(model, processor, frames, boxes, object_ids=None):
        started.extend(object_ids)
        return original(model, processor, frames, boxes, object_ids)

    monkeypatch.setattr(lorat_hf.engine.videos, "initialize_targets", counting)
    return started


def test_ctrl_c_in_eval_run_keeps_finished_sequences_says_how_to_resume_and_the_rerun_resumes(
    tmp_path, model_dir, monkeypatch
):
    names = ("s1", "s2", "s3")
    root = tmp_path / "G"
    make_generic(root, names=names, num_frames=150, size_wh=(64, 48), extension="jpg")
    output = tmp_path / "out"
    args = eval_args(model_dir, root, output, tmp_path / "cache")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lorat_hf.commands.evaluate", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not list((output / "results").glob("s?.txt")):  # the first sequence is finished
            assert process.poll() is None, process.stderr.read()[-4000:]
            assert time.monotonic() < deadline, "no sequence finished in 180 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()

    assert process.returncode == 130, stderr[-4000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    kept = sorted(path.stem for path in (output / "results").glob("s?.txt"))
    assert 1 <= len(kept) < len(names)
    assert f"{len(kept)} of {len(names)} (sequence, run) pairs are finished and kept in {output}" in stderr
    assert "lorat-eval run --model" in stderr and "run the same command again" in stderr
    assert not (output / "report.json").exists()
    leftovers = [p.name for p in (output / "results").iterdir() if not p.name.startswith("s")]
    assert leftovers == []  # no temporary files of a half-written result
    for name in kept:
        assert parse_boxes((output / "results" / f"{name}.txt").read_text()).shape == (150, 4)
    kept_bytes = {name: (output / "results" / f"{name}.txt").read_bytes() for name in kept}

    # the same command resumes: only the sequences without a result file are tracked
    started = count_started(monkeypatch)
    assert eval_main(args) == 0
    assert sorted(started) == sorted(f"{name}#0" for name in names if name not in kept)
    for name in kept:
        assert (output / "results" / f"{name}.txt").read_bytes() == kept_bytes[name]
    assert (output / "report.json").is_file()


def test_an_undecodable_frame_in_a_dataset_folder_names_the_frame_and_keeps_finished_sequences(
    tmp_path, model_dir, capsys
):
    root = tmp_path / "G"
    sequences = make_generic(root, names=("alpha", "beta"), num_frames=4, size_wh=(64, 48), extension="jpg")
    broken = Path(sequences["beta"].frame_paths[2])
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    output = tmp_path / "out"
    args = eval_args(model_dir, root, output, tmp_path / "cache")
    assert eval_main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"beta: frame 2 cannot be read (Frame {broken} could not be decoded" in err
    assert "Restore the file" in err and "run the same command again" in err
    assert (output / "results" / "alpha.txt").is_file() and not (output / "results" / "beta.txt").exists()

    # once the frame is restored, the same command finishes the run
    from data_factories import write_frames

    write_frames(broken.parent, [broken.name], (64, 48), 1)
    assert eval_main(args) == 0
    assert np.isfinite(parse_boxes((output / "results" / "beta.txt").read_text())).all()
