"""Training-pair sampler: frame-pair rules, per-epoch schedule, dataset weights, determinism, resume state."""

from __future__ import annotations

import pickle

import datasets
import numpy as np
import pytest

from lorat_hf.data.sampling import (
    SampledPair,
    SequenceTable,
    TrackingPairSampler,
    adapt_pair,
    sample_frame_pair,
    sample_generator,
    temporal_adaptor_for,
)
from lorat_hf.data.sequences import SEQUENCE_FEATURES


def make_row(name: str, visible, dataset: str = "toy", paths=None, box=(10.0, 10.0, 50.0, 40.0)) -> dict:
    """A schema row with fake frame paths (the sampler never opens frames)."""
    visible = [bool(v) for v in visible]
    boxes = [list(box) if v else [float("nan")] * 4 for v in visible]
    return {
        "dataset": dataset,
        "name": name,
        "frame_paths": paths or [f"/frames/{dataset}/{name}/{i:08d}.jpg" for i in range(len(visible))],
        "groundtruth_xywh": [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in boxes],
        "boxes_xyxy": boxes,
        "visible": visible,
        "image_width": 640,
        "image_height": 480,
        "coordinate_offset": 0.0,
        "extra": "{}",
    }


def make_table(rows) -> datasets.Dataset:
    return datasets.Dataset.from_list(rows, features=SEQUENCE_FEATURES)


def toy_dataset(num_sequences: int, length: int = 30, dataset: str = "toy") -> datasets.Dataset:
    return make_table([make_row(f"{dataset}-{i}", [True] * length, dataset) for i in range(num_sequences)])


# ----- frame pairs -----
def test_frame_pairs_respect_gap_visibility_and_distinct_frames():
    rng = np.random.default_rng(0)
    valid = rng.random(400) < 0.6
    for _ in range(500):
        template, search = sample_frame_pair(valid, 7, rng)
        assert valid[template] and valid[search]
        assert template != search and abs(template - search) <= 7


def test_frame_pairs_cover_the_whole_window_in_both_directions():
    rng = np.random.default_rng(1)
    gaps = {
        search - template for template, search in (sample_frame_pair(np.ones(50, bool), 3, rng) for _ in range(600))
    }
    assert gaps == {-3, -2, -1, 1, 2, 3}


def test_frame_pair_special_cases():
    rng = np.random.default_rng(2)
    assert sample_frame_pair(np.array([True]), 100, rng) == (0, 0)  # one image (COCO): both crops from it
    assert sample_frame_pair(np.array([False]), 100, rng) is None
    assert sample_frame_pair(np.zeros(10, bool), 100, rng) is None
    lonely = np.zeros(10, bool)
    lonely[4] = True
    assert sample_frame_pair(lonely, 100, rng) is None  # a single visible frame in a video has no pair
    isolated = np.zeros(300, bool)
    isolated[[0, 150]] = True
    assert sample_frame_pair(isolated, 100, rng) is None
    # frames 0 and 150 are isolated, 260 and 290 pair up: only the latter are ever drawn
    isolated[[260, 290]] = True
    pairs = {sample_frame_pair(isolated, 100, rng) for _ in range(100)}
    assert pairs == {(260, 290), (290, 260)}


def test_official_same_frame_fallback():
    rng = np.random.default_rng(3)
    isolated = np.zeros(300, bool)
    isolated[[0, 150]] = True
    pairs = {sample_frame_pair(isolated, 100, rng, same_frame_fallback=True) for _ in range(50)}
    assert pairs == {(0, 0), (150, 150)}


# ----- schedule and weights -----
def test_epoch_quotas_follow_weights_exactly():
    sampler = TrackingPairSampler(
        [toy_dataset(5), toy_dataset(3, dataset="b")], weights=[3, 1], samples_per_epoch=1001
    )
    sources, _ = sampler.schedule()
    assert np.bincount(sources).tolist() == [750, 251]  # floor(w * n), the last dataset takes the remainder
    equal = TrackingPairSampler(
        [toy_dataset(5), toy_dataset(3, dataset="b"), toy_dataset(2, dataset="c")], samples_per_epoch=12
    )
    assert np.bincount(equal.schedule()[0]).tolist() == [4, 4, 4]  # 1:1:1 by default


