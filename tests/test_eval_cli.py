"""`lorat-eval score` and the result-file layer: layouts, zips, round trips, report keys, plots, exit codes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from data_factories import make_generic, make_got10k, make_lasot, make_tnl2k, make_trackingnet

from lorat_hf.commands.evaluate import main
from lorat_hf.evaluation import load_report
from lorat_hf.evaluation.results_io import (
    ResultFileError,
    load_results,
    parse_boxes,
    rasterize_xywh,
    write_got10k_result,
    write_got10k_submission,
    write_pytracking_result,
    write_text_atomic,
    write_trackingnet_submission,
)
from lorat_hf.evaluation.runner import load_ground_truth

LASOT_NAMES = ("airplane-1", "airplane-2", "bear-1")


@pytest.fixture
def lasot(tmp_path):
    occlusion = {"airplane-1": [0, 0, 1, 0, 0, 0]}
    sequences = make_lasot(tmp_path / "LaSOT", num_frames=6, full_occlusion=occlusion, testing_set=LASOT_NAMES)
    return tmp_path / "LaSOT", sequences


def score(tmp_path: Path, dataset: str, root: Path, results: Path, *extra: str, output: str = "report.json"):
    argv = ["score", "--dataset", dataset, "--dataset-root", str(root), "--results", str(results)]
    argv += ["--output", str(tmp_path / output), "--cache-dir", str(tmp_path / "cache"), *extra]
    return main(argv)


def write_all(folder: Path, sequences, transform=lambda name, gt: gt) -> None:
    for name, sequence in sequences.items():
        write_pytracking_result(folder, name, transform(name, sequence.groundtruth_xywh))


# ----------------------------------------------------------------------------------------------------------------------
# score: LaSOT through the reader


def test_score_lasot_report_keys_numbers_table_and_plots(tmp_path, lasot, capsys):
    root, sequences = lasot
    write_all(tmp_path / "mine", sequences)
    other = tmp_path / "baseline"
    write_all(other, sequences, lambda name, gt: gt + [5, 5, 0, 0])
    code = score(tmp_path, "lasot", root, tmp_path / "mine", "--split", "test", "--plots-dir", str(tmp_path / "plots"),
                 "--compare", str(other))  # fmt: skip
    assert code == 0
    report = load_report(tmp_path / "report.json")
    assert report["protocol"] == "ostrack" and report["dataset"] == "lasot" and report["num_sequences"] == 3
    assert set(report) >= {"metrics", "per_sequence", "curves", "skipped_sequences", "split", "results"}
    # airplane-1's occluded frame fails (LaSOT mode), the other 17 frames of 18 succeed
    assert report["metrics"]["success_rate_50"] == pytest.approx((5 / 6 + 1 + 1) / 3 * 100, abs=1e-4)
    assert report["metrics"]["normalized_precision"] == pytest.approx((5 / 6 + 1 + 1) / 3 * 100, abs=1e-4)
    assert report["per_sequence"]["bear-1"]["success_auc"] == pytest.approx(2000 / 21, abs=1e-4)
    assert len(report["curves"]["success"]["thresholds"]) == 21
    printed = capsys.readouterr().out
    assert (
        "AUC" in printed
        and "mine" in printed
        and "baseline" in printed
        and f"{(5 / 6 + 2) / 3 * 2000 / 21:.2f}" in printed
    )
    for kind in ("success", "precision", "normalized_precision"):
        assert (tmp_path / "plots" / f"{kind}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_score_errors_name_sequence_and_frame_and_exit_nonzero(tmp_path, lasot, capsys):
    root, sequences = lasot

    def broken(name, gt):
        gt = gt.copy()
        if name == "airplane-2":
            gt[4, 2] = -3
        return gt

    write_all(tmp_path / "res", sequences, broken)
    assert score(tmp_path, "lasot", root, tmp_path / "res", "--split", "test") == 1
    error = capsys.readouterr().err
    assert "lorat-eval: error: airplane-2: frame 4 (line 5)" in error and "negative width" in error
    assert not (tmp_path / "report.json").exists()
    # the MATLAB toolkit repairs the same box instead of stopping
    assert score(tmp_path, "lasot", root, tmp_path / "res", "--split", "test", "--protocol", "lasot-toolkit") == 0


def test_score_missing_files_stop_unless_skipped(tmp_path, lasot, capsys):
    root, sequences = lasot
    write_all(tmp_path / "res", sequences)
    (tmp_path / "res" / "bear-1.txt").unlink()
    assert score(tmp_path, "lasot", root, tmp_path / "res", "--split", "test") == 1
    assert "bear-1: result not found" in capsys.readouterr().err
    assert score(tmp_path, "lasot", root, tmp_path / "res", "--split", "test", "--skip-missing") == 0
    report = load_report(tmp_path / "report.json")
    assert report["skipped_sequences"] == ["bear-1"] and report["num_sequences"] == 2
    assert score(tmp_path, "lasot", tmp_path / "nowhere", tmp_path / "res", output="other.json") == 1
    assert "does not exist" in capsys.readouterr().err


def test_score_refuses_to_overwrite_and_rejects_bad_arguments(tmp_path, lasot, capsys):
    root, sequences = lasot
    write_all(tmp_path / "res", sequences)
    (tmp_path / "report.json").write_text("{}")
    assert score(tmp_path, "lasot", root, tmp_path / "res", "--split", "test") == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert json.loads((tmp_path / "report.json").read_text()) == {}
    assert score(tmp_path, "lasot", root, tmp_path / "res", "--split", "test", "--overwrite") == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--dataset", "lasot", "--protocol", "vot"])
    assert exit_info.value.code == 2


def test_score_multiple_runs_from_numbered_folders(tmp_path, lasot):
    root, sequences = lasot
    write_all(tmp_path / "trk_001", sequences)
    write_all(tmp_path / "trk_002", sequences, lambda name, gt: gt + [500, 500, 0, 0])
    assert score(tmp_path, "lasot", root, tmp_path / "trk", "--split", "test", "--protocol", "pytracking") == 0
    both = load_report(tmp_path / "report.json")
    assert both["details"]["runs"] == 2
    assert score(tmp_path, "lasot", root, tmp_path / "trk", "--split", "test", "--runs", "1", output="one.json") == 0
    one = load_report(tmp_path / "one.json")
    # run 2 only gets frame 0 right (= GT): the per-sequence curves are averaged over the two runs
    expected = (one["per_sequence"]["bear-1"]["success_rate_50"] + 100 / 6) / 2
    assert both["per_sequence"]["bear-1"]["success_rate_50"] == pytest.approx(expected, abs=1e-4)
    assert score(tmp_path, "lasot", root, tmp_path / "trk", "--split", "test", "--runs", "3", output="x.json") == 1


def test_score_tnl2k_matlab_toolkit_treats_zero_rows_as_absent(tmp_path):
    boxes = np.array([[5, 6, 10, 8], [6, 6, 10, 8], [0, 0, 0, 0], [8, 7, 10, 8]], dtype=np.float64)
    make_tnl2k(tmp_path / "TNL2K", names=("seq_a",), boxes={"seq_a": boxes})
    prediction = boxes.copy()
    prediction[2] = [30, 30, 5, 5]
    write_pytracking_result(tmp_path / "res", "seq_a", prediction)
    assert score(tmp_path, "tnl2k", tmp_path / "TNL2K", tmp_path / "res", "--protocol", "lasot-toolkit") == 0
    report = load_report(tmp_path / "report.json")
    assert report["metrics"]["precision"] == pytest.approx(75.0)  # absent frame removed: failure, not -1 success
    assert report["per_sequence"]["seq_a"]["num_absent"] == 1
    assert "normalized_precision_auc" in report["metrics"]


# ----------------------------------------------------------------------------------------------------------------------
# GOT-10k and TrackingNet: zips and round trips


def test_got10k_submission_zip_round_trip(tmp_path):
    size = (64, 48)
    boxes = {
        name: np.array([[3.2, 4.7, 20.5, 10.25], [4.0, 5.0, 20.0, 10.0], [5.5, 6.5, 19.0, 11.0]])
        for name in ("GOT-10k_Val_000001", "GOT-10k_Val_000002")
    }
    cover = {"GOT-10k_Val_000002": [8, 0, 8]}  # frame 1 fully occluded: not scored
    make_got10k(tmp_path / "GOT10k", "val", size_wh=size, num_frames=3, boxes=boxes, cover=cover)
    exact = {name: ([gt, gt], np.array([[0.01, 0.02]] * 3)) for name, gt in boxes.items()}
    write_got10k_submission(tmp_path / "exact.zip", exact, rasterize=False)
    with zipfile.ZipFile(tmp_path / "exact.zip") as archive:
        names = archive.namelist()
    assert "GOT-10k_Val_000001/GOT-10k_Val_000001_002.txt" in names
    assert "GOT-10k_Val_000001/GOT-10k_Val_000001_time.txt" in names
    assert score(tmp_path, "got10k", tmp_path / "GOT10k", tmp_path / "exact.zip", "--split", "val") == 0
    report = load_report(tmp_path / "report.json")
    assert report["protocol"] == "got10k" and report["layout"] == "got10k"
    assert set(report["metrics"]) == {"average_overlap", "success_rate_50", "success_rate_75", "speed_fps"}
    assert report["metrics"]["average_overlap"] == pytest.approx(1.0)
    assert report["metrics"]["speed_fps"] == pytest.approx(75.0)  # mean of 1/0.01 and 1/0.02
    assert report["details"]["num_frames_scored"] == (2 + 1) * 2  # frames 1..2 (one occluded), two runs
    # LoRAT's rasterised boxes cover every touched pixel: IoU < 1 for fractional boxes, exact for integer ones
    write_got10k_submission(tmp_path / "raster.zip", {n: ([gt], None) for n, gt in boxes.items()})
    assert (
        score(tmp_path, "got10k", tmp_path / "GOT10k", tmp_path / "raster.zip", "--split", "val", output="r.json") == 0
    )
    rasterised = load_report(tmp_path / "r.json")
    frame_2 = 19 * 11 / (20 * 12)  # [5.5, 24.5) x [6.5, 17.5) -> pixels 5..24 x 6..17
    assert rasterised["per_sequence"]["GOT-10k_Val_000001"]["average_overlap"] == pytest.approx((1 + frame_2) / 2)
    assert rasterised["metrics"]["speed_fps"] == -1  # no time files


def test_got10k_test_split_cannot_be_scored(tmp_path, capsys):
    make_got10k(tmp_path / "GOT10k", "test", num_frames=4)
    write_got10k_result(tmp_path / "res", "GOT-10k_Test_000001", [np.ones((4, 4))])
    assert score(tmp_path, "got10k", tmp_path / "GOT10k", tmp_path / "res", "--split", "test") == 1
    assert "annotations are withheld" in capsys.readouterr().err


def test_got10k_shape_mismatch_exits_with_the_sequence(tmp_path, capsys):
    sequences = make_got10k(tmp_path / "GOT10k", "val", num_frames=5)
    for name, sequence in sequences.items():
        write_got10k_result(tmp_path / "res", name, [sequence.groundtruth_xywh[:4]], rasterize=False)
    assert score(tmp_path, "got10k", tmp_path / "GOT10k", tmp_path / "res", "--split", "val") == 1
    assert "GOT-10k_Val_000001: run 1 has 4 boxes for 5 frames" in capsys.readouterr().err


def test_trackingnet_zip_round_trip_and_substring_matching(tmp_path):
    sequences = make_trackingnet(tmp_path / "TN")
    train = {n: s for n, s in sequences.items() if s.extra["chunk"] != "TEST"}
    write_trackingnet_submission(
        tmp_path / "exact.zip", {n: s.groundtruth_xywh for n, s in train.items()}, rasterize=False
    )
    assert score(tmp_path, "trackingnet", tmp_path / "TN", tmp_path / "exact.zip", "--split", "train") == 0
    report = load_report(tmp_path / "report.json")
    assert report["metrics"] == {
        "success": 100.0,
        "precision": 100.0,
        "normalized_precision": 100.0,
        "coverage": 100.0,
    }
    # a nested zip works (any depth); a name contained in two paths is ambiguous and scored as missing
    files = {
        f"tracker/{n}/{n}.txt": "".join(f"{b[0]},{b[1]},{b[2]},{b[3]}\n" for b in s.groundtruth_xywh)
        for n, s in train.items()
    }
    files["tracker/extra/x-3TIfnTSM6c_2.txt"] = "1,1,1,1\n"
    with zipfile.ZipFile(tmp_path / "nested.zip", "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    assert (
        score(tmp_path, "trackingnet", tmp_path / "TN", tmp_path / "nested.zip", "--split", "train", output="n.json")
        == 0
    )
    nested = load_report(tmp_path / "n.json")
    assert nested["details"]["missing_scored_as_zero"] == ["-3TIfnTSM6c_2"]
    assert nested["per_sequence"]["zz9_1"]["success"] == 100.0
    assert nested["per_sequence"]["-3TIfnTSM6c_2"]["coverage"] == pytest.approx(100 / 12)


# ----------------------------------------------------------------------------------------------------------------------
# results_io


def test_parse_boxes_separators_and_errors():
    text = "1\t2\t3\t4\n\n5,6,7,8\n9 10 11 12\nnan,1,2,3\n"
    boxes = parse_boxes(text)
    assert boxes.shape == (4, 4) and boxes[2].tolist() == [9, 10, 11, 12] and np.isnan(boxes[3, 0])
    with pytest.raises(ResultFileError, match=r"res\.txt: line 2: expected 4 numbers .* got 3"):
        parse_boxes("1,2,3,4\n1,2,3\n", "res.txt")
    with pytest.raises(ResultFileError, match="line 1: not a number"):
        parse_boxes("1,2,x,4\n", "res.txt")
    assert parse_boxes("").shape == (0, 4)


def test_rasterize_matches_lorat_rule():
    boxes = np.array([[3.2, 4.7, 20.5, 10.25], [10, 10, 5, 5], [0.9999, 0, 0.0002, 1], [0.5, 0, 0.50005, 1]])
    # pixels touched: 3..23 x 4..14; exact; 0 and 1; a 5e-5 overlap with pixel 1 is below the 1e-4 tolerance
    assert rasterize_xywh(boxes).tolist() == [[3, 4, 21, 11], [10, 10, 5, 5], [0, 0, 2, 1], [0, 0, 1, 1]]
    with pytest.raises(ValueError, match="non-finite"):
        rasterize_xywh(np.array([[np.nan, 1, 2, 3]]))


def test_load_results_layouts_runs_and_ambiguity(tmp_path):
    names = ["a", "b", "a_2"]
    boxes = np.array([[1.0, 2, 3, 4]])
    write_got10k_result(tmp_path / "got", "a", [boxes, boxes + 1], np.array([[0.1, 0.2]]), rasterize=False)
    loaded, layout = load_results(tmp_path / "got", names, protocol="got10k")
    assert layout == "got10k" and len(loaded["a"].predictions) == 2 and loaded["b"].predictions == []
    assert loaded["a"].times.shape == (1, 2)
    for name in ("a", "a_2"):
        write_pytracking_result(tmp_path / "flat", name, boxes)
    loaded, layout = load_results(tmp_path / "flat", names)
    assert layout == "pytracking" and loaded["a"].predictions[0].tolist() == [[1, 2, 3, 4]]
    assert loaded["b"].predictions == [None]
    for run in (1, 2):
        write_pytracking_result(tmp_path / "per_file", f"a_{run:03d}", boxes * run)
    loaded, _ = load_results(tmp_path / "per_file", ["a"], runs=2)
    assert [p[0, 0] for p in loaded["a"].predictions] == [1, 2]
    (tmp_path / "dup" / "x").mkdir(parents=True)
    write_pytracking_result(tmp_path / "dup", "a", boxes)
    write_pytracking_result(tmp_path / "dup" / "x", "a", boxes)
    with pytest.raises(ResultFileError, match="several files named a.txt"):
        load_results(tmp_path / "dup", ["a"])
    with pytest.raises(FileNotFoundError, match="No results at"):
        load_results(tmp_path / "none", ["a"])


def test_atomic_writes_never_replace_silently(tmp_path):
    path = write_text_atomic(tmp_path / "f.txt", "one")
    with pytest.raises(FileExistsError, match="already exists"):
        write_text_atomic(path, "two", overwrite=False)
    with pytest.raises(FileExistsError):
        write_trackingnet_submission(path, {})
    assert path.read_text() == "one" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_generic_layout_visibility_feeds_the_matlab_absent_flags(tmp_path):
    make_generic(tmp_path / "G", names=("s",), num_frames=4, absent={"s": [0, 0, 1, 0]})
    sequences = load_ground_truth("generic", tmp_path / "G", cache_dir=tmp_path / "cache")
    write_pytracking_result(tmp_path / "res", "s", sequences[0].groundtruth_xywh)
    assert score(tmp_path, "generic", tmp_path / "G", tmp_path / "res", "--protocol", "lasot-toolkit") == 0
    report = load_report(tmp_path / "report.json")
    assert report["per_sequence"]["s"]["num_absent"] == 1
    assert report["metrics"]["success_rate_50"] == pytest.approx(75.0)
