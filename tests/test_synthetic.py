"""Synthetic tracking videos: determinism, exact ground truth from the rendering, layout round trips."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from lorat_hf.data import (
    SyntheticVideo,
    SyntheticVideoConfig,
    TrackingSequence,
    generate_sequence,
    load_sequences,
    read_synthetic_annotations,
    synthetic_sequences_dataset,
    write_generic_layout,
    write_lasot_layout,
)
from lorat_hf.data.synthetic.drawing import Layer

SMALL = dict(frame_size=(96, 72), num_frames=24, keyframe_interval=6)


def pixel_extent(box, width, height):
    return (
        max(math.floor(box[0]), 0),
        max(math.floor(box[1]), 0),
        min(math.ceil(box[2]), width),
        min(math.ceil(box[3]), height),
    )


def mask_extent(mask):
    rows, cols = np.nonzero(mask > 0)
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def test_same_seed_same_video_other_seed_differs():
    config = SyntheticVideoConfig(**SMALL)
    first, again, other = generate_sequence(config, 3), generate_sequence(config, 3), generate_sequence(config, 4)
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.boxes_xyxy, again.boxes_xyxy)
    assert first.frames.shape == (24, 72, 96, 3) and first.frames.dtype == np.uint8
    assert not np.array_equal(first.frames, other.frames)
    assert not np.allclose(first.boxes_xyxy[0], other.boxes_xyxy[0])
    video = SyntheticVideo(config, 3)  # frames rendered in any order are the same
    np.testing.assert_array_equal(video.render_frame(17), first.frames[17])
    np.testing.assert_array_equal(video.render_frame(2), first.frames[2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxes_and_flags_are_exact_from_the_rendering(seed):
    config = SyntheticVideoConfig(
        **SMALL,
        occlusion_prob=1.0,
        max_occlusions=2,
        out_of_view_prob=1.0,
        num_distractors=(1, 1),
        rounded_corner_prob=float(seed % 2),
    )
    video = SyntheticVideo(config, seed)
    sequence = generate_sequence(config, seed, return_masks=True)
    width, height = config.frame_size
    box_area = np.prod(video.target.boxes[:, 2:] - video.target.boxes[:, :2], axis=1)
    if video.target.corner == 0:
        np.testing.assert_allclose(video.target_area, box_area, rtol=1e-6)  # float32 coverage
    else:  # rounded corners remove at most the (4 - pi) r^2 corner area plus the pixels along their arcs
        radius = video.target.corner * np.min(video.target.boxes[:, 2:] - video.target.boxes[:, :2], axis=1)
        assert np.all(video.target_area < box_area)
        assert np.all(video.target_area > box_area - (4 - np.pi) * radius**2 - 8 * radius - 4)
    full_area = video.target_area
    for t in range(config.num_frames):
        mask, box = sequence.target_masks[t], sequence.boxes_xyxy[t]
        if np.all(np.isnan(box)):
            assert not mask.any() and sequence.out_of_view[t] and not sequence.visible[t]
            continue
        assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height
        assert mask_extent(mask) == pixel_extent(box, width, height)  # the box is the rendered extent
        if config.rounded_corner_prob == 0:  # analytic area coverage: the mask integrates to the clipped area
            assert mask.sum(dtype=np.float64) == pytest.approx((box[2] - box[0]) * (box[3] - box[1]), rel=1e-5)
        unoccluded = (mask * video.occlusion_transmittance(t)).sum(dtype=np.float64) / full_area[t]
        assert sequence.visible_fraction[t] == pytest.approx(unoccluded, rel=1e-5, abs=1e-9)
        in_frame = (box[2] - box[0]) * (box[3] - box[1]) / box_area[t]
        assert sequence.out_of_view[t] == (in_frame < config.min_visible_fraction)
        assert sequence.full_occlusion[t] == (not sequence.out_of_view[t] and unoccluded < config.min_visible_fraction)
        assert sequence.visible[t] == (not sequence.out_of_view[t] and not sequence.full_occlusion[t])


def test_mask_matches_the_pixels_the_target_changes():
    config = SyntheticVideoConfig(
        **SMALL,
        noise_std=0.0,
        illumination_change=0.0,
        motion_blur_prob=0.0,
        occlusion_prob=1.0,
        full_occlusion_ratio=0.0,
    )
    video = SyntheticVideo(config, 5)
    frames = [video.render_frame(t, return_mask=True) for t in range(0, 24, 4)]
    away = video.target.boxes + [1000.0, 1000.0, 1000.0, 1000.0]
    video.target = Layer(video.target.texture, away, corner=video.target.corner)
    for index, t in enumerate(range(0, 24, 4)):
        frame, mask = frames[index]
        visible = mask * video.occlusion_transmittance(t)
        changed = np.any(frame != video.render_frame(t), axis=-1)
        assert not np.any(changed & (visible == 0))  # nothing outside the target's visible coverage changes
        assert changed[visible > 0.999].mean() > 0.9  # and the covered pixels do show the target


def test_events_happen_and_frame_zero_is_visible():
    hard = SyntheticVideoConfig(
        frame_size=(96, 72),
        num_frames=60,
        occlusion_prob=1.0,
        full_occlusion_ratio=1.0,
        max_occlusions=2,
        out_of_view_prob=1.0,
        keyframe_interval=8,
    )
    out_of_view = occluded = 0
    for seed in range(8):
        sequence = SyntheticVideo(hard, seed)
        assert sequence.visible[0] and sequence.visible_fraction[0] > 0.99
        out_of_view += int(sequence.out_of_view.any())
        occluded += int(sequence.full_occlusion.any())
        assert not sequence.visible[sequence.visible_fraction == 0].any()
    assert out_of_view >= 4 and occluded >= 4
    easy = SyntheticVideoConfig.preset("easy", **SMALL)
    assert all(SyntheticVideo(easy, seed).visible.all() for seed in range(4))


def test_config_validation_presets_and_round_trip():
    with pytest.raises(ValueError, match="frame_size must be"):
        SyntheticVideoConfig(frame_size=(16, 100))
    with pytest.raises(ValueError, match="occlusion_prob is a probability"):
        SyntheticVideoConfig(occlusion_prob=1.5)
    with pytest.raises(ValueError, match="num_distractors must be a"):
        SyntheticVideoConfig(num_distractors=(3, 1))
    with pytest.raises(ValueError, match="Unknown preset 'extreme'"):
        SyntheticVideoConfig.preset("extreme")
    config = SyntheticVideoConfig.preset("hard", num_frames=7)
    assert config.num_frames == 7 and config.out_of_view_prob > SyntheticVideoConfig().out_of_view_prob
    assert SyntheticVideoConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="Unknown SyntheticVideoConfig fields"):
        SyntheticVideoConfig.from_dict({"speeed": 1})


def test_lasot_layout_round_trip_and_resume(tmp_path):
    config = SyntheticVideoConfig(**SMALL, out_of_view_prob=1.0, occlusion_prob=1.0)
    root = tmp_path / "synthetic_lasot"
    names = write_lasot_layout(root, 3, config, seed=1, split="test")
    assert len(set(names)) == 3 and (root / "testing_set.txt").read_text().split() == names
    assert (root / "training_set.txt").read_text() == ""
    ds = load_sequences("lasot", root, split="test", cache_dir=tmp_path / "cache", progress=False)
    assert ds["name"] == names
    for row in ds:
        sequence = TrackingSequence.from_row(row)
        folder = root / row["name"].rsplit("-", 1)[0] / row["name"]
        exact = read_synthetic_annotations(folder)
        assert sequence.extra["class"] == exact["target_pattern"] and sequence.extra["nlp"] == exact["description"]
        np.testing.assert_array_equal(sequence.visible, exact["visible"])
        np.testing.assert_array_equal(np.asarray(sequence.extra["out_of_view"], bool), exact["out_of_view"])
        for loaded, box in zip(sequence.boxes_xyxy, exact["boxes_xyxy"], strict=True):
            if np.all(np.isnan(box)):
                assert np.all(np.isnan(loaded))
            else:  # LaSOT files hold the covered pixel extent (1-based); the reader shifts it back
                assert tuple(loaded) == pixel_extent(box, 96, 72)
        assert sequence.frame(0).shape == (72, 96, 3)

    stamp = (root / names[0].rsplit("-", 1)[0] / names[0] / "groundtruth.txt").stat().st_mtime_ns
    assert write_lasot_layout(root, 3, config, seed=1, split="test") == names  # resumed: nothing rewritten
    assert (root / names[0].rsplit("-", 1)[0] / names[0] / "groundtruth.txt").stat().st_mtime_ns == stamp
    train = write_lasot_layout(root, 2, config, seed=2, split="train")
    assert not set(train) & set(names) and (root / "training_set.txt").read_text().split() == train
    assert (root / "testing_set.txt").read_text().split() == names
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        write_lasot_layout(root, 1, config, split="val")


def test_interrupted_sequence_is_rewritten(tmp_path):
    config = SyntheticVideoConfig(**SMALL)
    names = write_generic_layout(tmp_path / "gen", 2, config, seed=0, image_format="png")
    victim = tmp_path / "gen" / names[1]
    reference = (victim / "groundtruth.txt").read_text()
    for path in sorted(victim.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    victim.rmdir()
    assert write_generic_layout(tmp_path / "gen", 2, config, seed=0, image_format="png") == names
    assert (victim / "groundtruth.txt").read_text() == reference


def test_generic_dataset_has_exact_boxes(tmp_path):
    config = SyntheticVideoConfig(**SMALL, out_of_view_prob=1.0)
    ds = synthetic_sequences_dataset(tmp_path / "gen", 2, config, seed=7, cache_dir=tmp_path / "cache")
    assert len(ds) == 2 and set(ds["dataset"]) == {"generic"}
    for seed_index, row in enumerate(ds):
        sequence = TrackingSequence.from_row(row)
        exact = read_synthetic_annotations(tmp_path / "gen" / row["name"])
        assert exact["index"] == seed_index
        np.testing.assert_allclose(sequence.boxes_xyxy, exact["boxes_xyxy"], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(sequence.visible, exact["visible"])
        reference = generate_sequence(config, exact["seed"])
        np.testing.assert_allclose(reference.boxes_xyxy, exact["boxes_xyxy"], atol=0)
        decoded = sequence.frame(3).astype(int)  # the JPEG of the same frame, not of another one
        assert np.abs(decoded - reference.frames[3]).mean() < 0.5 * np.abs(decoded - reference.frames[12]).mean()


def folder_digest(root) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# Written files are pinned byte for byte: the embedded demo and published synthetic benchmarks rely on a seed giving
# the same folder. The digests hold for the OpenCV build of this environment (its JPEG / PNG encoders).
PINNED_LAYOUT_DIGESTS = {
    "lasot-train": "d1c307e451daf8bca64410a2ca0c8f4c08c3ec1fb795f337050af270eda96926",
    "lasot-test": "855d6ccc221c78b5b57d41de0527bb7196b40e887add86ec9e52521463313178",
    "generic-jpg": "3f00d2210c9c73b91625d495f83a816f1e251745a250a8860d9a3b6e5c122113",
    "generic-png": "e5a82bc94278d3c6acca6351d53bbeb3dcb1c3914d2cd2d640707559fad7d566",
}


@pytest.mark.parametrize("layout", sorted(PINNED_LAYOUT_DIGESTS))
def test_layout_writers_write_pinned_bytes(tmp_path, layout):
    config = SyntheticVideoConfig(frame_size=(48, 32), num_frames=3, keyframe_interval=2)
    kind, variant = layout.split("-")
    if kind == "lasot":
        names = write_lasot_layout(tmp_path, 2, config, seed=5, split=variant)
    else:
        names = write_generic_layout(tmp_path, 2, config, seed=5, image_format=variant)
    assert len(names) == 2
    assert folder_digest(tmp_path) == PINNED_LAYOUT_DIGESTS[layout]
