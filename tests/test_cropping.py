"""SiamFC cropping: bit-exact against the official cropper on every stored combination, plus properties."""

import json

import numpy as np
import pytest
import torch
from conftest import OFFICIAL
from safetensors.numpy import load_file

from lorat_hf.cropping import (
    adjusted_params,
    crop_box_to_image,
    crop_image,
    invert_params,
    jittered_crop_params,
    map_boxes,
    pixel_aligned_rois,
    search_crop_params,
    siamfc_crop_params,
)

CASES = json.loads((OFFICIAL / "cropping" / "cases.json").read_text())["cases"]
TENSORS = load_file(OFFICIAL / "cropping" / "cropping.safetensors")


class ScriptedDraws:
    """Stands in for the numpy Generator: returns the draws the official run was given."""

    def __init__(self, normal, uniform):
        self.normal_draws, self.uniform_draws, self.rounds = np.array(normal, float), np.array(uniform, float), 0

    def standard_normal(self, size):
        self.rounds += 1
        return self.normal_draws

    def uniform(self, low, high, size):
        return self.uniform_draws


def _requested(case):
    box, output = np.array(case["box_xyxy"]), case["output_wh"]
    min_size = float(np.atleast_1d(case.get("min_object_size", 10.0))[0])
    if case["mode"] == "eval_template" or (case["mode"] == "train" and "normal_draws" not in case):
        return siamfc_crop_params(box, case["area_factor"], output), True, None
    if case["mode"] == "eval_search":
        return search_crop_params(box, case["area_factor"], output, min_size), True, None
    draws = ScriptedDraws(case["normal_draws"], case["uniform_draws"])
    params, positive = jittered_crop_params(
        box, case["area_factor"], output, case["scale_jitter"], case["translation_jitter"], draws, min_size
    )
    return params, positive, draws.rounds


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_crop_parameters_rois_and_box_mapping_are_bit_exact(case):
    name = case["name"]
    params, positive, rounds = _requested(case)
    assert np.array_equal(params, TENSORS[f"{name}.requested_params"])
    if rounds is not None:
        assert rounds == case["jitter_draw_rounds"] and positive == case["is_positive"]
    input_roi, output_roi = pixel_aligned_rois(params, case["image_wh"], case["output_wh"])
    assert input_roi.tolist() == case["rois"][0]["input_roi_xyxy"]
    assert output_roi.tolist() == case["rois"][0]["output_roi_xyxy"]
    adjusted = adjusted_params(input_roi, output_roi)
    assert np.array_equal(adjusted.astype(np.float32), TENSORS[f"{name}.adjusted_params"])
    if case["box_in_crop_xyxy"] is not None:
        assert np.array_equal(map_boxes(np.array(case["box_xyxy"]), adjusted), np.array(case["box_in_crop_xyxy"]))
    crop_box = np.array(case["crop_space_box_xyxy"], dtype=np.float32)
    unclipped = map_boxes(crop_box, invert_params(adjusted))
    assert np.array_equal(unclipped, np.array(case["crop_space_box_in_image_xyxy_unclipped"]))
    clipped = crop_box_to_image(crop_box, adjusted, case["image_wh"])
    assert np.array_equal(clipped, np.array(case["crop_space_box_in_image_xyxy_clipped"]))


@pytest.mark.parametrize("case", [c for c in CASES if c["with_image"]], ids=lambda c: c["name"])
def test_cropped_pixels_are_bit_exact(case):
    name = case["name"]
    params, _, _ = _requested(case)
    padding = case.get("padding_mean")
    result = crop_image(TENSORS[f"{name}.image_hwc_uint8"], params, case["output_wh"], padding)
    assert np.array_equal(result.padding_color.numpy(), TENSORS[f"{name}.image_mean"])
    pixels = result.image / 255.0 if case["mode"] == "train" else result.image
    assert np.array_equal(pixels.numpy(), TENSORS[f"{name}.cropped_chw_float32"])
    # a torch uint8 HWC frame and a float CHW frame give the same crop
    frame = torch.from_numpy(TENSORS[f"{name}.image_hwc_uint8"])
    assert torch.equal(crop_image(frame, params, case["output_wh"], padding).image, result.image)
    assert torch.equal(
        crop_image(frame.permute(2, 0, 1).float(), params, case["output_wh"], padding).image, result.image
    )


def test_box_round_trip_through_crop_and_back():
    rng = np.random.default_rng(0)
    for _ in range(200):
        width, height = rng.integers(50, 1500, 2)
        x1, y1 = rng.uniform(0, width - 5), rng.uniform(0, height - 5)
        box = np.array([x1, y1, rng.uniform(x1 + 1, width), rng.uniform(y1 + 1, height)])
        params = adjusted_params(
            *pixel_aligned_rois(siamfc_crop_params(box, 4.0, (224, 224)), (width, height), (224, 224))
        )
        np.testing.assert_allclose(crop_box_to_image(map_boxes(box, params), params, (width, height)), box, atol=1e-3)


def test_jitter_is_reproducible_from_the_generator_seed():
    box = np.array([100.0, 80.0, 160.0, 140.0])
    a = jittered_crop_params(box, 4.0, (224, 224), 0.25, 3, np.random.default_rng(7))
    b = jittered_crop_params(box, 4.0, (224, 224), 0.25, 3, np.random.default_rng(7))
    c = jittered_crop_params(box, 4.0, (224, 224), 0.25, 3, np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


def test_crop_entirely_outside_the_image_is_padding_only():
    image = np.full((20, 30, 3), 200, dtype=np.uint8)
    params = siamfc_crop_params(np.array([500.0, 500.0, 520.0, 520.0]), 2.0, (16, 16))
    result = crop_image(image, params, (16, 16), padding_color=[1.0, 2.0, 3.0])
    assert torch.equal(result.image, torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1).expand(3, 16, 16))