def test_sequences_cycle_without_replacement_within_an_epoch():
    sampler = TrackingPairSampler([toy_dataset(7), toy_dataset(4, dataset="b")], samples_per_epoch=40)
    sources, sequences = sampler.schedule(epoch=0)
    for source, count in ((0, 7), (1, 4)):
        used = np.bincount(sequences[sources == source], minlength=count)
        assert used.max() - used.min() <= 1 and used.sum() == 20  # every sequence before any repeats
    assert not np.array_equal(sampler.schedule(epoch=1)[1], sequences)  # reshuffled every epoch
    assert np.array_equal(
        TrackingPairSampler([toy_dataset(7), toy_dataset(4, dataset="b")], samples_per_epoch=40).schedule(epoch=0)[1],
        sequences,
    )


def test_replacement_draws_follow_dataset_weights():
    sampler = TrackingPairSampler([toy_dataset(5), toy_dataset(5, dataset="b")], weights=[3, 1], samples_per_epoch=8)
    rng = np.random.default_rng(0)
    draws = np.array([sampler.random_sequence(rng)[0] for _ in range(4000)])
    assert abs((draws == 0).mean() - 0.75) < 0.03


# ----- determinism -----
def test_samples_are_a_function_of_seed_epoch_and_index():
    data = [toy_dataset(6), toy_dataset(4, dataset="b")]
    first = TrackingPairSampler(data, samples_per_epoch=64, seed=5)
    second = TrackingPairSampler(data, samples_per_epoch=64, seed=5)
    pairs = [first.sample(i) for i in range(64)]
    assert [second.sample(i) for i in reversed(range(64))] == pairs[::-1]  # any order, any process
    assert [first.sample(i, epoch=1) for i in range(64)] != pairs
    assert [TrackingPairSampler(data, samples_per_epoch=64, seed=6).sample(i) for i in range(64)] != pairs
    generator = first.generator(3, epoch=2)
    assert generator.random() == sample_generator(5, 2, 3).random()


def test_sampler_pickles_for_spawned_workers():
    sampler = TrackingPairSampler([toy_dataset(6), toy_dataset(3, dataset="b")], samples_per_epoch=32, seed=2)
    sampler.sample(0)  # caches Arrow columns and the schedule, which must not travel
    clone = pickle.loads(pickle.dumps(sampler))
    assert clone.tables[0]._columns is None and clone._schedule_cache == {}
    assert [clone.sample(i) for i in range(32)] == [sampler.sample(i) for i in range(32)]


def test_validation_mode_gives_fixed_pairs_every_epoch():
    sampler = TrackingPairSampler(toy_dataset(6), samples_per_epoch=32, validation=True)
    pairs = [sampler.sample(i) for i in range(32)]
    sampler.set_epoch(7)
    assert [sampler.sample(i) for i in range(32)] == pairs


def test_state_dict_round_trip_and_mismatch():
    data = toy_dataset(6)
    sampler = TrackingPairSampler(data, samples_per_epoch=16, seed=1)
    sampler.set_epoch(3)
    resumed = TrackingPairSampler(data, samples_per_epoch=16, seed=1)
    resumed.load_state_dict(sampler.state_dict())
    assert resumed.epoch == 3 and resumed.sample(5) == sampler.sample(5)
    with pytest.raises(ValueError, match="seed"):
        TrackingPairSampler(data, samples_per_epoch=16, seed=2).load_state_dict(sampler.state_dict())


# ----- tracks, groups and invalid sequences -----
def test_pairs_respect_gap_and_visibility_through_the_sampler():
    rng = np.random.default_rng(4)
    rows = [make_row(f"s{i}", rng.random(250) < 0.5) for i in range(4)]
    sampler = TrackingPairSampler(make_table(rows), samples_per_epoch=200, max_gap=10)
    for index in range(200):
        pair = sampler.sample(index)
        visible = np.array(rows[pair.row]["visible"])
        assert visible[pair.template_frame] and visible[pair.search_frame]
        assert 0 < abs(pair.template_frame - pair.search_frame) <= 10


def test_sequences_without_a_pair_are_replaced():
    table = make_table(
        [
            make_row("empty", [False] * 20),
            make_row("lonely", [False] * 5 + [True] + [False] * 5),
            make_row("good", [True] * 20),
        ]
    )
    sampler = TrackingPairSampler(table, samples_per_epoch=30)
    assert {sampler.sample(i).row for i in range(30)} == {2}
    unusable = TrackingPairSampler(make_table([make_row("empty", [False] * 20)]), samples_per_epoch=2)
    with pytest.raises(RuntimeError, match="No usable training pair"):
        unusable.sample(0)


