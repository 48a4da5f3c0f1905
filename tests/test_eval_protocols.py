"""The five OPE protocols on hand-made boxes: every difference of eval-protocols.md table 1.8 as an exact number."""

from __future__ import annotations

import numpy as np
import pytest

from lorat_hf.evaluation.protocols import (
    GOT10K_OVERLAP_THRESHOLDS,
    LASOT_TOOLKIT_OVERLAP_THRESHOLDS,
    PYTRACKING_OVERLAP_THRESHOLDS,
    EvaluationError,
    SequenceData,
    evaluate_sequences,
    got10k_iou,
    lasot_toolkit_frame_errors,
    lasot_toolkit_sequence_curves,
    matlab_colon,
    pytracking_frame_errors,
    pytracking_sequence_curves,
    trackingnet_sequence_curves,
)

PERCENT_KEYS = ("success_auc", "success_rate_50", "success_rate_75", "precision", "normalized_precision")


def walk(num_frames: int, start=(10.0, 12.0, 20.0, 16.0), step=(3.0, 2.0)) -> np.ndarray:
    """Integer xywh boxes moving right/down, all coordinates > 0."""
    boxes = np.tile(np.asarray(start, dtype=np.float64), (num_frames, 1))
    boxes[:, 0] += np.arange(num_frames) * step[0]
    boxes[:, 1] += np.arange(num_frames) * step[1]
    return boxes


def far(boxes: np.ndarray, shift: float = 500.0) -> np.ndarray:
    """The same boxes moved far away (IoU 0, centre error > 50 px)."""
    out = np.array(boxes, dtype=np.float64)
    out[:, :2] += shift
    return out


