"""LoraTrackerImageProcessor: template/search preparation, decoding and inverse mapping against the official run."""

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, tiny_config
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoImageProcessor

from lorat_hf.image_processing_lora_tracker import LoraTrackerImageProcessor, hann_window
from lorat_hf.video_io import to_rgb_array

POST = load_file(OFFICIAL / "postprocess" / "postprocess.safetensors")
E2E = load_file(OFFICIAL / "tracking_e2e" / "tracking.safetensors")


@pytest.mark.parametrize("geometry, search", [("g224", 224), ("g378", 378)])
def test_decoding_matches_the_official_post_processing(geometry, search):
    processor = LoraTrackerImageProcessor(template_size=search // 2, search_size=search)
    assert torch.equal(hann_window(processor.search_grid_wh), POST[f"{geometry}_hann_window"])
    boxes, confidence, index = processor.select_best_cells(POST[f"{geometry}_score_map"], POST[f"{geometry}_boxes"])
    assert torch.equal(index, POST[f"{geometry}_best_index"])
    assert torch.equal(confidence, POST[f"{geometry}_confidence"])
    assert torch.equal(boxes, POST[f"{geometry}_box_search_px"])
    _, confidence, index = processor.select_best_cells(POST[f"{geometry}_score_map"], POST[f"{geometry}_boxes"], 0.0)
    assert torch.equal(index, POST[f"{geometry}_best_index_no_penalty"])
    assert torch.equal(confidence, POST[f"{geometry}_confidence_no_penalty"])


def test_template_and_search_preparation_match_the_official_tracker_run():
    processor = LoraTrackerImageProcessor()
    frames = E2E["frames_hwc_uint8"].numpy()
    template = processor.prepare_template(frames[0], E2E["init_box_xyxy"].numpy())
    assert torch.equal(template.pixel_values, E2E["template_z"])
    assert torch.equal(template.token_type_ids, E2E["z_feat_mask"])
    assert torch.equal(template.padding_color, E2E["template_image_mean"])
    assert np.array_equal(template.params.astype(np.float32), E2E["template_cropping_params"].numpy())
    for step in range(len(E2E["search_prev_box_xyxy"])):
        search = processor.prepare_search(
            frames[step + 1], E2E["search_prev_box_xyxy"][step].numpy(), template.padding_color
        )
        assert np.array_equal(search.params, E2E["search_cropping_params"][step].numpy())
        box = processor.boxes_to_frame(E2E["post_box_search_px"][step][None].numpy(), search.params[None], (320, 240))[
            0
        ]
        np.testing.assert_allclose(box, E2E["pred_boxes_xyxy"][step + 1].numpy(), atol=1e-9)


def test_save_and_load_through_auto_image_processor(tmp_path):
    import lorat_hf  # noqa: F401  (registers the Auto classes)

    processor = LoraTrackerImageProcessor.from_tracker_config(tiny_config())
    processor.save_pretrained(tmp_path)
    reloaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, LoraTrackerImageProcessor)
    assert reloaded.to_dict() == processor.to_dict()
    assert reloaded.search_grid_wh == (8, 8) and reloaded.template_grid_wh == (4, 4)


def test_batched_preprocess_gives_model_inputs():
    processor = LoraTrackerImageProcessor.from_tracker_config(tiny_config())
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (90, 120, 3), dtype=np.uint8) for _ in range(2)]
    batch = processor(frames, boxes=[[10, 20, 30, 25], [50, 40, 20, 30]], box_format="xywh", search_images=frames)
    assert batch["template_pixel_values"].shape == (2, 3, 56, 56)
    assert batch["search_pixel_values"].shape == (2, 3, 112, 112)
    assert batch["template_token_type_ids"].shape == (2, 4, 4) and batch["template_token_type_ids"].sum() > 0


def test_frame_conversion_accepts_the_documented_inputs_and_rejects_others():
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    assert np.array_equal(to_rgb_array(Image.fromarray(rgb)), rgb)
    assert np.array_equal(to_rgb_array(torch.from_numpy(rgb).permute(2, 0, 1)), rgb)
    assert np.array_equal(to_rgb_array(torch.from_numpy(rgb)), rgb)
    with pytest.raises(ValueError, match="uint8"):
        to_rgb_array(rgb.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(height, width, 3\) RGB"):
        to_rgb_array(np.zeros((4, 5), dtype=np.uint8))
    with pytest.raises(TypeError, match="numpy array"):
        to_rgb_array([[0, 0, 0]])
