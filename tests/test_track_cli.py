"""`lorat-track`: video file and frame folder runs, outputs, and every input error (exit status 2 + message)."""

import csv
import json

import cv2
import numpy as np
import pytest
from tracking_helpers import lively_tiny_model, moving_square_clip, write_frame_folder, write_video

from lorat_hf.assets import default_model_path
from lorat_hf.commands.track import main
from lorat_hf.tracking import LoraTracker


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracker") / "tiny"
    lively_tiny_model(seed=8).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip():
    return moving_square_clip(num_frames=6, seed=9)


def _box_arg(box_xyxy, box_format="xywh"):
    x1, y1, x2, y2 = box_xyxy
    values = (x1, y1, x2 - x1, y2 - y1) if box_format == "xywh" else (x1, y1, x2, y2)
    return ",".join(f"{v:g}" for v in values)


def test_video_file_to_annotated_video_and_csv(tmp_path, model_dir, clip, capsys):
    frames, gt = clip
    video = write_video(tmp_path / "clip.mp4", frames)
    output, boxes = tmp_path / "tracked.mp4", tmp_path / "boxes.csv"
    argv = [
        str(video),
        "--box",
        _box_arg(gt[0]),
        "--model",
        str(model_dir),
        "--output",
        str(output),
        "--save-boxes",
        str(boxes),
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Tracked 6 frames" in printed and "FPS" in printed
    capture = cv2.VideoCapture(str(output))
    written = 0
    while capture.read()[0]:
        written += 1
    assert written == 6 and capture.get(cv2.CAP_PROP_FRAME_WIDTH) == 160
    capture.release()
    with open(boxes, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["frame_index", "x", "y", "w", "h", "score"]
    assert [int(r["frame_index"]) for r in rows] == list(range(6))
    assert [float(rows[0][k]) for k in "xywh"] == [40.0, 30.0, 28.0, 28.0] and float(rows[0]["score"]) == 1.0
    tracker = LoraTracker.from_pretrained(model_dir, device="cpu")
    expected = list(tracker.track_video(video, [40, 30, 28, 28]))
    for row, reference in zip(rows, expected, strict=True):
        np.testing.assert_allclose([float(row[k]) for k in "xywh"], reference.box, atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_frame_folder_with_xyxy_json_and_max_frames(tmp_path, model_dir, clip):
    frames, gt = clip
    folder = write_frame_folder(tmp_path / "frames", frames, pattern="frame{:d}.png")  # frame10 after frame9
    boxes = tmp_path / "boxes.json"
    argv = [
        str(folder),
        "--box",
        _box_arg(gt[0], "xyxy"),
        "--box-format",
        "xyxy",
        "--model",
        str(model_dir),
        "--save-boxes",
        str(boxes),
        "--max-frames",
        "4",
        "--quiet",
    ]
    assert main(argv) == 0
    saved = json.loads(boxes.read_text())
    assert saved["box_format"] == "xyxy" and len(saved["frames"]) == 4
    assert saved["frames"][0] == {"frame_index": 0, "box": gt[0].tolist(), "score": 1.0}
    tracker = LoraTracker.from_pretrained(model_dir, device="cpu", box_format="xyxy")
    tracker.init(frames[0], gt[0])
    assert saved["frames"][1]["box"] == tracker.track(frames[1])[0].tolist()


def test_onednn_kernels_option_tracks_like_the_default_within_float_rounding(tmp_path, model_dir, clip):
    frames, gt = clip
    folder = write_frame_folder(tmp_path / "frames", frames[:3], pattern="frame{:d}.png")
    boxes = tmp_path / "boxes.json"
    argv = [str(folder), "--box", _box_arg(gt[0], "xyxy"), "--box-format", "xyxy", "--model", str(model_dir)]
    assert main([*argv, "--save-boxes", str(boxes), "--quiet", "--onednn-kernels"]) == 0
    saved = [frame["box"] for frame in json.loads(boxes.read_text())["frames"]]
    tracker = LoraTracker.from_pretrained(model_dir, device="cpu", box_format="xyxy")
    expected = [output.box for output in tracker.track_video(frames[:3], gt[0])]
    np.testing.assert_allclose(saved, expected, atol=1e-3, rtol=0)


def test_existing_outputs_are_refused_unless_overwrite(tmp_path, model_dir, clip, capsys):
    frames, gt = clip
    folder = write_frame_folder(tmp_path / "frames", frames[:3])
    output = tmp_path / "out.avi"
    output.write_bytes(b"precious")
    argv = [str(folder), "--box", _box_arg(gt[0]), "--model", str(model_dir), "--output", str(output), "--quiet"]
    assert main(argv) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"precious"
    assert main(argv + ["--overwrite"]) == 0
    assert output.stat().st_size > 1000


def _error(capsys, argv):
    status = main(argv)
    return status, capsys.readouterr().err


def test_input_errors_exit_2_with_a_message(tmp_path, model_dir, clip, capsys):
    frames, gt = clip
    video = write_video(tmp_path / "clip.avi", frames[:2])
    box = ["--box", _box_arg(gt[0])]
    model = ["--model", str(model_dir)]
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("this is not a video")
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    cases = {
        "No such video file or frame folder": [str(tmp_path / "missing.mp4"), *box, *model],
        "OpenCV cannot open the video file": [str(not_a_video), *box, *model],
        "holds no image frames": [str(empty_folder), *box, *model],
        "lies outside the 160x120 frame": [str(video), "--box", "500,400,20,20", *model],
        "non-positive width or height": [str(video), "--box", "50,50,40,40", "--box-format", "xyxy", *model],
        "--save-boxes must end in .csv or .json": [str(video), *box, *model, "--save-boxes", str(tmp_path / "b.txt")],
        "unsupported suffix .gif": [str(video), *box, *model, "--output", str(tmp_path / "out.gif")],
        "Cannot load the tracker": [str(video), *box, "--model", str(empty_folder)],
        "--max-frames must be at least 1": [str(video), *box, *model, "--max-frames", "0"],
        "the box must be 4 numbers": [str(video), "--box", "1,2,3", *model],
    }
    for message, argv in cases.items():
        status, err = _error(capsys, argv + ["--quiet"])
        assert status == 2, message
        assert message in err, (message, err)
    assert not (tmp_path / "out.gif").exists()


def test_a_damaged_model_file_is_one_line_naming_it(tmp_path, model_dir, clip, capsys):
    import shutil

    frames, gt = clip
    video = write_video(tmp_path / "clip.avi", frames[:2])
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-500])
    status, err = _error(capsys, [str(video), "--box", _box_arg(gt[0]), "--model", str(broken), "--quiet"])
    assert status == 2 and "Traceback" not in err
    assert "broken/model.safetensors is damaged" in err and "Download the model again" in err


def _damaged_video(path, frames):
    """An mp4 with a quarter of its bytes zeroed in the middle: OpenCV stops decoding there, with no error."""
    write_video(path, frames)
    data = bytearray(path.read_bytes())
    start, length = len(data) // 2, len(data) // 4
    data[start : start + length] = bytes(length)
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_video_is_a_warning_in_the_api_and_an_exit_status_in_the_command(tmp_path, model_dir, capsys):
    import warnings

    from lorat_hf.video_io import IncompleteVideoWarning, VideoReader

    frames, gt = moving_square_clip(num_frames=40, seed=3)
    intact = write_video(tmp_path / "intact.mp4", frames)
    damaged = _damaged_video(tmp_path / "damaged.mp4", frames)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader = VideoReader(intact)
        assert len(list(reader)) == 40 and reader.missing_frames == 0
    reader = VideoReader(damaged)
    assert reader.info.num_frames == 40
    with pytest.warns(IncompleteVideoWarning, match=r"ended after \d+ of the 40 frames its container states"):
        read = len(list(reader))
    assert 0 < read < 40 and reader.missing_frames == 40 - read

    boxes = tmp_path / "boxes.csv"
    argv = [str(damaged), "--box", _box_arg(gt[0]), "--model", str(model_dir), "--save-boxes", str(boxes), "--quiet"]
    status, err = _error(capsys, argv)
    assert status == 3
    assert f"ended after {read} of the 40 frames" in err and "--allow-incomplete" in err
    assert len(boxes.read_text().splitlines()) == 1 + read  # what was tracked is kept
    status, err = _error(capsys, argv + ["--overwrite", "--allow-incomplete"])
    assert status == 0 and "warning:" in err and f"ended after {read} of the 40 frames" in err


def test_an_empty_video_file_is_reported(tmp_path, model_dir, capsys):
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    status, err = _error(capsys, [str(empty), "--box", "1,1,5,5", "--model", str(model_dir), "--quiet"])
    assert status == 2
    assert "contains no readable frames (an empty or corrupt video)" in err


def test_without_model_the_embedded_demo_tracker_tracks(tmp_path, clip, capsys):
    frames, gt = clip
    video = write_video(tmp_path / "clip.avi", frames[:4])
    boxes = tmp_path / "boxes.csv"
    assert main([str(video), "--box", _box_arg(gt[0]), "--save-boxes", str(boxes), "--quiet"]) == 0
    rows = boxes.read_text().splitlines()
    assert rows[0].startswith("frame_index") and len(rows) == 1 + 4


def test_a_missing_embedded_tracker_is_a_usage_error(tmp_path, clip, monkeypatch, capsys):
    import lorat_hf.assets

    monkeypatch.setattr(lorat_hf.assets, "DEMO_TRACKER_DIRNAME", "not-installed")
    with pytest.raises(FileNotFoundError, match="embedded demo tracker is missing"):
        default_model_path()
    frames, gt = clip
    video = write_video(tmp_path / "clip.avi", frames[:2])
    status, err = _error(capsys, [str(video), "--box", _box_arg(gt[0]), "--quiet"])
    assert status == 2 and "embedded demo tracker is missing" in err and "--model" in err


def test_video_io_frame_order_writer_rules_and_drawing(tmp_path):
    from lorat_hf.video_io import VideoReader, VideoWriter, draw_box, read_video_frames

    frames = [np.full((24, 32, 3), index * 20, dtype=np.uint8) for index in range(12)]
    folder = write_frame_folder(tmp_path / "frames", frames, pattern="img{:d}.png")
    read = read_video_frames(folder)
    assert [int(frame[0, 0, 0]) for frame in read] == [index * 20 for index in range(12)]  # img10 after img9
    with VideoReader(folder, max_frames=5) as reader:
        assert reader.info.kind == "folder" and reader.info.num_frames == 5 and len(list(reader)) == 5

    target = tmp_path / "out.avi"
    with VideoWriter(target, fps=5) as writer:
        writer.write(frames[0])
        with pytest.raises(ValueError, match="differs from the first frame"):
            writer.write(np.zeros((10, 10, 3), dtype=np.uint8))
        assert not target.exists()  # appears only when complete
    assert target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    with pytest.raises(FileExistsError, match="already exists"):
        VideoWriter(target)
    with pytest.raises(ValueError, match="No frame was written"):
        VideoWriter(tmp_path / "never.avi").close()
    assert not (tmp_path / "never.avi").exists()

    canvas = np.zeros((90, 120, 3), dtype=np.uint8)
    drawn = draw_box(canvas, [10.5, 42.0, 60.0, 75.0], score=0.9, color=(0, 255, 0), thickness=1)
    assert canvas.max() == 0  # the input is not modified
    assert drawn[60, 10, 1] == 255 and drawn[60, 59, 1] == 255  # left and right edges: pixels 10 and 59
    assert drawn[42, 30, 1] == 255 and drawn[74, 30, 1] == 255  # top and bottom edges: pixels 42 and 74
    assert drawn[60, 30].max() == 0 and drawn[60, 61].max() == 0  # inside and outside untouched
    assert drawn[30:41, 10:40, 1].mean() > 100  # the score caption sits above the box


def test_written_videos_get_ordinary_file_permissions(tmp_path):
    from lorat_hf.file_utils import NEW_FILE_MODE
    from lorat_hf.video_io import VideoWriter

    writer = VideoWriter(tmp_path / "clip.mp4", fps=5)
    writer.write(np.zeros((48, 64, 3), np.uint8))
    path = writer.close()
    assert path.stat().st_mode & 0o777 == NEW_FILE_MODE  # not the 0600 of a private temporary file
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary left behind