def seq(name, gt, *preds, **kwargs) -> SequenceData:
    return SequenceData(name, gt, list(preds), **kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# grids


def test_threshold_grids_are_the_toolkits_float_values():
    # pytracking's torch.arange: 1 ulp above nominal at 13 and 15, where numpy's arange gives 0.65 / 0.75 exactly
    assert PYTRACKING_OVERLAP_THRESHOLDS[13] == 0.6500000000000001
    assert PYTRACKING_OVERLAP_THRESHOLDS[15] == 0.7500000000000001
    assert np.nonzero(PYTRACKING_OVERLAP_THRESHOLDS != np.arange(0, 1.05, 0.05))[0].tolist() == [13, 15]
    # MATLAB's 0:0.05:1 is built symmetrically from both ends
    assert LASOT_TOOLKIT_OVERLAP_THRESHOLDS[13] == 0.6499999999999999
    assert LASOT_TOOLKIT_OVERLAP_THRESHOLDS[15] == 0.75 and LASOT_TOOLKIT_OVERLAP_THRESHOLDS[10] == 0.5
    assert matlab_colon(0.0, 1.0, 4.0).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert len(GOT10K_OVERLAP_THRESHOLDS) == 101 and GOT10K_OVERLAP_THRESHOLDS[75] == 0.75


def test_iou_of_exactly_0_65_passes_threshold_13_only_in_the_matlab_toolkit():
    gt = np.array([[1, 1, 20, 1], [1, 1, 20, 1]], dtype=np.float64)
    pred = np.array([[1, 1, 20, 1], [1, 1, 13, 1]], dtype=np.float64)  # IoU 13/20 == 0.65
    pyt = pytracking_sequence_curves(pred, gt)
    matlab = lasot_toolkit_sequence_curves(pred, gt)
    assert pyt.success[13] == pytest.approx(0.5) and pyt.success[12] == pytest.approx(1.0)
    assert matlab.success[13] == pytest.approx(1.0) and matlab.success[14] == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------------------------------
# perfect tracker


@pytest.mark.parametrize("protocol", ["pytracking", "ostrack", "lasot-toolkit"])
def test_perfect_tracker_scores_95_24_auc_because_t_1_0_is_in_the_grid(protocol):
    sequences = [seq("a", walk(6), walk(6)), seq("b", walk(4, (5, 6, 7, 9)), walk(4, (5, 6, 7, 9)))]
    result = evaluate_sequences(protocol, sequences, dataset="lasot_ext" if protocol != "lasot-toolkit" else "x")
    assert round(result.metrics["success_auc"], 2) == 95.24
    assert result.metrics["success_auc"] == pytest.approx(2000 / 21)
    for key in PERCENT_KEYS[1:]:
        assert result.metrics[key] == pytest.approx(100.0)
    assert result.num_sequences == 2 and set(result.per_sequence) == {"a", "b"}
    assert result.curves["success"]["values"][-1] == 0.0 and len(result.curves["precision"]["values"]) == 51


def test_perfect_tracker_got10k_and_trackingnet():
    gt = walk(5)
    got = evaluate_sequences("got10k", [seq("a", gt, gt.copy(), cover=[8] * 5, image_size=(200, 200))])
    assert got.metrics["average_overlap"] == pytest.approx(1.0)
    assert got.metrics["success_rate_50"] == 1.0 and got.metrics["success_rate_75"] == 1.0
    assert got.curves["success"]["values"][-1] == 0.0  # IoU > 1.0 never holds
    tn = evaluate_sequences("trackingnet", [seq("a", gt, gt.copy())])
    assert tn.metrics == {"success": 100.0, "precision": 100.0, "normalized_precision": 100.0, "coverage": 100.0}


# ----------------------------------------------------------------------------------------------------------------------
# frame 0


def test_frame_zero_is_replaced_and_counted_by_pytracking_but_skipped_by_got10k():
    gt = walk(4)
    pred = gt.copy()
    pred[0] = far(gt[:1])  # only frame 0 wrong
    assert pytracking_sequence_curves(pred, gt).success[10] == 1.0
    assert lasot_toolkit_sequence_curves(pred, gt).success[10] == pytest.approx(1.0)
    assert trackingnet_sequence_curves(pred, gt).success[10] == 1.0
    only_first = far(gt)
    only_first[0] = gt[0]  # right on frame 0 only
    got = evaluate_sequences("got10k", [seq("a", gt, only_first, cover=[8] * 4, image_size=(1000, 1000))])
    assert got.metrics["average_overlap"] == 0.0 and got.details["num_frames_scored"] == 3
    assert pytracking_sequence_curves(only_first, gt).success[10] == pytest.approx(0.25)


# ----------------------------------------------------------------------------------------------------------------------
# valid ground truth


def test_visible_box_with_x_zero_is_invalid_for_pytracking_valid_for_ostrack():
    gt = walk(4)
    gt[2, 0] = 0.0  # visible, touching the left border in a 0-based file
    pred = gt.copy()
    pyt = evaluate_sequences("pytracking", [seq("a", gt, pred)], dataset="tnl2k")
    ost = evaluate_sequences("ostrack", [seq("a", gt, pred)], dataset="tnl2k")
    assert pyt.metrics["success_rate_50"] == pytest.approx(75.0) and ost.metrics["success_rate_50"] == 100.0
    assert pyt.metrics["precision"] == pytest.approx(75.0) and ost.metrics["precision"] == 100.0
    # the invalid frame's normalised error is -1: a success at every threshold
    assert pyt.metrics["normalized_precision"] == 100.0
    errors = pytracking_frame_errors(pred, gt)
    assert errors.iou[2] == -1 and errors.center_error[2] == np.inf and errors.normalized_center_error[2] == -1
    assert not errors.valid[2]


def test_matlab_toolkit_counts_invalid_gt_as_precision_success_pytracking_as_failure():
    gt = walk(4)
    gt[1, 1] = 0.0
    pred = far(gt)
    matlab = evaluate_sequences("lasot-toolkit", [seq("a", gt, pred)])
    pyt = evaluate_sequences("pytracking", [seq("a", gt, pred)])
    # frame 0 (=GT) + frame 1 (err_center -1) succeed in MATLAB; only frame 0 in pytracking
    assert matlab.metrics["precision"] == pytest.approx(50.0)
    assert pyt.metrics["precision"] == pytest.approx(25.0)
    overlap, center = lasot_toolkit_frame_errors(pred, gt)
    assert overlap[1] == -1 and center[1] == -1


def test_got10k_keeps_only_cover_positive_frames_and_trackingnet_has_no_validity():
    gt = walk(5)
    pred = gt.copy()
    pred[3] = far(gt[3:4])
    got = evaluate_sequences("got10k", [seq("a", gt, pred, cover=[8, 8, 8, 0, 8], image_size=(1000, 1000))])
    assert got.metrics["average_overlap"] == pytest.approx(1.0) and got.details["num_frames_scored"] == 3
    got_all = evaluate_sequences("got10k", [seq("a", gt, pred, cover=[8] * 5, image_size=(1000, 1000))])
    assert got_all.metrics["success_rate_50"] == pytest.approx(0.75)
    zero_gt = gt.copy()
    zero_gt[2] = 0
    tn = trackingnet_sequence_curves(gt, zero_gt)  # GT 0,0,0,0 is scored like any box: the frame fails
    assert tn.success[10] == pytest.approx(4 / 5)


# ----------------------------------------------------------------------------------------------------------------------
# invalid / absent frames per pytracking mode


def test_invisible_frames_count_as_norm_precision_success_except_in_lasot_mode():
    gt = walk(4)
    visible = np.array([True, True, False, True])
    pred = gt.copy()
    lasot = evaluate_sequences("ostrack", [seq("a", gt, pred, visible=visible)], dataset="lasot")
    ext = evaluate_sequences("ostrack", [seq("a", gt, pred, visible=visible)], dataset="lasot_ext")
    for result in (lasot, ext):  # success and precision: the invisible frame fails (IoU -1, CLE inf)
        assert result.metrics["success_rate_50"] == pytest.approx(75.0)
        assert result.metrics["precision"] == pytest.approx(75.0)
    assert lasot.metrics["normalized_precision"] == pytest.approx(75.0)
    assert ext.metrics["normalized_precision"] == 100.0
    assert lasot.details["mode"] == "lasot" and ext.details["mode"] == "lasot_extension_subset"


def test_tnl2k_absent_frames_are_norm_precision_successes_and_not_visibility_gated():
    gt = walk(5)
    gt[2:4] = 0  # TNL2K absent frames: 0,0,0,0
    pred = far(walk(5))
    result = evaluate_sequences("ostrack", [seq("a", gt, pred, visible=[True] * 5)], dataset="tnl2k")
    assert result.metrics["normalized_precision"] == pytest.approx(60.0)  # frame 0 + 2 absent frames
    assert result.metrics["precision"] == pytest.approx(20.0)


def test_uav_mode_allows_nan_gt_and_counts_invalid_frames_as_precision_successes():
    gt = walk(4)
    gt[2] = np.nan
    pred = far(walk(4))
    uav = evaluate_sequences("pytracking", [seq("a", gt, pred)], dataset="uav")
    assert uav.metrics["precision"] == pytest.approx(50.0) and uav.metrics["success_rate_50"] == pytest.approx(25.0)
    with pytest.raises(EvaluationError, match=r"a: frame 2: the ground truth is NaN"):
        evaluate_sequences("pytracking", [seq("a", gt, pred)], dataset="lasot_ext")


# ----------------------------------------------------------------------------------------------------------------------
# denominators and aggregation


def test_got10k_pools_frames_over_sequences_pytracking_averages_sequences():
    short_gt, long_gt = walk(3), walk(11)
    sequences = [
        seq("short", short_gt, short_gt.copy(), cover=[8] * 3, image_size=(1000, 1000)),
        seq("long", long_gt, far(long_gt), cover=[8] * 11, image_size=(1000, 1000)),
    ]
    got = evaluate_sequences("got10k", sequences)
    assert got.metrics["average_overlap"] == pytest.approx(2 / 12)  # frame-weighted: 2 good of 12 scored frames
    assert got.per_sequence["short"]["average_overlap"] == pytest.approx(1.0)
    assert got.per_sequence["long"]["num_frames"] == 10
    pyt = evaluate_sequences("pytracking", [seq(s.name, s.groundtruth, s.predictions[0]) for s in sequences])
    assert pyt.metrics["success_rate_50"] == pytest.approx((100.0 + 100.0 / 11) / 2)  # sequence-weighted


def test_matlab_toolkit_removes_absent_frames_but_divides_by_all_frames():
    gt = walk(4)
    absent = np.array([False, False, True, False])
    curves = lasot_toolkit_sequence_curves(gt.copy(), gt, absent)
    assert curves.success[10] == pytest.approx(0.75) and curves.precision[20] == pytest.approx(0.75)
    overlap, _ = lasot_toolkit_frame_errors(gt.copy(), gt, absent)
    assert len(overlap) == 3
    with pytest.raises(EvaluationError, match="frame 4 is flagged absent"):
        lasot_toolkit_frame_errors(gt, gt, np.array([0, 0, 0, 0, 1]))
    assert len(lasot_toolkit_frame_errors(gt, gt, np.array([0, 0, 0, 0, 0]))[0]) == 4  # extra 0 flag: ignored


def test_matlab_toolkit_drops_all_zero_sequences_per_plot():
    good = walk(5)
    bad_gt = walk(5)
    bad_gt[0, 0] = 0.0  # frame 0's GT invalid: overlap -1, so every success value of this sequence is 0
    sequences = [seq("good", good, good.copy()), seq("bad", bad_gt, far(bad_gt))]
    matlab = evaluate_sequences("lasot-toolkit", sequences)
    pyt = evaluate_sequences("pytracking", sequences)
    assert matlab.metrics["success_auc"] == pytest.approx(2000 / 21)  # "bad" dropped from the success plot
    assert matlab.details["sequences_per_plot"] == {"success": 1, "precision": 2, "normalized_precision": 2}
    assert matlab.per_sequence["bad"]["all_zero_success_curve"]
    assert matlab.metrics["precision"] == pytest.approx((100.0 + 20.0) / 2)  # kept: frame 0 has err_center -1
    assert pyt.metrics["success_auc"] == pytest.approx(2000 / 21 / 2)  # kept, scoring 0


def test_matlab_normalized_precision_at_0_20_vs_area_over_0_0_5():
    gt = np.array([[10, 10, 10, 10]] * 4, dtype=np.float64)
    pred = gt.copy()
    pred[1:, 0] += [1.25, 3.25, 6.0]  # normalised errors 0.125, 0.325, 0.6
    result = evaluate_sequences("lasot-toolkit", [seq("a", gt, pred)], dataset="tnl2k")
    assert result.metrics["normalized_precision"] == pytest.approx(50.0)  # frames 0 and 1 at 0.20
    # area (mean of the 51-point curve): frame 0 always, 0.125 from t=0.13 (38 points), 0.325 from t=0.33 (18)
    expected = (51 + 38 + 18 + 0) / 4 / 51 * 100
    assert result.metrics["normalized_precision_auc"] == pytest.approx(expected)


def test_trackingnet_uses_greater_equal_and_trapezoid_areas():
    gt = np.array([[10, 10, 10, 10], [10, 10, 10, 10]], dtype=np.float64)
    pred = np.array([[10, 10, 10, 10], [10, 10, 10, 5]], dtype=np.float64)  # IoU exactly 0.5
    tn = trackingnet_sequence_curves(pred, gt)
    assert tn.success[10] == 1.0 and tn.success[11] == 0.5  # 0.5 >= 0.5 holds
    assert pytracking_sequence_curves(pred, gt).success[10] == 0.5  # 0.5 > 0.5 does not
    result = evaluate_sequences("trackingnet", [seq("a", gt, pred)])
    success = np.r_[np.ones(11), np.full(10, 0.5)]
    assert result.metrics["success"] == pytest.approx(np.trapezoid(success, dx=0.05) * 100)
    # precision is an area over 0..50 px (centre error 2.5 px: fails only at t = 0)
    assert result.metrics["precision"] == pytest.approx(np.trapezoid(np.r_[0.5, np.ones(20)], dx=0.05) * 100)
    pyt_precision = evaluate_sequences("pytracking", [seq("a", gt, pred)]).metrics["precision"]
    assert pyt_precision == 100.0


def test_trackingnet_rounds_half_to_even_before_scoring():
    gt = np.array([[104, 20, 30, 30]] * 3, dtype=np.float64)
    pred = gt.copy()
    pred[1, 0] = 104.5  # rounds to 104: perfect
    pred[2, 0] = 105.5  # rounds to 106: shifted by 2 px
    tn = trackingnet_sequence_curves(pred, gt)
    assert tn.precision[0] == pytest.approx(2 / 3)  # distance 0 for frames 0 and 1
    assert tn.success[-1] == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------------------------------------------------
# zero-size, negative and NaN predictions


def test_zero_size_boxes_copy_the_previous_raw_row():
    gt = walk(4)
    pred = gt.copy()
    pred[0] = far(gt[:1])  # raw frame-0 output is wrong (the metric replaces it by GT afterwards)
    pred[1, 2] = 0  # zero width: pytracking and MATLAB copy the RAW frame-0 row, not the GT
    pred[2, 3] = 0  # copies the repaired frame 1, i.e. frame 0's raw box again
    assert pytracking_sequence_curves(pred, gt).success[10] == pytest.approx(0.5)
    assert lasot_toolkit_sequence_curves(pred, gt).success[10] == pytest.approx(0.5)
    # got10k and TrackingNet score the zero-size box itself: IoU 0
    got = evaluate_sequences("got10k", [seq("a", gt, pred, cover=[8] * 4, image_size=(1000, 1000))])
    assert got.metrics["success_rate_50"] == pytest.approx(1 / 3)
    assert trackingnet_sequence_curves(pred, gt).success[10] == pytest.approx(0.5)


def test_zero_size_repair_is_skipped_where_uav_gt_is_nan():
    gt = walk(3)
    gt[1] = np.nan
    pred = gt.copy()
    pred[1] = [1, 1, 0, 0]
    errors = pytracking_frame_errors(pred, gt, mode="uav")
    assert errors.iou[1] == -1 and errors.center_error[1] == -1


@pytest.mark.parametrize(
    ("bad", "problem"), [([np.nan, 1, 2, 3], "contains NaN"), ([1, 1, -2, 3], "negative width or height")]
)
def test_pytracking_stops_on_nan_or_negative_predictions(bad, problem):
    gt = walk(5)
    pred = gt.copy()
    pred[3] = bad
    with pytest.raises(EvaluationError, match=rf"seqname: frame 3 \(line 4\).*{problem}.*Invalid results"):
        pytracking_frame_errors(pred, gt, sequence="seqname")
    with pytest.raises(EvaluationError, match="frame 3"):
        evaluate_sequences("ostrack", [seq("seqname", gt, pred)])


def test_matlab_toolkit_repairs_nan_and_negative_predictions_and_got10k_propagates_nan():
    gt = walk(4)
    pred = gt.copy()
    pred[2] = [np.nan, 1, 2, 3]
    pred[3, 2] = -5
    curves = lasot_toolkit_sequence_curves(pred, gt)  # frames 2 and 3 copy frame 1's box
    overlap, _ = lasot_toolkit_frame_errors(pred, gt)
    assert overlap[2] == pytest.approx(17 * 14 / (2 * 320 - 17 * 14))  # gt[1] vs gt[2]: shifted by (3, 2)
    assert overlap[3] == pytest.approx(14 * 12 / (2 * 320 - 14 * 12))  # gt[1] vs gt[3]: shifted by (6, 4)
    assert curves.success[10] == pytest.approx(0.75)
    got = evaluate_sequences("got10k", [seq("a", gt, pred, cover=[8] * 4, image_size=(1000, 1000))])
    assert got.metrics["average_overlap"] is None  # NaN: the toolkit's AO is NaN
    assert got.metrics["success_rate_50"] == pytest.approx(1 / 3)  # NaN > 0.5 is False, negative size: IoU 0
    tn = trackingnet_sequence_curves(pred, gt)
    assert tn.success[1] == pytest.approx(0.5) and not np.isnan(tn.success).any()


# ----------------------------------------------------------------------------------------------------------------------
# lengths


def test_pytracking_length_mismatch_lasot_raises_others_pad_with_failures():
    gt = walk(6)
    short = gt[:4].copy()
    with pytest.raises(EvaluationError, match=r"4 boxes for 6 frames.*Mis-match"):
        pytracking_frame_errors(short, gt, mode="lasot", visible=np.ones(6, bool))
    padded = pytracking_sequence_curves(short, gt, mode="tnl2k")
    assert padded.success[10] == pytest.approx(4 / 6) and padded.precision[20] == pytest.approx(4 / 6)
    longer = np.concatenate([gt, far(gt)])
    assert pytracking_sequence_curves(longer, gt, mode="lasot", visible=np.ones(6, bool)).success[10] == 1.0
    zero_beyond = np.concatenate([gt, [[1, 1, 0, 1]]])
    with pytest.raises(EvaluationError, match="IndexError"):
        pytracking_frame_errors(zero_beyond, gt)


def test_matlab_short_file_raises_long_is_truncated_empty_is_zero():
    gt = walk(5)
    with pytest.raises(EvaluationError, match=r"3 boxes for 5 frames.*index error"):
        lasot_toolkit_sequence_curves(gt[:3], gt, sequence="s")
    assert lasot_toolkit_sequence_curves(np.concatenate([gt, gt]), gt).success[10] == pytest.approx(1.0)
    assert not lasot_toolkit_sequence_curves(np.zeros((0, 4)), gt).success.any()


def test_got10k_asserts_the_exact_shape():
    gt = walk(5)
    for wrong in (gt[:4], np.concatenate([gt, gt[:1]])):
        with pytest.raises(EvaluationError, match=r"GOT-10k_Val_000001: run 1 has \d boxes for 5 frames"):
            evaluate_sequences("got10k", [seq("GOT-10k_Val_000001", gt, wrong, cover=[8] * 5, image_size=(99, 99))])


def test_trackingnet_short_submission_is_nan_long_is_cut_missing_is_zero():
    gt = walk(5)
    short = trackingnet_sequence_curves(gt[:3], gt)
    assert short.success[0] == pytest.approx(3 / 5) and short.covered.tolist() == [True] * 3 + [False] * 2
    long = trackingnet_sequence_curves(np.concatenate([gt, far(gt)]), gt)
    assert long.success[-1] == 1.0
    missing = trackingnet_sequence_curves(None, gt)
    assert missing.covered.tolist() == [True, False, False, False, False]  # frame 0 = GT counts as covered
    assert missing.success[1] == pytest.approx(1 / 5)
    zero_first = gt.copy()
    zero_first[0] = 0
    assert not trackingnet_sequence_curves(None, zero_first).covered.any()


def test_trackingnet_coverage_is_pooled_over_frames():
    long_gt, short_gt = walk(8), walk(2)
    result = evaluate_sequences("trackingnet", [seq("long", long_gt, long_gt.copy()), seq("short", short_gt, None)])
    assert result.metrics["coverage"] == pytest.approx(9 / 10 * 100)  # not (100 + 50) / 2
    assert result.per_sequence["short"]["coverage"] == pytest.approx(50.0)
    assert result.details["missing_scored_as_zero"] == ["short"]


# ----------------------------------------------------------------------------------------------------------------------
# GOT-10k specifics


def test_got10k_clips_boxes_to_the_image_by_shifting_them_in():
    gt = np.array([[0, 0, 20, 20]], dtype=np.float64)
    pred = np.array([[-10, 0, 20, 20]], dtype=np.float64)  # shifted to x=0, keeping w=20 (not cropped to 10)
    assert got10k_iou(pred, gt, (100, 100))[0] == pytest.approx(1.0)
    assert got10k_iou(pred, gt, None)[0] == pytest.approx(1 / 3)
    right = np.array([[90, 0, 20, 20]], dtype=np.float64)  # w clipped to W - x = 10
    assert got10k_iou(right, np.array([[90, 0, 10, 20]]), (100, 100))[0] == pytest.approx(1.0)


def test_got10k_sr75_is_strict_at_exactly_0_75():
    gt = np.array([[0, 0, 100, 10]] * 3, dtype=np.float64)
    pred = np.array([[0, 0, 100, 10], [0, 0, 75, 10], [0, 0, 100, 10]], dtype=np.float64)
    result = evaluate_sequences("got10k", [seq("a", gt, pred, cover=[8] * 3, image_size=(200, 200))])
    # 0.75 / (1 + eps) < 0.75 and the test is '>', so frame 1 fails SR0.75
    assert result.metrics["success_rate_75"] == pytest.approx(0.5)
    assert result.metrics["success_rate_50"] == 1.0


def test_got10k_runs_are_pooled_and_times_give_fps_with_the_missing_file_quirk():
    gt = walk(5)
    good, bad = gt.copy(), far(gt)
    a = seq("a", gt, good, bad, cover=[8] * 5, image_size=(1000, 1000), times=np.array([[0.1, 0.2]] * 5))
    b = seq("b", gt, good, good, cover=[8] * 5, image_size=(1000, 1000))  # no time file
    result = evaluate_sequences("got10k", [a, b])
    assert result.metrics["average_overlap"] == pytest.approx(12 / 16)
    assert result.details["runs"] == 2
    assert result.metrics["speed_fps"] == pytest.approx((10 + 5) / 2)
    # "b" has no time file: the toolkit reuses "a"'s times for b's own speed
    assert result.per_sequence["b"]["speed_fps"] == pytest.approx(7.5)
    first_without = evaluate_sequences("got10k", [b, a])
    assert first_without.per_sequence["b"]["speed_fps"] is None  # the toolkit crashes (NameError) here
    noisy = seq("c", gt, good, cover=[8] * 5, image_size=(1000, 1000), times=np.array([0.5, np.nan, 0, -1, 0.25]))
    assert evaluate_sequences("got10k", [noisy]).metrics["speed_fps"] == pytest.approx(3.0)
    assert evaluate_sequences("got10k", [b]).metrics["speed_fps"] == -1


# ----------------------------------------------------------------------------------------------------------------------
# multiple runs and missing results


def test_pytracking_averages_curves_over_runs_before_sequences():
    gt = walk(4)
    half = gt.copy()
    half[2:] = far(gt[2:])
    result = evaluate_sequences("ostrack", [seq("a", gt, gt.copy(), half)])
    assert result.metrics["success_rate_50"] == pytest.approx(75.0)
    assert result.details["runs"] == 2


@pytest.mark.parametrize("protocol", ["pytracking", "ostrack", "lasot-toolkit", "got10k"])
def test_missing_results_stop_or_are_skipped(protocol):
    gt = walk(4)
    extra = dict(cover=[8] * 4, image_size=(1000, 1000))
    sequences = [seq("present", gt, gt.copy(), **extra), SequenceData("gone", gt, [None], result_paths=["r/gone.txt"])]
    with pytest.raises(EvaluationError, match="gone: result"):
        evaluate_sequences(protocol, sequences)
    result = evaluate_sequences(protocol, sequences, skip_missing=True)
    assert result.skipped == ["gone"]
    if protocol == "lasot-toolkit":  # scored like an empty file: all-zero curves, dropped by the plot filter
        assert result.num_sequences == 2 and result.details["sequences_per_plot"]["success"] == 1
    else:
        assert result.num_sequences == 1 and "gone" not in result.per_sequence


def test_pytracking_skip_drops_a_sequence_when_any_run_is_missing():
    gt = walk(4)
    result = evaluate_sequences("pytracking", [seq("a", gt, gt.copy(), None), seq("b", gt, gt, gt)], skip_missing=True)
    assert result.skipped == ["a"] and list(result.per_sequence) == ["b"]


def test_result_keys_per_protocol():
    gt = walk(3)
    extra = dict(cover=[8] * 3, image_size=(1000, 1000))
    keys = {
        "pytracking": set(PERCENT_KEYS),
        "ostrack": set(PERCENT_KEYS),
        "lasot-toolkit": {*PERCENT_KEYS, "normalized_precision_auc"},
        "got10k": {"average_overlap", "success_rate_50", "success_rate_75", "speed_fps"},
        "trackingnet": {"success", "precision", "normalized_precision", "coverage"},
    }
    for protocol, expected in keys.items():
        result = evaluate_sequences(protocol, [seq("a", gt, gt.copy(), **extra)])
        assert set(result.metrics) == expected, protocol
        assert result.protocol == protocol and "success" in result.curves
    with pytest.raises(ValueError, match="Unknown protocol"):
        evaluate_sequences("vot", [])
    with pytest.raises(ValueError, match="Unknown pytracking mode"):
        evaluate_sequences("pytracking", [], mode="otb100")


def test_random_sequences_are_fast_and_bounded():
    rng = np.random.default_rng(0)
    sequences = []
    for index in range(40):
        gt = walk(300, (rng.uniform(5, 50), rng.uniform(5, 50), 30, 20))
        pred = gt + rng.normal(0, 4, gt.shape)
        pred[:, 2:] = np.abs(pred[:, 2:])
        sequences.append(
            seq(f"s{index}", gt, pred, visible=rng.random(300) > 0.1, cover=[8] * 300, image_size=(500, 500))
        )
    for protocol in ("pytracking", "ostrack", "lasot-toolkit", "got10k", "trackingnet"):
        result = evaluate_sequences(protocol, sequences, dataset="lasot")
        values = [v for k, v in result.metrics.items() if v is not None and k != "speed_fps"]
        assert all(0 <= v <= 100 for v in values), (protocol, result.metrics)
