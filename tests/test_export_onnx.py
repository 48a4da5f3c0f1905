"""ONNX export (`lorat-export`, `export_onnx`): parity check built in, int8, and the onnxruntime tracking backend."""

import json

import numpy as np
import pytest
import torch
from tracking_helpers import lively_tiny_model, moving_square_clip, write_frame_folder

from lorat_hf.commands.export import main as export_main
from lorat_hf.commands.track import main as track_main
from lorat_hf.engine.backend_onnxruntime import OnnxRuntimeBackend
from lorat_hf.export_onnx import (
    ONNX_INT8_MODEL_NAME,
    ONNX_MODEL_NAME,
    ExportParityError,
    check_parity,
    export_onnx,
    module_matmul_nodes,
    quantize_int8,
    synthetic_tracker_inputs,
)
from lorat_hf.tracking import LoraTracker


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracker") / "tiny"
    lively_tiny_model(seed=11).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    """The tiny tracker exported once through the command line, with dynamic int8."""
    output = tmp_path_factory.mktemp("export") / "onnx"
    assert export_main(["--model", str(model_dir), "--output", str(output), "--quantize", "dynamic"]) == 0
    return output


def test_export_folder_holds_both_graphs_the_config_and_the_parity_report(exported):
    names = {path.name for path in exported.iterdir()}
    assert {ONNX_MODEL_NAME, ONNX_INT8_MODEL_NAME, "config.json", "preprocessor_config.json"} <= names
    report = json.loads((exported / "export_report.json").read_text())
    assert report["fp32"]["score_map_max_abs"] <= report["tolerance"]["score_map"]
    assert report["fp32"]["box_px_max"] <= report["tolerance"]["box_px"]
    assert report["fp32"]["batch_sizes"] == [1, 3]  # the dynamic batch is checked, not only the traced one
    assert report["int8"]["best_cell_box_px_max"] <= report["int8_tolerance"]["box_px"]


def test_onnxruntime_backend_tracks_like_torch(exported, model_dir):
    frames, gt = moving_square_clip(num_frames=5, seed=12)
    reference = LoraTracker.from_pretrained(model_dir, device="cpu", box_format="xyxy")
    onnx = LoraTracker.from_pretrained(exported, backend="onnxruntime", box_format="xyxy")
    int8 = LoraTracker.from_pretrained(exported, backend="onnxruntime-int8", box_format="xyxy")
    assert isinstance(onnx.backend, OnnxRuntimeBackend) and onnx.backend.onnx_path.name == ONNX_MODEL_NAME
    for tracker in (reference, onnx, int8):
        tracker.init(frames[0], gt[0])
    for frame in frames[1:]:
        (box, score), (onnx_box, onnx_score) = reference.track(frame), onnx.track(frame)
        np.testing.assert_allclose(onnx_box, box, atol=1e-2)
        assert abs(onnx_score - score) < 1e-4
        int8_box, int8_score = int8.track(frame)
        assert np.all(np.isfinite(int8_box)) and 0.0 <= int8_score <= 1.0
    with torch.inference_mode():  # a batch of several targets in one ORT run
        inputs = synthetic_tracker_inputs(reference.model.config, 3, seed=5)
        torch_out = reference.model(**inputs)
        onnx_scores, _ = onnx.backend.run(
            *(inputs[name] for name in ("template_pixel_values", "search_pixel_values", "template_token_type_ids"))
        )
    assert (onnx_scores - torch_out.score_map).abs().max() < 1e-3


def test_export_refuses_to_finish_beyond_tolerance(model_dir, tmp_path):
    output = tmp_path / "onnx"
    with pytest.raises(ExportParityError, match="beyond tolerance"):
        export_onnx(model_dir, output, tolerance={"score_map": -1.0})
    assert not output.exists() and not list(tmp_path.iterdir())  # nothing half-written left behind


def test_export_refuses_an_int8_graph_beyond_its_box_tolerance(model_dir, tmp_path):
    output = tmp_path / "onnx"
    with pytest.raises(ExportParityError, match=r"int8 graph's boxes differ .*\(tolerance -1\.0 px\)"):
        export_onnx(model_dir, output, quantize="dynamic", int8_tolerance={"box_px": -1.0})
    assert not output.exists() and not list(tmp_path.iterdir())


def test_static_int8_calibrated_on_synthetic_crops(exported, model_dir, tmp_path):
    model = LoraTracker.from_pretrained(model_dir, device="cpu").model
    calibration = synthetic_tracker_inputs(model.config, 4, seed=3)
    path = quantize_int8(exported / ONNX_MODEL_NAME, tmp_path / "static.onnx", "static", calibration)
    result = check_parity(model, path, synthetic_tracker_inputs(model.config, 3, seed=4), batch_sizes=(1,))
    assert result.best_cell_box_px_max < 8.0 and np.isfinite(result.score_map_max_abs)


def test_default_int8_keeps_the_head_fp32_and_beats_per_tensor_all_int8(exported, model_dir, tmp_path):
    import onnx

    head = module_matmul_nodes(exported / ONNX_MODEL_NAME, ("tracker_head",))
    assert len(head) == 6  # score and box MLPs, 3 layers each
    nodes = {node.name: node.op_type for node in onnx.load(str(exported / ONNX_INT8_MODEL_NAME)).graph.node}
    assert all(nodes[name] == "MatMul" for name in head)
    assert sum(op in ("MatMulInteger", "DynamicQuantizeMatMul") for op in nodes.values()) >= 4  # the encoder's
    model = LoraTracker.from_pretrained(model_dir, device="cpu").model
    inputs = synthetic_tracker_inputs(model.config, 8, seed=4)
    plain = quantize_int8(exported / ONNX_MODEL_NAME, tmp_path / "plain.onnx", per_channel=False, fp32_modules=())
    default = check_parity(model, exported / ONNX_INT8_MODEL_NAME, inputs, batch_sizes=(8,))
    per_tensor = check_parity(model, plain, inputs, batch_sizes=(8,))
    assert default.box_px_max < per_tensor.box_px_max


def test_command_line_errors(model_dir, exported, tmp_path, capsys):
    assert export_main(["--model", str(model_dir), "--output", str(exported)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert export_main(["--model", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="lorat-export"):
        LoraTracker.from_pretrained(model_dir, backend="onnxruntime")
    with pytest.raises(ValueError, match="float32; drop dtype"):
        LoraTracker.from_pretrained(exported, backend="onnxruntime", dtype="bfloat16")


def test_lorat_track_with_the_onnxruntime_backend(exported, tmp_path, capsys):
    frames, gt = moving_square_clip(num_frames=4, seed=13)
    folder = write_frame_folder(tmp_path / "frames", frames)
    boxes = tmp_path / "boxes.json"
    x1, y1, x2, y2 = gt[0]
    argv = [str(folder), "--box", f"{x1:g},{y1:g},{x2 - x1:g},{y2 - y1:g}", "--model", str(exported)]
    assert track_main([*argv, "--backend", "onnxruntime", "--save-boxes", str(boxes), "--quiet"]) == 0
    assert len(json.loads(boxes.read_text())["frames"]) == 4
