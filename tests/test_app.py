"""`lorat-app`: the tracking behind the page (no browser), then the real page in headless Chromium.

The browser test starts `lorat-app` on 127.0.0.1, uploads a clip, drags a box with the mouse, tracks, and checks that
the annotated video and the CSV are offered and that the CSV's boxes are the Python API's on the same clip; it also
checks the page's messages for bad input and that the page fetched nothing from outside this machine. It drives
Debian's Chromium (/usr/bin/chromium, or LORAT_HF_CHROMIUM) with Playwright; without a browser it is skipped, except
in CI (CI=true), where that is a failure. With LORAT_HF_WRITE_SCREENSHOT=1 (or when docs/app.png is missing) its
screenshot of the finished page is written to docs/app.png, the README's picture.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from lorat_hf import LoraTracker
from lorat_hf.app import (
    NO_BOX_MESSAGE,
    AppInputError,
    open_video,
    parse_boxes,
    track_to_files,
    write_demo_clip,
)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SCREENSHOT = REPO / "docs" / "app.png"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def tracker():
    return LoraTracker.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 12-frame held-out synthetic clip (mp4), what the page's demo button makes, only shorter."""
    return write_demo_clip(tmp_path_factory.mktemp("clip"), num_frames=12)


# --------------------------------------------------------------------------------------------------------------------
# Input checks and tracking, without the page
# --------------------------------------------------------------------------------------------------------------------


def test_boxes_are_parsed_and_checked_against_the_frame():
    np.testing.assert_array_equal(
        parse_boxes("10, 20, 30, 40\n\n5 6 7 8", (320, 240)), [[10, 20, 30, 40], [5, 6, 7, 8]]
    )
    with pytest.raises(AppInputError, match="drag a box"):
        parse_boxes("  \n", (320, 240))
    assert "drag a box" in NO_BOX_MESSAGE
    with pytest.raises(AppInputError, match="line 2"):
        parse_boxes("10, 20, 30, 40\n10, 20, 30", (320, 240))
    with pytest.raises(AppInputError, match="Target 1"):  # entirely right of a 320 px wide frame
        parse_boxes("400, 20, 30, 40", (320, 240))


def test_bad_videos_get_a_message(tmp_path, clip):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(4096))
    with pytest.raises(AppInputError, match="corrupt, not a video, or uses a codec") as error:
        open_video(corrupt, max_frames=100, name="holiday.mp4")
    assert "holiday.mp4" in str(error.value) and str(tmp_path) not in str(error.value)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(AppInputError, match="empty"):
        open_video(empty, max_frames=100)
    with pytest.raises(AppInputError, match="not a video file"):
        open_video(tmp_path / "notes.txt", max_frames=100)
    with pytest.raises(AppInputError, match="has 12 frames; this app tracks at most 5"):
        open_video(clip, max_frames=5)
    assert open_video(clip, max_frames=12).num_frames == 12


def test_tracking_writes_the_python_api_boxes(tmp_path, clip, tracker):
    video = open_video(clip, max_frames=100)
    first_box = np.array([[30.0, 40.0, 50.0, 45.0]])
    frames_done = []
    outputs = track_to_files(
        tracker, video, first_box, tmp_path, 100, on_frame=lambda done, total: frames_done.append((done, total))
    )
    assert frames_done == [(i, 12) for i in range(1, 13)] and not outputs.cancelled
    assert [path.name for path in outputs.files] == ["tracked.webm", "boxes.csv", "boxes.json", "scores.png"]
    assert all(path.stat().st_size > 0 for path in outputs.files)
    expected = list(LoraTracker(tracker.backend, tracker.image_processor).track_video(str(clip), first_box[0]))
    rows = list(csv.DictReader((tmp_path / "boxes.csv").open()))
    assert len(rows) == 12
    got = np.array([[float(row[k]) for k in ("x", "y", "w", "h")] for row in rows])
    np.testing.assert_allclose(got, [item.box for item in expected], atol=1e-4)
    np.testing.assert_allclose([float(row["score"]) for row in rows], [item.score for item in expected], atol=1e-6)


def test_several_targets_and_cancelling(tmp_path, clip, tracker):
    video = open_video(clip, max_frames=100)
    boxes = np.array([[30.0, 40.0, 50.0, 45.0], [150.0, 100.0, 40.0, 40.0]])
    done = []
    outputs = track_to_files(
        tracker, video, boxes, tmp_path, 100, should_stop=lambda: len(done) >= 4, on_frame=lambda n, _: done.append(n)
    )
    # stopped between two frames, keeping what was tracked: 4 frames, a CSV and a JSON per target
    assert outputs.cancelled and outputs.num_frames == 4
    names = sorted(path.name for path in outputs.box_files)
    assert names == ["boxes-target-1.csv", "boxes-target-1.json", "boxes-target-2.csv", "boxes-target-2.json"]
    assert len((tmp_path / "boxes-target-2.csv").read_text().splitlines()) == 1 + 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, "tracked.webm", "scores.png"])  # no leftovers


def test_a_video_longer_than_its_container_says_is_stopped(tmp_path, clip, tracker):
    video = open_video(clip, max_frames=100)
    with pytest.raises(AppInputError, match="more than 5"):
        track_to_files(tracker, video, np.array([[30.0, 40.0, 50.0, 45.0]]), tmp_path, max_frames=5)
    assert not any(tmp_path.iterdir())  # the partial video was dropped


