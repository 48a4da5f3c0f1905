"""Training pairs end to end: determinism, DataLoader workers, crops vs the official cropper, jitter resampling,
augmentations on hand-made images, labels, collation and a tiny model forward."""

from __future__ import annotations

import cv2
import datasets
import numpy as np
import pytest
import torch
from conftest import tiny_config

from lorat_hf import LoraTrackerImageProcessor, LoraTrackerModel
from lorat_hf.cropping import crop_image, jittered_crop_params, siamfc_crop_params
from lorat_hf.data.augmentation import (
    PairAugmentation,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    apply_color_jitter,
    apply_three_augment,
    draw_color_jitter,
    draw_three_augment,
    gaussian_blur_uint8,
    horizontal_flip,
    solarize_uint8,
)
from lorat_hf.data.pairs import (
    MODEL_INPUT_KEYS,
    EpochIndexSampler,
    SearchRegion,
    TrackingPairDataset,
    TrackingTupletDataset,
    build_train_dataloader,
    collate_pairs,
    search_regions_from_config,
)
from lorat_hf.data.sequences import SEQUENCE_FEATURES
from lorat_hf.labels import normalized_target_box, positive_cells_from_box, template_token_type_ids_from_boxes
from lorat_hf.video_io import read_image_rgb

WIDTH, HEIGHT = 320, 240


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread():
    """Crops and tiny forwards are far too small for intra-op threads; under `pytest -n 2` they only oversubscribe."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _background(rng: np.random.Generator) -> np.ndarray:
    coarse = rng.uniform(40, 215, (HEIGHT // 16, WIDTH // 16, 3)).astype(np.float32)
    return cv2.resize(coarse, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)


def _write_sequence(folder, name: str, rng: np.random.Generator, length: int) -> dict:
    """A textured rectangle moving and growing over a smooth background; exact float boxes."""
    background = _background(rng)
    texture = np.kron(rng.uniform(0, 255, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.float32)
    start, velocity = rng.uniform((20, 20), (150, 110)), rng.uniform(-4, 6, 2)
    paths, boxes = [], []
    for t in range(length):
        x1, y1 = start + velocity * t
        width, height = 50 + 2.5 * t, 38 + 1.5 * t
        frame = background.copy()
        ix1, iy1, ix2, iy2 = int(x1), int(y1), int(np.ceil(x1 + width)), int(np.ceil(y1 + height))
        frame[iy1:iy2, ix1:ix2] = cv2.resize(texture, (ix2 - ix1, iy2 - iy1), interpolation=cv2.INTER_NEAREST)
        path = folder / f"{name}_{t:04d}.jpg"
        cv2.imwrite(str(path), np.clip(frame, 0, 255).astype(np.uint8)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(str(path))
        boxes.append([float(ix1), float(iy1), float(ix2), float(iy2)])
    return _row("toy", name, paths, boxes)


def _row(dataset: str, name: str, paths, boxes) -> dict:
    return {
        "dataset": dataset,
        "name": name,
        "frame_paths": paths,
        "groundtruth_xywh": [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in boxes],
        "boxes_xyxy": boxes,
        "visible": [True] * len(paths),
        "image_width": WIDTH,
        "image_height": HEIGHT,
        "coordinate_offset": 0.0,
        "extra": "{}",
    }


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> list[datasets.Dataset]:
    """Three 10-frame videos and a COCO-like image with two objects (two one-frame tracks sharing the image)."""
    folder = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    videos = [_write_sequence(folder, f"video{i}", rng, 10) for i in range(3)]
    image = _background(rng)
    image[40:120, 30:150] = (250, 30, 30)
    image[150:210, 200:300] = (30, 30, 250)
    path = str(folder / "coco_000001.jpg")
    cv2.imwrite(path, image.astype(np.uint8)[..., ::-1])
    objects = [
        _row("coco", f"1_{k}", [path], [box]) for k, box in enumerate(([30.0, 40, 150, 120], [200.0, 150, 300, 210]))
    ]
    return [
        datasets.Dataset.from_list(videos, features=SEQUENCE_FEATURES),
        datasets.Dataset.from_list(objects, features=SEQUENCE_FEATURES),
    ]


@pytest.fixture(scope="module")
def processor() -> LoraTrackerImageProcessor:
    return LoraTrackerImageProcessor.from_tracker_config(tiny_config())  # 56 / 112 px, 4x4 / 8x8 tokens


def make_dataset(sequences, processor, **options) -> TrackingPairDataset:
    values = dict(samples_per_epoch=24, seed=0)
    values.update(options)
    return TrackingPairDataset(sequences, processor, **values)


def assert_items_equal(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


# ----- model inputs -----
def test_items_collate_and_train_a_tiny_model(sequences, processor):
    dataset = make_dataset(sequences, processor)
    item = dataset[0]
    assert tuple(item) == MODEL_INPUT_KEYS
    assert item["template_pixel_values"].shape == (3, 56, 56) and item["template_pixel_values"].dtype == torch.float32
    assert item["search_pixel_values"].shape == (3, 112, 112) and item["search_pixel_values"].dtype == torch.float32
    assert item["template_token_type_ids"].shape == (4, 4) and item["template_token_type_ids"].dtype == torch.int64
    assert item["labels"].shape == (4,) and item["labels"].dtype == torch.float32
    assert item["positive_mask"].shape == (8, 8) and item["positive_mask"].dtype == torch.bool

    batch = collate_pairs([dataset[i] for i in range(4)])
    assert batch["template_pixel_values"].shape == (4, 3, 56, 56)
    assert batch["search_pixel_values"].shape == (4, 3, 112, 112)
    assert batch["template_token_type_ids"].shape == (4, 4, 4)
    assert batch["labels"].shape == (4, 4) and batch["positive_mask"].shape == (4, 8, 8)
    torch.manual_seed(0)
    model = LoraTrackerModel(tiny_config())
    output = model(**batch)
    assert torch.isfinite(output.loss) and output.loss > 0
    assert output.loss_dict["num_positives"] == batch["positive_mask"].sum()
    output.loss.backward()
    assert model.tracker_head.score_mlp.layers[0].weight.grad is not None
    with pytest.raises(ValueError, match="empty batch"):
        collate_pairs([])


def test_labels_follow_the_official_label_rules(sequences, processor):
    dataset = make_dataset(sequences, processor, samples_per_epoch=40)
    for index in range(40):
        sample = dataset.get_pair(index)
        item = dataset.to_model_inputs(sample)
        assert np.array_equal(
            item["positive_mask"].numpy(), positive_cells_from_box(sample.search_box, (112, 112), (8, 8))
        )
        assert np.array_equal(item["labels"].numpy(), normalized_target_box(sample.search_box, (112, 112)))
        expected_types = template_token_type_ids_from_boxes(sample.template_box[None], (4, 4), 14)[0]
        assert torch.equal(item["template_token_type_ids"], expected_types)
        assert item["template_token_type_ids"].sum() > 0 and item["positive_mask"].any()
        # boxes are clipped to the crops; the search object keeps at least ~min_object_size pixels
        assert np.all(sample.search_box >= 0) and np.all(sample.search_box <= 112)
        assert np.all(sample.search_box[2:] - sample.search_box[:2] >= 9.0)
        assert np.all((item["labels"].numpy() >= 0) & (item["labels"].numpy() <= 1))


def test_378_geometry_uses_its_sizes_and_context(sequences):
    from lorat_hf import LoraTrackerConfig

    processor = LoraTrackerImageProcessor.from_tracker_config(LoraTrackerConfig.from_variant("B-378"))
    dataset = make_dataset(sequences, processor, augmentation=False, scale_jitter=0.0, translation_jitter=0.0)
    sample = dataset.get_pair(0)
    item = dataset.to_model_inputs(sample)
    assert item["template_pixel_values"].shape == (3, 196, 196) and item["search_pixel_values"].shape == (3, 378, 378)
    assert item["template_token_type_ids"].shape == (14, 14) and item["positive_mask"].shape == (27, 27)
    # without jitter the search crop is the context-5 SiamFC crop
    box = sample.search_frame_box
    side = np.sqrt(378 * 378 / sample.search_params[0].prod())
    context = 4.0 * np.mean(box[2:] - box[:2])  # (f - 1) (w + h) / 2 with f = 5
    assert abs(side - np.sqrt(np.prod(box[2:] - box[:2] + context))) < 0.02 * side


# ----- determinism -----
def test_same_seed_epoch_and_index_give_identical_tensors(sequences, processor):
    first, second = make_dataset(sequences, processor, seed=3), make_dataset(sequences, processor, seed=3)
    for index in (5, 0, 17):
        assert_items_equal(first[index], second[index])
    assert_items_equal(first[(2, 7)], second[(2, 7)])
    second.set_epoch(2)
    assert_items_equal(second[7], first[(2, 7)])
    reference = first[5]
    assert not torch.equal(first[6]["search_pixel_values"], reference["search_pixel_values"])
    assert not torch.equal(first[(1, 5)]["search_pixel_values"], reference["search_pixel_values"])
    other_seed = make_dataset(sequences, processor, seed=4)[5]
    assert not torch.equal(other_seed["search_pixel_values"], reference["search_pixel_values"])


def test_dataloader_batches_do_not_depend_on_worker_count(sequences, processor):
    dataset = make_dataset(sequences, processor, samples_per_epoch=16)
    single = build_train_dataloader(dataset, batch_size=4, num_workers=0)
    parallel = build_train_dataloader(dataset, batch_size=4, num_workers=2)
    assert parallel.persistent_workers and isinstance(parallel.sampler, EpochIndexSampler)
    epochs = []
    for epoch in (0, 1):
        dataset.set_epoch(epoch)  # persistent workers follow through the (epoch, index) keys
        expected = list(single)
        received = list(parallel)
        assert len(expected) == len(received) == 4
        for a, b in zip(expected, received, strict=True):
            assert_items_equal(a, b)
        epochs.append(expected)
    assert not torch.equal(epochs[0][0]["search_pixel_values"], epochs[1][0]["search_pixel_values"])
    shard = EpochIndexSampler(dataset, num_shards=2, shard_index=1)
    assert [index for _, index in shard] == list(range(1, 16, 2)) and len(shard) == 8


def test_resume_state_continues_the_same_samples(sequences, processor):
    dataset = make_dataset(sequences, processor)
    dataset.set_epoch(5)
    resumed = make_dataset(sequences, processor)
    resumed.load_state_dict(dataset.state_dict())
    assert resumed.epoch == 5
    assert_items_equal(resumed[3], dataset[3])


def test_validation_mode_repeats_the_same_pairs(sequences, processor):
    dataset = make_dataset(sequences, processor, validation=True)
    reference = dataset[4]
    dataset.set_epoch(9)
    assert_items_equal(dataset[4], reference)


# ----- crops -----
def test_exact_mode_reproduces_the_official_cropper(sequences, processor):
    dataset = make_dataset(sequences, processor, exact=True, augmentation=False)
    for index in range(6):
        sample = dataset.get_pair(index)
        assert sample.attempts == 1
        # replay the sample's draws: pair, then the search jitter
        rng = dataset.sampler.generator(index)
        pair = next(dataset.sampler.candidate_pairs(index, rng))
        assert pair == sample.pair
        table = dataset.sampler.tables[pair.source]
        boxes = table.track(pair.row).boxes_xyxy
        search_params, success = jittered_crop_params(boxes[pair.search_frame], 4.0, (112, 112), 0.25, 3.0, rng)
        assert success
        template = crop_image(
            read_image_rgb(table.frame_path(pair.row, pair.template_frame)),
            siamfc_crop_params(boxes[pair.template_frame], 2.0, (56, 56)),
            (56, 56),
        )
        search = crop_image(read_image_rgb(table.frame_path(pair.row, pair.search_frame)), search_params, (112, 112))
        assert np.array_equal(sample.template_image, template.image.permute(1, 2, 0).numpy())
        assert np.array_equal(sample.search_image, search.image.permute(1, 2, 0).numpy())
        assert np.array_equal(sample.search_params, search.params)


def test_fast_mode_matches_exact_geometry_and_stays_close_in_pixels(sequences, processor):
    fast = make_dataset(sequences, processor, augmentation=False, samples_per_epoch=30)
    exact = make_dataset(sequences, processor, augmentation=False, samples_per_epoch=30, exact=True)
    differences = []
    for index in range(30):
        a, b = fast.get_pair(index), exact.get_pair(index)
        assert a.pair == b.pair
        # the fast path aligns ROIs on the reduced grid: boxes agree to a fraction of a crop pixel
        assert np.abs(a.search_box - b.search_box).max() < 1.0
        assert np.abs(a.template_box - b.template_box).max() < 1.0
        differences += [
            np.abs(a.search_image - b.search_image).mean(),
            np.abs(a.template_image - b.template_image).mean(),
        ]
    assert np.mean(differences) < 2.0 and max(differences) < 6.0  # see test_fast_crop for the bound


def test_failed_search_crops_are_replaced_and_labels_stay_inside(sequences, processor):
    """With a translation jitter of 12 the object is often pushed out of the search crop: the pair is then
    replaced, and no returned label ever leaves the crop or shrinks below ~min_object_size."""
    dataset = make_dataset(sequences, processor, translation_jitter=12.0, samples_per_epoch=40, augmentation=False)
    attempts = []
    for index in range(40):
        sample = dataset.get_pair(index)
        attempts.append(sample.attempts)
        assert np.all(sample.search_box >= 0) and np.all(sample.search_box <= 112)
        assert np.all(sample.search_box[2:] - sample.search_box[:2] >= 9.0)
        assert dataset.to_model_inputs(sample)["positive_mask"].any()
    assert max(attempts) > 1  # some pairs were replaced
    impossible = make_dataset(sequences, processor, min_object_size=200.0)
    with pytest.raises(RuntimeError, match="No usable training pair"):
        impossible.get_pair(0)


def test_one_image_tracks_pair_the_image_with_itself(sequences, processor):
    dataset = make_dataset(sequences[1], processor, augmentation=False, samples_per_epoch=12)
    rows = set()
    for index in range(12):
        sample = dataset.get_pair(index)
        assert sample.pair.template_frame == sample.pair.search_frame == 0
        assert np.array_equal(sample.template_frame_box, sample.search_frame_box)
        rows.add(sample.pair.row)
    assert rows == {0, 1}


# ----- augmentations -----
def test_flip_moves_the_image_the_box_and_the_token_types(sequences, processor):
    plain = make_dataset(sequences, processor, augmentation=False)
    flip_only = PairAugmentation(flip_probability=1.0, brightness=0, contrast=0, saturation=0, three_augment=False)
    flipped = make_dataset(sequences, processor, augmentation=flip_only)
    for index in range(4):
        a, b = plain.get_pair(index), flipped.get_pair(index)
        assert b.augmentation.template_flipped and b.augmentation.search_flipped
        assert np.array_equal(b.template_image, a.template_image[:, ::-1])
        assert np.array_equal(b.search_image, a.search_image[:, ::-1])
        assert np.allclose(
            b.search_box, [112 - a.search_box[2], a.search_box[1], 112 - a.search_box[0], a.search_box[3]]
        )
        token_types = flipped.to_model_inputs(b)["template_token_type_ids"]
        expected = template_token_type_ids_from_boxes(
            np.array([[56 - a.template_box[2], a.template_box[1], 56 - a.template_box[0], a.template_box[3]]]),
            (4, 4),
            14,
        )[0]
        assert torch.equal(token_types, expected)


def test_horizontal_flip_on_a_hand_made_image():
    image = np.zeros((4, 10, 3), np.float32)
    image[:, 1:3] = 255  # columns 1 and 2 = box [1, 3)
    flipped, box = horizontal_flip(image, np.array([1.0, 0.0, 3.0, 4.0]))
    assert box.tolist() == [7.0, 0.0, 9.0, 4.0]
    assert np.flatnonzero(flipped[0, :, 0]).tolist() == [7, 8]


def test_color_jitter_semantics_and_ranges():
    rng = np.random.default_rng(0)
    draws = [draw_color_jitter(rng) for _ in range(400)]
    for name in ("brightness", "contrast", "saturation"):
        factors = np.array([getattr(d, name) for d in draws])
        assert factors.min() >= 0.6 and factors.max() <= 1.4
        assert factors.min() < 0.65 and factors.max() > 1.35
    assert {d.order for d in draws} == {(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)}
    assert draw_color_jitter(rng, brightness=0).brightness is None

    grey = np.full((2, 2, 3), 100.0, np.float32)
    assert np.allclose(adjust_brightness(grey, 1.3), 130.0)
    assert np.allclose(adjust_brightness(grey, 3.0), 255.0)  # clamped
    # torchvision's luma weights sum to 0.9999: a grey image is (almost) a fixed point of contrast and saturation
    assert np.allclose(adjust_contrast(grey, 0.2), 100.0, atol=0.02)
    assert np.allclose(adjust_saturation(grey, 1.4), 100.0, atol=0.02)
    two_levels = np.zeros((2, 2, 3), np.float32)
    two_levels[0] = 200.0
    contrasted = adjust_contrast(two_levels, 0.5)  # halfway to the grey mean (~99.98)
    assert np.allclose(contrasted[0], 150.0, atol=0.02) and np.allclose(contrasted[1], 50.0, atol=0.02)
    red = np.zeros((1, 1, 3), np.float32)
    red[..., 0] = 200.0
    assert np.allclose(adjust_saturation(red, 0.0), 200 * 0.2989, atol=1e-3)  # fully desaturated = luma
    out = apply_color_jitter(np.random.default_rng(1).uniform(0, 255, (8, 8, 3)).astype(np.float32), draws[0])
    assert out.min() >= 0 and out.max() <= 255 and out.dtype == np.float32


def test_three_augment_applies_exactly_one_operation():
    rng = np.random.default_rng(0)
    draws = [draw_three_augment(rng) for _ in range(600)]
    counts = {op: sum(d.operation == op for d in draws) for op in ("grayscale", "solarize", "blur")}
    assert all(150 < c < 250 for c in counts.values())
    sigmas = [d.sigma for d in draws if d.operation == "blur"]
    assert min(sigmas) >= 0.1 and max(sigmas) <= 2.0 and min(sigmas) < 0.2 and max(sigmas) > 1.9
    assert all(d.sigma is None for d in draws if d.operation != "blur")

    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    gray = apply_three_augment(image, next(d for d in draws if d.operation == "grayscale"))
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    luma = 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]
    assert np.abs(gray[..., 0] - luma).max() <= 1.0
    solarized = solarize_uint8(image)
    assert np.array_equal(solarized, np.where(image >= 128, 255 - image, image))
    step = np.zeros((9, 61, 3), np.uint8)
    step[:, 30:] = 255
    for sigma in (1.0, 2.0):  # the edge's spread is sigma (plus the pixel's own 1/12 variance)
        slope = np.diff(gaussian_blur_uint8(step, sigma)[4, :, 0].astype(float))
        spread = np.sqrt((slope * (np.arange(60) - 29.5) ** 2).sum() / slope.sum())
        assert abs(spread - np.sqrt(sigma**2 + 1 / 12)) < 0.1


def test_three_augment_is_joint_and_jitter_is_per_crop(sequences, processor):
    no_jitter = PairAugmentation(flip_probability=0.0, brightness=0, contrast=0, saturation=0)
    dataset = make_dataset(sequences, processor, augmentation=no_jitter, samples_per_epoch=30)
    seen = set()
    for index in range(30):
        sample = dataset.get_pair(index)
        operation = sample.augmentation.three_augment.operation
        seen.add(operation)
        for image in (sample.template_image, sample.search_image):
            assert np.array_equal(image, np.round(image))  # 8-bit after the 3-augment, as in the official code
            is_gray = np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
            assert is_gray == (operation == "grayscale")
    assert seen == {"grayscale", "solarize", "blur"}
    jittered = make_dataset(sequences, processor).get_pair(0).augmentation
    assert jittered.template_jitter != jittered.search_jitter


def test_bad_arguments_raise_clear_errors(sequences, processor):
    with pytest.raises(TypeError, match="LoraTrackerImageProcessor"):
        TrackingPairDataset(sequences, object())
    with pytest.raises(ValueError, match="max_reduction"):
        make_dataset(sequences, processor, max_reduction=3)
    with pytest.raises(ValueError, match="flip_probability"):
        PairAugmentation(flip_probability=1.5)
    with pytest.raises(IndexError, match="epoch, index"):
        make_dataset(sequences, processor)[(1, 2, 3)]


# ----- LoRATv2 tuplets -----
PHASE_2_REGIONS = [SearchRegion((56, 56), 4.0), SearchRegion((84, 84), 5.0)]


def test_phase_1_tuplets_are_the_pairs_with_a_list_of_search_crops(sequences, processor):
    pairs = make_dataset(sequences, processor, samples_per_epoch=12)
    tuplets = TrackingTupletDataset(
        sequences, processor, [SearchRegion((112, 112), 4.0)], samples_per_epoch=12, seed=0
    )
    assert tuplets.temporal_adaptor == "passthrough"
    for index in range(12):
        pair, tuplet = pairs[index], tuplets[index]
        assert tuple(tuplet) == MODEL_INPUT_KEYS and len(tuplet["search_pixel_values"]) == 1
        assert torch.equal(tuplet["search_pixel_values"][0], pair["search_pixel_values"])
        for key in ("template_pixel_values", "template_token_type_ids", "labels", "positive_mask"):
            assert torch.equal(tuplet[key], pair[key]), key


def test_phase_2_tuplets_crop_reference_and_tracked_frames_and_label_the_last(sequences, processor):
    dataset = TrackingTupletDataset(sequences, processor, PHASE_2_REGIONS, samples_per_epoch=24, seed=1)
    assert dataset.temporal_adaptor == "increased_difficulty"
    for index in range(24):
        sample = dataset.get_pair(index)
        assert sample.tuplet.search_frames == (sample.pair.template_frame, sample.pair.search_frame)
        assert len(sample.search_images) == 2 and sample.search_image is sample.search_images[1]
        assert [image.shape for image in sample.search_images] == [(56, 56, 3), (84, 84, 3)]
        assert len(sample.augmentation.flipped) == 3 and len(sample.augmentation.jitters) == 3
        item = dataset.to_model_inputs(sample)
        assert [tuple(t.shape) for t in item["search_pixel_values"]] == [(3, 56, 56), (3, 84, 84)]
        assert np.array_equal(item["labels"].numpy(), normalized_target_box(sample.search_boxes[1], (84, 84)))
        assert np.array_equal(
            item["positive_mask"].numpy(), positive_cells_from_box(sample.search_boxes[1], (84, 84), (6, 6))
        )
        for box, size in zip(sample.search_boxes, (56, 84), strict=True):
            assert np.all(box >= 0) and np.all(box <= size) and np.all(box[2:] > box[:2])
    assert_items_equal_nested(
        dataset[5], TrackingTupletDataset(sequences, processor, PHASE_2_REGIONS, samples_per_epoch=24, seed=1)[5]
    )

    batch = collate_pairs([dataset[i] for i in range(3)])
    assert [tuple(t.shape) for t in batch["search_pixel_values"]] == [(3, 3, 56, 56), (3, 3, 84, 84)]
    assert batch["labels"].shape == (3, 4) and batch["positive_mask"].shape == (3, 6, 6)


def test_phase_2_reference_region_uses_its_own_context(sequences, processor):
    """Without jitter, region 0 is the context-4 crop of the reference frame, region 1 the context-5 crop."""
    dataset = TrackingTupletDataset(
        sequences, processor, PHASE_2_REGIONS, scale_jitter=0.0, translation_jitter=0.0, augmentation=False
    )
    sample = dataset.get_pair(0)
    for params, box, region in zip(sample.search_crop_params, sample.search_frame_boxes, PHASE_2_REGIONS, strict=True):
        expected = siamfc_crop_params(box, region.area_factor, region.size_wh)
        assert np.allclose(params[0], expected[0], rtol=0.02)


def test_tuplet_geometry_comes_from_a_loratv2_style_config():
    from types import SimpleNamespace

    config = SimpleNamespace(search_sizes_wh=[(224, 224), (378, 378)], search_area_factors=[4.0, 5.0])
    assert search_regions_from_config(config) == [SearchRegion((224, 224), 4.0), SearchRegion((378, 378), 5.0)]


def test_tuplet_options_fail_clearly(sequences, processor):
    with pytest.raises(ValueError, match="yields 1 search frame.*use 'increased_difficulty'"):
        TrackingTupletDataset(sequences, processor, PHASE_2_REGIONS, temporal_adaptor="passthrough")
    with pytest.raises(ValueError, match="No temporal sampling recipe for 4 search regions"):
        TrackingTupletDataset(sequences, processor, PHASE_2_REGIONS * 2)
    with pytest.raises(ValueError, match="at least one search region"):
        TrackingTupletDataset(sequences, processor, [])


def assert_items_equal_nested(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key in first:
        a, b = first[key], second[key]
        if isinstance(a, list):
            assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True)), key
        else:
            assert torch.equal(a, b), key
