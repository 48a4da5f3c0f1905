"""Fault injection: every fault ends in a clear message, with nothing lost or half-written (docs/reliability.md)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from data_factories import make_generic

import lorat_hf.engine.videos
from lorat_hf.commands.evaluate import main as eval_main
from lorat_hf.evaluation import parse_boxes

REPO = Path(__file__).resolve().parents[1]


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


def disk_full(source, destination):
    """`os.replace` on a full disk."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def finished_run(tmp_path: Path, model_dir: Path) -> tuple[list[str], Path]:
    """A complete `lorat-eval run` of two 4-frame sequences; returns its arguments and output folder."""
    make_generic(tmp_path / "G", names=("alpha", "beta"), num_frames=4, size_wh=(64, 48), extension="jpg")
    output = tmp_path / "out"
    args = eval_args(model_dir, tmp_path / "G", output, tmp_path / "cache")
    assert eval_main(args) == 0
    return args, output


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda text: "garbage\n", "line 1: expected 4 numbers (x, y, w, h), got 1: 'garbage'"),
        (lambda text: "".join(text.splitlines(keepends=True)[:2]), "2 boxes for 4 frames"),
    ],
    ids=["garbage", "truncated"],
)
def test_a_damaged_result_file_in_an_eval_output_folder_is_named_with_what_to_do(
    tmp_path, model_dir, capsys, monkeypatch, damage, problem
):
    args, output = finished_run(tmp_path, model_dir)
    damaged = output / "results" / "alpha.txt"
    damaged.write_text(damage(damaged.read_text()))
    report = (output / "report.json").read_bytes()
    capsys.readouterr()
    assert eval_main(args) == 1
    err = capsys.readouterr().err
    assert f"The result file {damaged} is damaged ({problem}). Delete it and run the same command again" in err
    assert "Traceback" not in err and (output / "report.json").read_bytes() == report

    damaged.unlink()  # as the message says: only that sequence is tracked again
    started = count_started(monkeypatch)
    assert eval_main(args) == 0
    assert started == ["alpha#0"] and len(parse_boxes(damaged.read_text())) == 4


def test_a_corrupt_annotation_file_is_named_with_its_line(tmp_path, model_dir, capsys):
    make_generic(tmp_path / "G", names=("alpha", "beta"), num_frames=4, size_wh=(64, 48), extension="jpg")
    annotation = tmp_path / "G" / "beta" / "groundtruth.txt"
    annotation.write_text("1,2,x,4\n")
    output = tmp_path / "out"
    assert eval_main(eval_args(model_dir, tmp_path / "G", output, tmp_path / "cache")) == 1
    err = capsys.readouterr().err
    assert f"lorat-eval: error: {annotation}, line 1: expected 4 numbers 'x,y,w,h'" in err and "'1,2,x,4'" in err
    assert "Traceback" not in err and not (output / "results").exists()


def test_a_full_disk_while_writing_a_result_is_one_message_and_leaves_the_previous_files_intact(
    tmp_path, model_dir, capsys, monkeypatch
):
    args, output = finished_run(tmp_path, model_dir)
    kept = {path.name: path.read_bytes() for path in output.rglob("*") if path.is_file()}
    (output / "results" / "beta.txt").unlink()  # beta is tracked again and its result written
    kept.pop("beta.txt")

    monkeypatch.setattr(os, "replace", disk_full)
    capsys.readouterr()
    assert eval_main(args) == 1
    monkeypatch.undo()
    err = capsys.readouterr().err
    target = output / "results" / "beta_time.txt"  # the time file is written first, then the box file
    assert f"lorat-eval: error: [Errno 28] Could not write {target} (No space left on device)" in err
    assert "a file already there is unchanged. Free some disk space and run again." in err and "Traceback" not in err
    now = {path.name: path.read_bytes() for path in output.rglob("*") if path.is_file()}
    assert now == kept  # nothing half-written: no temporary files, the older files unchanged


def test_a_truncated_training_checkpoint_is_skipped_by_latest_and_refused_by_name(tmp_path, caplog, monkeypatch):
    from safetensors.torch import save_file

    from lorat_hf.training import TrainingSetupError
    from lorat_hf.training.checkpointing import mark_checkpoint_complete, resolve_checkpoint

    checkpoints = tmp_path / "checkpoints"
    for step in (10, 20):
        folder = checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        save_file({"weight": torch.full((64, 64), float(step))}, folder / "trainable_model.safetensors")
        mark_checkpoint_complete(folder, step)
    newest = checkpoints / "checkpoint-20" / "trainable_model.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a truncated copy

    with caplog.at_level("WARNING"):
        assert resolve_checkpoint("latest", checkpoints) == checkpoints / "checkpoint-10"
    assert "Ignoring incomplete checkpoints (interrupted while saving): checkpoint-20" in caplog.text
    with pytest.raises(TrainingSetupError, match=r"checkpoint-20' is incomplete: .* Resume from 'latest'"):
        resolve_checkpoint(str(checkpoints / "checkpoint-20"), checkpoints)

    # a full disk while the next checkpoint is marked complete: one error naming the marker; `latest` is unchanged
    folder = checkpoints / "checkpoint-30"
    folder.mkdir()
    save_file({"weight": torch.zeros(4)}, folder / "trainable_model.safetensors")
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match=r"Could not write .*checkpoint_complete.json .*Free some disk space"):
        mark_checkpoint_complete(folder, 30)
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["trainable_model.safetensors"]
    assert resolve_checkpoint("latest", checkpoints) == checkpoints / "checkpoint-10"