# --------------------------------------------------------------------------------------------------------------------
# The page in a real browser
# --------------------------------------------------------------------------------------------------------------------


def chromium_executable() -> str:
    path = os.environ.get("LORAT_HF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        message = f"no Chromium at {path} (install Debian's `chromium`, or set LORAT_HF_CHROMIUM)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def app_url(tmp_path):
    """`lorat-app` (the embedded tracker) running on 127.0.0.1 in its own process group; its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"),
        GRADIO_TEMP_DIR=str(tmp_path / "gradio"),
        GRADIO_ANALYTICS_ENABLED="False",
        OMP_NUM_THREADS="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    log = (tmp_path / "app.log").open("w")
    command = [str(VENV_BIN / "lorat-app"), "--port", str(port), "--max-frames", "100", "--device", "cpu"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "app.log").read_text()[-4000:]
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (
                "lorat-app did not answer in 180 s:\n" + (tmp_path / "app.log").read_text()[-4000:]
            )
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def drag_box(page, box_xywh: np.ndarray) -> None:
    """Drag the mouse over the first-frame image from the box's top-left to its bottom-right corner (video pixels
    mapped to the screen through the image's letterboxed content rectangle)."""
    geometry = page.eval_on_selector(
        "#first-frame img",
        """img => { const r = img.getBoundingClientRect();
                    return [r.left, r.top, r.width, r.height, img.naturalWidth, img.naturalHeight]; }""",
    )
    left, top, width, height, natural_w, natural_h = geometry
    scale = min(width / natural_w, height / natural_h)
    left += (width - natural_w * scale) / 2
    top += (height - natural_h * scale) / 2
    x, y, w, h = box_xywh
    page.mouse.move(left + x * scale, top + y * scale)
    page.mouse.down()
    page.mouse.move(left + (x + w / 2) * scale, top + (y + h / 2) * scale, steps=4)
    page.mouse.move(left + (x + w) * scale, top + (y + h) * scale, steps=4)
    page.mouse.up()


def test_the_page_tracks_an_uploaded_clip_in_chromium(app_url, clip, tracker, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    executable = chromium_executable()
    from lorat_hf.app import DEMO_CLIP_SEED
    from lorat_hf.assets import demo_video_config
    from lorat_hf.data.synthetic import SyntheticVideo

    target = SyntheticVideo(demo_video_config(num_frames=12), DEMO_CLIP_SEED).boxes_xyxy[0]
    target_xywh = np.array([target[0], target[1], target[2] - target[0], target[3] - target[1]])
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2048))

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            outside = []
            page.on(
                "request",
                lambda r: outside.append(r.url) if not r.url.startswith((app_url, "data:", "blob:")) else None,
            )
            page.goto(app_url)
            upload = page.locator("#video-upload input[type=file]")
            message = page.locator("#message")

            # bad input: a corrupt upload, then Track with no box
            upload.set_input_files(str(corrupt))
            sync_api.expect(message).to_contain_text("Cannot read broken.mp4", timeout=60_000)
            upload.set_input_files(str(clip))
            sync_api.expect(message).to_contain_text("12 frames", timeout=60_000)
            page.click("#track")
            sync_api.expect(message).to_contain_text("Mark the target first", timeout=30_000)

            # draw the target with the mouse; the Targets box receives it in video pixels
            page.locator("#first-frame img").wait_for()
            drag_box(page, target_xywh)
            targets = page.locator("#targets textarea")
            sync_api.expect(targets).not_to_have_value("", timeout=10_000)
            drawn = parse_boxes(targets.input_value())
            assert drawn.shape == (1, 4)
            np.testing.assert_allclose(drawn[0], target_xywh, atol=2.5)  # one screen pixel is ~1-2 video pixels
            sync_api.expect(message).to_contain_text("1 target marked", timeout=30_000)

            page.click("#track")
            sync_api.expect(message).to_contain_text("Done: 12 frames", timeout=240_000)
            links = page.locator("#downloads a")
            sync_api.expect(links).to_have_count(3, timeout=30_000)
            hrefs = {
                Path(links.nth(i).get_attribute("href")).name: links.nth(i).get_attribute("href") for i in range(3)
            }
            assert sorted(hrefs) == ["boxes.csv", "boxes.json", "tracked.webm"], hrefs
            assert page.locator("#result-video video").count() == 1
            assert page.locator("#score-plot img").count() == 1
            response = page.request.get(hrefs["boxes.csv"])
            assert response.ok, response.status
            rows = list(csv.DictReader(io.StringIO(response.text())))
            page.wait_for_timeout(500)
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("LORAT_HF_WRITE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
                SCREENSHOT.parent.mkdir(exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT)
        finally:
            browser.close()

    assert not outside, f"the page fetched from outside this machine: {outside[:5]}"
    expected = list(LoraTracker(tracker.backend, tracker.image_processor).track_video(str(clip), drawn[0]))
    got = np.array([[float(row[k]) for k in ("x", "y", "w", "h")] for row in rows])
    np.testing.assert_allclose(got, [item.box for item in expected], atol=1e-4)
    np.testing.assert_allclose([float(row["score"]) for row in rows], [item.score for item in expected], atol=1e-6)
