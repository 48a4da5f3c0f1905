"""ONNX export of LoRATv2 (template and search steps, KV cache as explicit tensors), its streamed parity check, and
the onnxruntime backend tracking like torch (phase 2's reference update included)."""

import json

import numpy as np
import pytest
from test_fused_loratv2 import lively_v2
from tracking_helpers import moving_square_clip, write_frame_folder

from lorat_hf.commands.evaluate import main as evaluate_main
from lorat_hf.commands.export import main as export_main
from lorat_hf.commands.track import main as track_main
from lorat_hf.engine.backend_onnxruntime_loratv2 import OnnxLoratv2Network, OnnxRuntimeLoratv2Backend
from lorat_hf.export_onnx import export_onnx
from lorat_hf.tracking import LoraTracker

PHASE2 = {"search_sizes": [56, 84], "dinov2": {"image_size": 14 * 12}}


@pytest.fixture(scope="module")
def phase2_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loratv2_onnx") / "tiny-p2"
    lively_v2(seed=5, **PHASE2).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported(phase2_dir, tmp_path_factory):
    """The phase-2 tiny LoRATv2 exported once through the command line, with dynamic int8."""
    output = tmp_path_factory.mktemp("loratv2_export") / "onnx"
    assert export_main(["--model", str(phase2_dir), "--output", str(output), "--quantize", "dynamic"]) == 0
    return output


def test_export_writes_template_reference_and_search_graphs_with_a_streamed_parity_report(exported):
    names = {path.name for path in exported.iterdir()}
    graphs = {f"{step}{suffix}.onnx" for step in ("template", "reference", "search") for suffix in ("", "_int8")}
    assert graphs | {"config.json", "preprocessor_config.json", "export_report.json"} <= names
    report = json.loads((exported / "export_report.json").read_text())
    fp32, tolerance = report["fp32"], report["tolerance"]
    assert fp32["score_map_max_abs"] <= tolerance["score_map"] and fp32["box_px_max"] <= tolerance["box_px"]
    assert fp32["kv_cache_max_abs"] <= tolerance["kv_cache"]
    assert fp32["batch_sizes"] == [1, 3]
    assert report["int8"]["best_cell_box_px_max"] <= report["int8_tolerance"]["box_px"]


class _CountingNetwork(OnnxLoratv2Network):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reference_updates = 0

    def update_region(self, region, search_pixel_values, kv_cache):
        self.reference_updates += len(search_pixel_values)
        super().update_region(region, search_pixel_values, kv_cache)


def test_onnxruntime_backend_tracks_like_torch_with_reference_updates(exported, phase2_dir):
    frames, gt = moving_square_clip(num_frames=6, seed=3)
    reference = LoraTracker.from_pretrained(phase2_dir, device="cpu", box_format="xyxy")
    onnx = LoraTracker.from_pretrained(exported, backend="onnxruntime", box_format="xyxy")
    int8 = LoraTracker.from_pretrained(exported, backend="onnxruntime-int8", box_format="xyxy")
    assert (
        isinstance(onnx.backend, OnnxRuntimeLoratv2Backend) and onnx.backend.network.files["search"] == "search.onnx"
    )
    assert int8.backend.network.files["search"] == "search_int8.onnx"
    counting = _CountingNetwork(exported)
    onnx.backend.network = counting
    # two targets in one batch: the dynamic batch of the graphs, rows of the cache stacked per step
    boxes = np.stack([gt[0], gt[0] + np.array([4.0, 2.0, 4.0, 2.0])])
    for tracker in (reference, onnx, int8):
        tracker.init(frames[0], boxes=boxes, object_ids=[1, 2])
    for frame in frames[1:]:
        expected, got, low = reference.track(frame), onnx.track(frame), int8.track(frame)
        for object_id, (box, score) in expected.items():
            onnx_box, onnx_score = got[object_id]
            np.testing.assert_allclose(onnx_box, box, atol=1e-2)
            assert abs(onnx_score - score) < 1e-4
        assert all(np.isfinite(box).all() and 0.0 <= score <= 1.0 for box, score in low.values())
    assert counting.reference_updates > 2  # first frame (2 targets) and at least one confident frame


def test_export_refuses_to_finish_beyond_tolerance_and_static_int8(tmp_path):
    folder = tmp_path / "p1"
    lively_v2(seed=6, search_sizes=[84], search_area_factors=[4.0]).save_pretrained(folder)
    output = tmp_path / "onnx"
    assert export_main(["--model", str(folder), "--output", str(output), "--atol-score", "-1"]) == 1
    assert not output.exists()
    with pytest.raises(ValueError, match="dynamic"):
        export_onnx(folder, output, quantize="static")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["p1"]  # nothing half-written left behind


def test_lorat_track_and_lorat_eval_run_with_the_onnxruntime_backend(exported, tmp_path):
    from data_factories import make_generic

    frames, gt = moving_square_clip(num_frames=4, seed=13)
    folder = write_frame_folder(tmp_path / "frames", frames)
    boxes = tmp_path / "boxes.json"
    x1, y1, x2, y2 = gt[0]
    argv = [str(folder), "--box", f"{x1:g},{y1:g},{x2 - x1:g},{y2 - y1:g}", "--model", str(exported)]
    assert track_main([*argv, "--backend", "onnxruntime", "--save-boxes", str(boxes), "--quiet"]) == 0
    assert len(json.loads(boxes.read_text())["frames"]) == 4

    sequences = make_generic(tmp_path / "G", names=("a", "b"), num_frames=3, size_wh=(96, 72), extension="jpg")
    output = tmp_path / "run"
    args = ["run", "--model", str(exported), "--backend", "onnxruntime", "--dataset", "generic",
            "--dataset-root", str(tmp_path / "G"), "--output", str(output), "--cache-dir", str(tmp_path / "cache"),
            "--batch-size", "2", "--num-workers", "1"]  # fmt: skip
    assert evaluate_main(args) == 0
    for name in sequences:
        assert len((output / "results" / f"{name}.txt").read_text().splitlines()) == 3
