"""Benchmark readers, the sequence schema, the Arrow cache and saved/Hub-style loading, on tiny real-layout folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
from data_factories import (
    make_coco,
    make_generic,
    make_got10k,
    make_lasot,
    make_lasot_ext,
    make_tnl2k,
    make_trackingnet,
)

from lorat_hf.data import (
    SEQUENCE_FEATURES,
    TrackingSequence,
    available_datasets,
    default_cache_dir,
    load_sequences,
    load_sequences_from,
    trim_unannotated,
    trim_unannotated_sequences,
)
from lorat_hf.data.readers import _parsing
from lorat_hf.data.readers import got10k as got10k_module
from lorat_hf.data.readers import lasot as lasot_module


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def load(dataset, root, cache, split=None, **kwargs):
    return load_sequences(dataset, root, split=split, cache_dir=cache, progress=False, **kwargs)


def by_name(ds):
    return {row["name"]: TrackingSequence.from_row(row) for row in ds}


# --------------------------------------------------------------------------------------------------------------------
# Schema and registry
# --------------------------------------------------------------------------------------------------------------------


def test_available_datasets_and_features(tmp_path, cache):
    assert set(available_datasets()) == {"lasot", "lasot_ext", "got10k", "trackingnet", "tnl2k", "coco", "generic"}
    make_generic(tmp_path / "gen", names=("a",))
    ds = load("generic", tmp_path / "gen", cache)
    assert ds.features == SEQUENCE_FEATURES
    assert list(ds.column_names) == list(SEQUENCE_FEATURES)
    with pytest.raises(ValueError, match="Unknown dataset 'lasot2'.*available: coco, generic"):
        load("lasot2", tmp_path / "gen", cache)


def test_tracking_sequence_round_trip_and_frame_decoding(tmp_path, cache):
    truth = make_generic(tmp_path / "gen", names=("a",), num_frames=3, size_wh=(40, 30))
    row = load("generic", tmp_path / "gen", cache)[0]
    sequence = TrackingSequence.from_row(row)
    assert sequence.boxes_xyxy.shape == (3, 4) and sequence.visible.dtype == bool and len(sequence) == 3
    assert sequence.to_row() == row
    frame = sequence.frame(1)
    assert frame.shape == (30, 40, 3) and frame.dtype == np.uint8
    assert sequence.frame_paths == [str(p) for p in truth["a"].frame_paths]


# --------------------------------------------------------------------------------------------------------------------
# LaSOT / LaSOT_ext
# --------------------------------------------------------------------------------------------------------------------


def test_lasot_values_shift_flags_and_cleaning(tmp_path, cache):
    root = tmp_path / "LaSOT"
    boxes = {"airplane-1": np.array([[1, 1, 10, 8], [40, 30, 20, 20], [0, 0, 0, 0], [5, 6, 7, 8], [3, 3, 4, 4]])}
    truth = make_lasot(
        root,
        names=("airplane-1", "bear-1"),
        size_wh=(48, 36),
        boxes=boxes,
        extra_images=2,
        full_occlusion={"airplane-1": [0, 0, 1, 0, 0]},
        out_of_view={"airplane-1": [0, 0, 0, 1, 0]},
        testing_set=["airplane-1", "bear-1"],
    )
    rows = by_name(load("lasot", root, cache, split="test"))
    seq = rows["airplane-1"]
    assert seq.dataset == "lasot" and seq.coordinate_offset == 1.0 and seq.image_size_wh == (48, 36)
    np.testing.assert_array_equal(seq.groundtruth_xywh, boxes["airplane-1"])  # exactly as shipped (1-based)
    np.testing.assert_array_equal(seq.boxes_xyxy[0], [0, 0, 10, 8])  # x - 1, y - 1 (official shift)
    np.testing.assert_array_equal(seq.boxes_xyxy[1], [39, 29, 48, 36])  # fitted to the 48x36 image
    assert np.all(np.isnan(seq.boxes_xyxy[2]))  # 0,0,0,0 -> no box
    np.testing.assert_array_equal(seq.boxes_xyxy[3], [4, 5, 11, 13])  # kept although out of view
    assert seq.visible.tolist() == [True, True, False, False, True]
    assert len(seq) == 5  # frames from the annotation length; the 2 extra images are ignored
    assert seq.frame_paths == [str(p) for p in truth["airplane-1"].frame_paths]
    assert seq.extra["full_occlusion"] == [0, 0, 1, 0, 0] and seq.extra["out_of_view"] == [0, 0, 0, 1, 0]
    assert seq.extra["class"] == "airplane" and seq.extra["nlp"] == "the airplane in sequence airplane-1"


def test_lasot_split_list_files_and_all(tmp_path, cache):
    root = tmp_path / "LaSOT"
    make_lasot(root, names=("cat-1", "cat-2", "dog-10"), testing_set=["dog-10", "cat-2"], training_set=["cat-1"])
    assert load("lasot", root, cache)["name"] == ["dog-10", "cat-2"]  # default split = test, file order
    assert load("lasot", root, cache, split="train")["name"] == ["cat-1"]
    assert sorted(load("lasot", root, cache, split="all")["name"]) == ["cat-1", "cat-2", "dog-10"]
    with pytest.raises(ValueError, match="Unknown lasot split 'val'"):
        load("lasot", root, cache, split="val")


def test_lasot_falls_back_to_the_official_lists(tmp_path, cache, monkeypatch):
    root = tmp_path / "LaSOT"
    make_lasot(root, names=("airplane-1", "airplane-9"), flat=True)
    with pytest.raises(FileNotFoundError, match=r"278 of the 280 sequences of the LaSOT test split \(the official"):
        load("lasot", root, cache)
    original = _parsing.read_split_list
    monkeypatch.setattr(
        lasot_module,
        "read_split_list",
        lambda name: ["airplane-9", "airplane-1"] if name == "lasot_test.txt" else original(name),
    )
    ds = load("lasot", root, cache)
    assert ds["name"] == ["airplane-9", "airplane-1"]  # flat <root>/<name>/ layout accepted


def test_shipped_split_lists():
    test, train = _parsing.read_split_list("lasot_test.txt"), _parsing.read_split_list("lasot_train.txt")
    assert len(test) == len(set(test)) == 280 and len(train) == len(set(train)) == 1120 and not set(test) & set(train)
    classes = {name.rsplit("-", 1)[0] for name in test}
    assert len(classes) == 70 and all(sum(n.rsplit("-", 1)[0] == c for n in test) == 4 for c in classes)
    vot_train, vot_val = got10k_module.load_vot_split_names("vot_train"), got10k_module.load_vot_split_names("vot_val")
    assert len(set(vot_train)) == 7086 and len(set(vot_val)) == 1249 and not set(vot_train) & set(vot_val)
    numbers = [int(name.rsplit("_", 1)[1]) for name in vot_train + vot_val]
    assert min(numbers) >= 1 and max(numbers) <= 9335


def test_lasot_ext_reads_every_sequence_folder_unshifted(tmp_path, cache):
    root = tmp_path / "LaSOT_ext"
    truth = make_lasot_ext(root, names=("atv-2", "atv-10", "atv-1", "wingsuit-3"))
    (root / "atv" / "notes").mkdir()  # not a <class>-<k> folder: ignored
    ds = load("lasot_ext", root, cache)
    assert ds["name"] == ["atv-1", "atv-2", "atv-10", "wingsuit-3"]
    seq = by_name(ds)["atv-1"]
    assert seq.coordinate_offset == 0.0
    gt = truth["atv-1"].groundtruth_xywh
    np.testing.assert_allclose(seq.boxes_xyxy, np.concatenate([gt[:, :2], gt[:, :2] + gt[:, 2:]], axis=1))


# --------------------------------------------------------------------------------------------------------------------
# GOT-10k
# --------------------------------------------------------------------------------------------------------------------


def test_got10k_visibility_from_cover_and_absence(tmp_path, cache):
    root = tmp_path / "GOT-10k"
    truth = make_got10k(
        root,
        "val",
        num_frames=5,
        cover={"GOT-10k_Val_000001": [8, 0, 3, 8, 1]},
        absence={"GOT-10k_Val_000001": [0, 0, 0, 1, 0]},
    )
    seq = by_name(load("got10k", root, cache, split="val"))["GOT-10k_Val_000001"]
    assert seq.visible.tolist() == [True, False, True, False, True]
    np.testing.assert_array_equal(seq.groundtruth_xywh, truth["GOT-10k_Val_000001"].groundtruth_xywh)
    assert seq.extra["cover"] == [8, 0, 3, 8, 1] and seq.extra["absence"] == [0, 0, 0, 1, 0]
    assert seq.extra["cut_by_image"] == [0] * 5 and seq.extra["meta_info"]["resolution"] == "(48, 36)"
    assert seq.coordinate_offset == 0.0


def test_got10k_test_split_keeps_first_box_and_nan_rows(tmp_path, cache):
    root = tmp_path / "GOT-10k"
    truth = make_got10k(root, "test", num_frames=4, write_meta=False)
    seq = by_name(load("got10k", root, cache))["GOT-10k_Test_000001"]  # default split = test
    assert len(seq) == 4 and seq.visible.tolist() == [True, False, False, False]
    np.testing.assert_array_equal(seq.groundtruth_xywh[0], truth["GOT-10k_Test_000001"].groundtruth_xywh[0])
    assert np.all(np.isnan(seq.groundtruth_xywh[1:])) and np.all(np.isnan(seq.boxes_xyxy[1:]))
    assert seq.image_size_wh == (48, 36)  # no meta_info.ini: from the first frame's header


def test_got10k_frame_size_from_meta_info(tmp_path, cache):
    root = tmp_path / "GOT-10k"
    make_got10k(root, "val", names=["GOT-10k_Val_000007"])
    meta = root / "val" / "GOT-10k_Val_000007" / "meta_info.ini"
    meta.write_text(meta.read_text().replace("resolution: (48, 36)", "resolution: (1920, 1080)"))
    assert load("got10k", root, cache, split="val")[0]["image_width"] == 1920


def test_got10k_vot_splits_filter_the_train_list(tmp_path, cache, monkeypatch):
    root = tmp_path / "GOT-10k"
    make_got10k(root, "train", names=[f"GOT-10k_Train_{i:06d}" for i in (1, 2, 3)])
    monkeypatch.setattr(
        got10k_module, "load_vot_split_names", lambda split: ["GOT-10k_Train_000003", "GOT-10k_Train_000001"]
    )
    assert load("got10k", root, cache, split="vot_train")["name"] == ["GOT-10k_Train_000003", "GOT-10k_Train_000001"]
    monkeypatch.setattr(got10k_module, "load_vot_split_names", lambda split: ["GOT-10k_Train_000009"])
    with pytest.raises(FileNotFoundError, match="vot_val split needs 1 train sequences.*GOT-10k_Train_000009"):
        load("got10k", root, cache, split="vot_val")


# --------------------------------------------------------------------------------------------------------------------
# TrackingNet
# --------------------------------------------------------------------------------------------------------------------


def test_trackingnet_chunks_and_numeric_frame_order(tmp_path, cache):
    root = tmp_path / "TrackingNet"
    truth = make_trackingnet(root, num_frames=12)
    train = load("trackingnet", root, cache, split="train")
    assert train["name"] == ["-3TIfnTSM6c_2", "a1b2c3_0", "zz9_1"]
    seq = by_name(train)["a1b2c3_0"]
    np.testing.assert_array_equal(seq.groundtruth_xywh, truth["a1b2c3_0"].groundtruth_xywh)
    assert seq.extra == {"chunk": "TRAIN_0"} and seq.visible.all()
    assert load("trackingnet", root, cache, split="TRAIN_1")["name"] == ["zz9_1"]
    test = by_name(load("trackingnet", root, cache))["test_seq_0"]  # default = TEST
    assert [Path(p).name for p in test.frame_paths] == [f"{i}.jpg" for i in range(12)]  # 10.jpg after 9.jpg
    assert test.visible.tolist() == [True] + [False] * 11 and np.all(np.isnan(test.groundtruth_xywh[1:]))


def test_trackingnet_errors(tmp_path, cache):
    root = tmp_path / "TrackingNet"
    make_trackingnet(root, chunks={"TEST": ["x_0"]})
    with pytest.raises(FileNotFoundError, match="No TrackingNet TRAIN_<k> chunk folders"):
        load("trackingnet", root, cache, split="train")
    with pytest.raises(ValueError, match="Unknown trackingnet split 'TRAIN_X'"):
        load("trackingnet", root, cache, split="TRAIN_X")
    make_trackingnet(root, chunks={"TRAIN_0": ["y_0"], "TRAIN_1": ["y_0"]})
    with pytest.raises(ValueError, match="'y_0' appears twice"):
        load("trackingnet", root, cache, split="train")


# --------------------------------------------------------------------------------------------------------------------
# TNL2K, COCO, generic
# --------------------------------------------------------------------------------------------------------------------


def test_tnl2k_png_jpg_and_absent_frames(tmp_path, cache):
    root = tmp_path / "TNL2K_TEST"
    boxes = {"seqB": np.array([[0, 4, 10, 10], [0, 0, 0, 0], [2.5, 3.5, 5.25, 6]])}
    truth = make_tnl2k(root, names=("seqA", "seqB"), extensions={"seqB": "png"}, boxes=boxes)
    rows = by_name(load("tnl2k", root, cache))
    assert [Path(p).suffix for p in rows["seqB"].frame_paths] == [".png"] * 3
    assert [Path(p).suffix for p in rows["seqA"].frame_paths] == [".jpg"] * 5
    assert rows["seqB"].visible.tolist() == [True, False, True]  # x == 0 is a visible box; 0,0,0,0 is absent
    np.testing.assert_array_equal(rows["seqB"].boxes_xyxy[2], [2.5, 3.5, 7.75, 9.5])
    assert rows["seqA"].extra == {"language": truth["seqA"].extra["language"]}
    with pytest.raises(ValueError, match="TNL2K has no split lists"):
        load("tnl2k", root, cache, split="test")


def test_coco_skips_crowd_and_degenerate_objects(tmp_path, cache):
    root = tmp_path / "COCO"
    expected = make_coco(root, "val")
    ds = load("coco", root, cache, split="val")
    assert sorted(ds["name"]) == sorted(expected) == ["1_10", "2_12"]
    rows = by_name(ds)
    np.testing.assert_array_equal(rows["2_12"].boxes_xyxy, [[38, 2, 40, 10]])  # fitted to the 40 px wide image
    np.testing.assert_array_equal(rows["2_12"].groundtruth_xywh, [[38, 2, 10, 8]])
    assert rows["1_10"].visible.tolist() == [True] and rows["1_10"].image_size_wh == (48, 36)
    assert rows["1_10"].extra["category"] == "person" and rows["1_10"].extra["annotation_id"] == 10
    flat = make_coco(tmp_path / "COCO2", "train", flat_layout=True)
    assert sorted(load("coco", tmp_path / "COCO2", cache)["name"]) == sorted(flat)  # default split = train


def test_coco_missing_image_is_an_error(tmp_path, cache):
    root = tmp_path / "COCO"
    make_coco(root, "val")
    (root / "images" / "val2017" / f"{2:012d}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000000000002.jpg"):
        load("coco", root, cache, split="val")


def test_generic_layout_natural_order_flags_and_delimiters(tmp_path, cache):
    root = tmp_path / "mine"
    make_generic(
        root,
        names=("walk", "car2", "car10"),
        num_frames=11,
        frame_folder="imgs",
        delimiter="\t",
        visible={"walk": [1] * 10 + [0]},
        absent={"car2": [0, 1] + [0] * 9},
    )
    ds = load("generic", root, cache)
    assert ds["name"] == ["car2", "car10", "walk"]
    rows = by_name(ds)
    assert [Path(p).name for p in rows["walk"].frame_paths][8:] == ["frame9.png", "frame10.png", "frame11.png"]
    assert rows["walk"].visible.tolist() == [True] * 10 + [False]
    assert rows["car2"].visible.tolist() == [True, False] + [True] * 9
    assert rows["car10"].visible.all() and rows["car10"].coordinate_offset == 0.0


def test_generic_single_sequence_root_split_folder_and_first_frame_only(tmp_path, cache):
    make_generic(
        tmp_path / "data" / "val",
        names=("one",),
        num_frames=4,
        frame_folder="",
        boxes={"one": np.array([[1.5, 2, 10, 12]])},
        frame_names=[f"{i}.jpg" for i in range(4)],
    )
    ds = load("generic", tmp_path / "data", cache, split="val")
    seq = TrackingSequence.from_row(ds[0])
    assert len(seq) == 4 and seq.visible.tolist() == [True, False, False, False]
    np.testing.assert_array_equal(seq.boxes_xyxy[0], [1.5, 2, 11.5, 14])
    assert load("generic", tmp_path / "data" / "val" / "one", cache)["name"] == ["one"]
    with pytest.raises(FileNotFoundError, match="every sub-folder .* must be a sequence.*split=<sub-folder>"):
        load("generic", tmp_path / "data", cache)


# --------------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------------


def test_missing_root_and_split_folder(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="root folder .*nowhere does not exist"):
        load("lasot", tmp_path / "nowhere", cache)
    make_got10k(tmp_path / "GOT", "val")
    with pytest.raises(FileNotFoundError, match=r"GOT-10k split folder for 'train'.*GOT[/\\]train"):
        load("got10k", tmp_path / "GOT", cache, split="train")


def test_missing_annotation_file_is_named(tmp_path, cache):
    root = tmp_path / "LaSOT"
    truth = make_lasot(root, names=("cat-1",), testing_set=["cat-1"])
    (truth["cat-1"].folder / "out_of_view.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"cat-1[/\\]out_of_view.txt does not exist"):
        load("lasot", root, cache)


def test_malformed_annotation_names_file_and_line(tmp_path, cache):
    root = tmp_path / "TNL2K"
    truth = make_tnl2k(root, names=("s",), num_frames=4)
    gt = truth["s"].folder / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    lines[2] = "1,2,three,4"
    gt.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"groundtruth.txt, line 3: expected 4 numbers .* got '1,2,three,4'"):
        load("tnl2k", root, cache)
    lines[2] = "1,2,3"
    gt.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 3"):
        load("tnl2k", root, cache)


def test_malformed_flag_file(tmp_path, cache):
    root = tmp_path / "LaSOT"
    truth = make_lasot(root, names=("cat-1",), testing_set=["cat-1"])
    (truth["cat-1"].folder / "full_occlusion.txt").write_text("0,0,2,0,0\n")
    with pytest.raises(ValueError, match=r"full_occlusion.txt, line 1: expected one of \[0, 1\], got '2'"):
        load("lasot", root, cache)


@pytest.mark.parametrize("benchmark", ["got10k", "tnl2k", "generic", "lasot", "trackingnet"])
def test_frame_count_mismatch_names_both_numbers(tmp_path, cache, benchmark):
    root = tmp_path / benchmark
    if benchmark == "got10k":
        folder = make_got10k(root, "val", names=["GOT-10k_Val_000001"], num_frames=5)["GOT-10k_Val_000001"].folder
        (folder / "00000005.jpg").unlink()
        pattern, split = r"has 5 boxes but .* has 4", "val"
    elif benchmark == "tnl2k":
        make_tnl2k(root, names=("s",), num_frames=5)["s"].frame_paths[-1].unlink()
        pattern, split = r"has 5 boxes but .* has 4", None
    elif benchmark == "generic":
        make_generic(root, names=("s",), num_frames=5)["s"].frame_paths[0].unlink()
        pattern, split = r"has 5 boxes but .* has 4", None
    elif benchmark == "lasot":
        make_lasot(root, names=("cat-1",), num_frames=5, testing_set=["cat-1"])["cat-1"].frame_paths[-1].unlink()
        pattern, split = r"has 5 annotation lines but .* holds only 4 frames", None
    else:
        make_trackingnet(root, chunks={"TRAIN_0": ["s_0"]}, num_frames=5)["s_0"].frame_paths[-1].unlink()
        pattern, split = r"has 5 annotation lines but .* holds only 4 frames", "train"
    with pytest.raises(ValueError, match=pattern):
        load(benchmark, root, cache, split=split)


def test_flag_length_mismatch(tmp_path, cache):
    root = tmp_path / "GOT"
    folder = make_got10k(root, "val", names=["GOT-10k_Val_000001"], num_frames=5)["GOT-10k_Val_000001"].folder
    (folder / "cover.label").write_text("8\n8\n8\n")
    with pytest.raises(ValueError, match=r"cover.label has 3 labels but groundtruth.txt has 5"):
        load("got10k", root, cache, split="val")


def test_empty_split(tmp_path, cache):
    root = tmp_path / "LaSOT"
    make_lasot(root, names=("cat-1",), testing_set=[], training_set=["cat-1"])
    with pytest.raises(ValueError, match="Split 'test' of lasot .* is empty"):
        load("lasot", root, cache)
    coco = tmp_path / "COCO"
    make_coco(coco, "val", annotations=[{"id": 1, "image_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 1}])
    with pytest.raises(ValueError, match="is empty: no usable sequences"):
        load("coco", coco, cache, split="val")
    assert not list((cache / "coco").glob("val-*/sequences.arrow"))  # a failed parse leaves no cache entry


# --------------------------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------------------------


def test_second_load_uses_the_cache_without_parsing(tmp_path, cache, monkeypatch):
    root = tmp_path / "LaSOT"
    truth = make_lasot(root, names=("cat-1", "cat-2"), testing_set=["cat-1", "cat-2"])
    first = load("lasot", root, cache)
    calls = []

    def counting_read(self, root_, unit):
        calls.append(unit)
        return original_read(self, root_, unit)

    original_read = lasot_module.LaSOTReader.read
    monkeypatch.setattr(lasot_module.LaSOTReader, "read", counting_read)
    second = load("lasot", root, cache)
    assert calls == []  # cache hit: nothing re-parsed
    assert second.to_list() == first.to_list()
    entry = Path(second.cache_files[0]["filename"]).parent
    assert entry.parent == cache / "lasot" and entry.name.startswith("test-")  # memory-mapped from the cache
    assert json.loads((entry / "meta.json").read_text())["num_sequences"] == 2
    assert not [p for p in (cache / "lasot").iterdir() if ".tmp-" in p.name]

    gt = truth["cat-1"].folder / "groundtruth.txt"
    gt.write_text("2,2,5,5\n" + gt.read_text().split("\n", 1)[1])
    os.utime(gt, ns=(gt.stat().st_atime_ns, gt.stat().st_mtime_ns + 10**9))
    edited = load("lasot", root, cache)
    assert len(calls) == 2  # an annotation file changed: re-parsed into a new entry
    assert edited[0]["groundtruth_xywh"][0] == [2, 2, 5, 5]
    load("lasot", root, cache, refresh=True)
    assert len(calls) == 4  # refresh=True re-parses
    assert len(list((cache / "lasot").glob("test-*/sequences.arrow"))) == 2


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAT_HF_CACHE", str(tmp_path / "lorat"))
    assert default_cache_dir() == tmp_path / "lorat" / "sequences"
    make_generic(tmp_path / "gen", names=("a",))
    ds = load_sequences("generic", tmp_path / "gen", progress=False)
    assert Path(ds.cache_files[0]["filename"]).is_relative_to(tmp_path / "lorat" / "sequences" / "generic")


# --------------------------------------------------------------------------------------------------------------------
# Training view
# --------------------------------------------------------------------------------------------------------------------


def test_trim_unannotated_head_and_tail(tmp_path, cache):
    root = tmp_path / "LaSOT"
    make_lasot(
        root,
        names=("cat-1", "cat-2"),
        num_frames=6,
        testing_set=["cat-1", "cat-2"],
        full_occlusion={"cat-1": [1, 0, 0, 1, 0, 0], "cat-2": [1] * 6},
        out_of_view={"cat-1": [0, 0, 0, 0, 0, 1]},
    )
    ds = load("lasot", root, cache)
    row = trim_unannotated(ds[0])
    seq = TrackingSequence.from_row(row)
    original = TrackingSequence.from_row(ds[0])
    assert len(seq) == 4 and seq.visible.tolist() == [True, True, False, True]  # inner invisible frame kept
    assert seq.frame_paths == original.frame_paths[1:5]
    np.testing.assert_array_equal(seq.boxes_xyxy, original.boxes_xyxy[1:5])
    assert seq.extra["full_occlusion"] == [0, 0, 1, 0] and seq.extra["frame_offset"] == 1
    training = trim_unannotated_sequences(ds)
    assert training["name"] == ["cat-1"]  # cat-2 has no visible frame


# --------------------------------------------------------------------------------------------------------------------
# Saved datasets and Hub-style folders
# --------------------------------------------------------------------------------------------------------------------


def test_save_to_disk_round_trip(tmp_path, cache):
    make_generic(tmp_path / "gen", names=("a", "b"))
    ds = load("generic", tmp_path / "gen", cache)
    ds.save_to_disk(str(tmp_path / "saved"))
    again = load_sequences_from(tmp_path / "saved")
    assert again.features == SEQUENCE_FEATURES and again.to_list() == ds.to_list()
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dict"))
    assert load_sequences_from(tmp_path / "dict", split="test")["name"] == ["a"]
    with pytest.raises(ValueError, match=r"holds the splits \['test', 'train'\]; pass split="):
        load_sequences_from(tmp_path / "dict")


def test_parquet_folder_with_relative_frames(tmp_path, cache):
    make_generic(tmp_path / "gen", names=("a",))
    ds = load("generic", tmp_path / "gen", cache)
    relative = ds.map(
        lambda paths: {"frame_paths": [os.path.relpath(p, tmp_path / "gen") for p in paths]},
        input_columns="frame_paths",
    )
    (tmp_path / "repo" / "data").mkdir(parents=True)
    relative.to_parquet(str(tmp_path / "repo" / "data" / "train-00000.parquet"))
    loaded = load_sequences_from(tmp_path / "repo", frames_root=tmp_path / "gen", cache_dir=str(tmp_path / "hf"))
    assert loaded["frame_paths"] == ds["frame_paths"] and loaded.features == SEQUENCE_FEATURES
    broken = ds.remove_columns(["visible"])
    broken.save_to_disk(str(tmp_path / "broken"))
    with pytest.raises(ValueError, match=r"missing columns \['visible'\]"):
        load_sequences_from(tmp_path / "broken")
    with pytest.raises(FileNotFoundError, match="is not an existing folder"):
        load_sequences_from(str(tmp_path / "missing"))