def test_tracks_of_one_image_form_one_sequence():
    image = ["/frames/coco/000001.jpg"]
    rows = [make_row(f"1_{k}", [True], "coco", paths=image) for k in range(3)]
    rows.append(make_row("2_1", [True], "coco", paths=["/frames/coco/000002.jpg"]))
    sampler = TrackingPairSampler(make_table(rows), samples_per_epoch=200)
    assert sampler.num_sequences(0) == 2  # two images, four objects
    pairs = [sampler.sample(i) for i in range(200)]
    assert all(p.template_frame == p.search_frame == 0 for p in pairs)
    rows_drawn = np.bincount([p.row for p in pairs], minlength=4)
    assert rows_drawn[3] == 100  # the image with one object gets half of the samples, not a quarter
    assert all(rows_drawn[:3] > 15)
    ungrouped = TrackingPairSampler(make_table(rows), samples_per_epoch=8, group_tracks=False)
    assert ungrouped.num_sequences(0) == 4


def test_selected_rows_are_read_through_the_indices_mapping():
    table = make_table([make_row("a", [True] * 4), make_row("b", [False, True, True, False]), make_row("c", [True])])
    selected = SequenceTable(table.select([1, 0]))
    assert len(selected) == 2
    assert selected.track(0).name == "b" and selected.track(0).valid.tolist() == [False, True, True, False]
    assert selected.frame_path(1, 3) == "/frames/toy/a/00000003.jpg"
    assert selected.track(1).boxes_xyxy.shape == (4, 4)
    assert np.isnan(selected.track(0).boxes_xyxy[0]).all()


def test_clear_errors_for_bad_input():
    with pytest.raises(ValueError, match="lacks the column"):
        SequenceTable(toy_dataset(2).remove_columns("visible"))
    with pytest.raises(ValueError, match="empty"):
        SequenceTable(toy_dataset(2).select([]))
    with pytest.raises(TypeError, match="datasets.Dataset"):
        SequenceTable([make_row("a", [True])])
    with pytest.raises(ValueError, match="has no frames"):
        SequenceTable(make_table([make_row("a", [True]), make_row("b", [])]))
    with pytest.raises(ValueError, match="weights"):
        TrackingPairSampler([toy_dataset(2), toy_dataset(2)], weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        TrackingPairSampler(toy_dataset(2), weights=[-1.0])
    with pytest.raises(IndexError, match="out of range"):
        TrackingPairSampler(toy_dataset(2), samples_per_epoch=4).sample(4)


# ----- LoRATv2 temporal tuplets -----
def test_passthrough_keeps_the_pair_and_draws_nothing():
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    tuplet = adapt_pair(SampledPair(1, 2, 40, 75), np.ones(300, bool), "passthrough", rng)
    assert (tuplet.source, tuplet.row, tuplet.template_frame, tuplet.search_frames) == (1, 2, 40, (75,))
    assert rng.bit_generator.state == state  # phase-1 samples stay exactly the LoRAT pairs


def test_increased_difficulty_moves_the_pair_to_the_search_regions_and_draws_a_far_template():
    """Phase 2: reference = the pair's template frame, tracked = its search frame, and a new template from any visible
    frame of the whole track (no max-gap limit), never an invisible one."""
    valid = np.ones(1000, bool)
    valid[500:600] = False
    rng = np.random.default_rng(0)
    pair = SampledPair(0, 3, 100, 150)
    templates = []
    for _ in range(2000):
        tuplet = adapt_pair(pair, valid, "increased_difficulty", rng)
        assert (tuplet.source, tuplet.row, tuplet.search_frames) == (0, 3, (100, 150))
        templates.append(tuplet.template_frame)
    templates = np.array(templates)
    assert valid[templates].all()
    assert templates.min() < 20 and templates.max() > 980  # the whole track, far beyond the 100-frame gap
    assert 0.3 < np.mean(np.abs(templates - 150) > 100) < 1.0
    # a track without visible frames keeps the pair's template frame
    none_visible = adapt_pair(pair, np.zeros(1000, bool), "increased_difficulty", rng)
    assert none_visible.template_frame == 100 and none_visible.search_frames == (100, 150)


def test_the_phase_decides_the_adaptor_and_bad_names_fail_clearly():
    assert temporal_adaptor_for(1) == "passthrough" and temporal_adaptor_for(2) == "increased_difficulty"
    with pytest.raises(ValueError, match="3 search regions"):
        temporal_adaptor_for(3)
    with pytest.raises(ValueError, match="Unknown temporal adaptor 'harder'"):
        adapt_pair(SampledPair(0, 0, 1, 2), np.ones(5, bool), "harder", np.random.default_rng(0))
