"""Speed of the sequence readers (first parse vs cache hit) and of the synthetic video generator.

Measures, on this machine:

* ``load_sequences`` on generated LaSOT-layout and GOT-10k-layout folders of realistic size (annotation files of
  full length; LaSOT only needs its first and last frame on disk, GOT-10k lists every frame, so empty frame files are
  created): first parse (Arrow cache written) and second call (cache hit, memory-mapped), plus the cache size;
* ``generate_sequence``: 100 frames of 320x240 in memory (the target: well under a second);
* ``SyntheticVideo`` streaming 1280x720 frames, render only and render + JPEG write (quality 90).

Prints a table and writes it into `benchmarks/RESULTS.md` (its own section, replaced on every run).

    python benchmarks/sequences_and_synthetic.py
    python benchmarks/sequences_and_synthetic.py --lasot-sequences 280 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from results_md import RESULTS_FILE, update_results_section

from lorat_hf.data import SyntheticVideo, SyntheticVideoConfig, generate_sequence, load_sequences

SECTION = "sequences_and_synthetic"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lasot-sequences", type=int, default=280, help="LaSOT test size")
    parser.add_argument("--lasot-frames", type=int, default=2500, help="frames per LaSOT sequence (test avg ~2450)")
    parser.add_argument("--got10k-sequences", type=int, default=180, help="GOT-10k val size")
    parser.add_argument("--got10k-frames", type=int, default=120)
    parser.add_argument("--hd-frames", type=int, default=30)
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="results file to update (RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch RESULTS.md")
    return parser.parse_args()


def tiny_jpeg(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.zeros((height, width, 3), np.uint8))
    assert ok
    return data.tobytes()


def build_lasot(root: Path, num_sequences: int, num_frames: int) -> None:
    rng = np.random.default_rng(0)
    frame = tiny_jpeg(1280, 720)
    for index in range(num_sequences):
        folder = root / f"class{index % 70}" / f"class{index % 70}-{index // 70 + 1}"
        (folder / "img").mkdir(parents=True)
        boxes = rng.integers(1, 600, (num_frames, 4))
        np.savetxt(folder / "groundtruth.txt", boxes, fmt="%d", delimiter=",")
        flags = ",".join("0" for _ in range(num_frames))
        (folder / "full_occlusion.txt").write_text(flags + "\n")
        (folder / "out_of_view.txt").write_text(flags + "\n")
        (folder / "nlp.txt").write_text("a thing\n")
        for number in (1, num_frames):
            (folder / "img" / f"{number:08d}.jpg").write_bytes(frame)
    names = [f"class{i % 70}-{i // 70 + 1}" for i in range(num_sequences)]
    (root / "testing_set.txt").write_text("\n".join(names) + "\n")


def build_got10k(root: Path, num_sequences: int, num_frames: int) -> None:
    rng = np.random.default_rng(0)
    split = root / "val"
    names = [f"GOT-10k_Val_{i:06d}" for i in range(1, num_sequences + 1)]
    for name in names:
        folder = split / name
        folder.mkdir(parents=True)
        np.savetxt(folder / "groundtruth.txt", rng.uniform(1, 600, (num_frames, 4)), fmt="%.4f", delimiter=",")
        for label, value in (("absence.label", "0"), ("cover.label", "8"), ("cut_by_image.label", "0")):
            (folder / label).write_text("\n".join(value for _ in range(num_frames)) + "\n")
        (folder / "meta_info.ini").write_text("[METAINFO]\nobject_class: ant\nresolution: (1280, 720)\n")
        for number in range(1, num_frames + 1):
            (folder / f"{number:08d}.jpg").touch()
    (split / "list.txt").write_text("\n".join(names) + "\n")


def time_loads(dataset: str, root: Path, split: str, cache: Path) -> dict[str, float]:
    start = time.perf_counter()
    first = load_sequences(dataset, root, split, cache_dir=cache, progress=False)
    parse = time.perf_counter() - start
    start = time.perf_counter()
    second = load_sequences(dataset, root, split, cache_dir=cache, progress=False)
    hit = time.perf_counter() - start
    arrow = Path(second.cache_files[0]["filename"])
    frames = sum(len(paths) for paths in first["frame_paths"])
    return {
        "sequences": len(first),
        "frames": frames,
        "parse_s": parse,
        "hit_s": hit,
        "cache_mb": arrow.stat().st_size / 2**20,
    }


def main() -> None:
    args = parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        build_lasot(work / "lasot", args.lasot_sequences, args.lasot_frames)
        build_got10k(work / "got10k", args.got10k_sequences, args.got10k_frames)
        lasot = time_loads("lasot", work / "lasot", "test", work / "cache")
        got = time_loads("got10k", work / "got10k", "val", work / "cache")
        rows.append(
            f"| `load_sequences('lasot', split='test')` | {lasot['sequences']} seq, {lasot['frames']:,} frames "
            f"| first parse {lasot['parse_s']:.2f} s, cache hit {lasot['hit_s'] * 1000:.0f} ms "
            f"| Arrow {lasot['cache_mb']:.1f} MiB |"
        )
        rows.append(
            f"| `load_sequences('got10k', split='val')` | {got['sequences']} seq, {got['frames']:,} frames "
            f"| first parse {got['parse_s']:.2f} s, cache hit {got['hit_s'] * 1000:.0f} ms "
            f"| Arrow {got['cache_mb']:.1f} MiB |"
        )

        timings = []
        for seed in range(5):
            start = time.perf_counter()
            generate_sequence(SyntheticVideoConfig(frame_size=(320, 240), num_frames=100), seed)
            timings.append(time.perf_counter() - start)
        rows.append(
            f"| `generate_sequence` 100 x 320x240 (default config) | 5 seeds "
            f"| median {np.median(timings):.2f} s, max {max(timings):.2f} s | target < 1 s |"
        )

        video = SyntheticVideo(SyntheticVideoConfig(frame_size=(1280, 720), num_frames=args.hd_frames), 0)
        start = time.perf_counter()
        for t in range(video.num_frames):
            video.render_frame(t)
        render = (time.perf_counter() - start) / video.num_frames
        out = work / "hd"
        out.mkdir()
        start = time.perf_counter()
        for t in range(video.num_frames):
            frame = cv2.cvtColor(video.render_frame(t), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(out / f"{t:08d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        written = (time.perf_counter() - start) / video.num_frames
        rows.append(
            f"| `SyntheticVideo` 1280x720 | {video.num_frames} frames "
            f"| render {render * 1000:.0f} ms/frame, render + JPEG q90 {written * 1000:.0f} ms/frame | |"
        )

    machine = f"CPU: {os.cpu_count()} cores, no GPU ({platform.processor() or platform.machine()})"
    table = "\n".join(["| what | size | time | notes |", "|---|---|---|---|", *rows])
    section = (
        f"## Sequence readers and synthetic videos (`benchmarks/sequences_and_synthetic.py`)\n\n"
        f"Machine: {machine}. Readers run on generated folders with full-length annotation files.\n\n"
        f"{table}"
    )
    print(section)
    if not args.no_write:
        update_results_section(SECTION, section, args.results)


if __name__ == "__main__":
    main()
