"""`lorat-vot` with the VOT toolkit as the client: the toolkit's own `vot test` on its dummy sequence, and `vot evaluate`
+ `vot analysis` on a small local workspace of synthetic videos, all offline.

The toolkit lives in an environment of its own (`make vot-toolkit`, `<venv>/vot-toolkit`; or set
LORAT_HF_VOT_TOOLKIT to a `vot` executable). Its `trackers.ini` entry is the README's, as written there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_in_process_group

trax = pytest.importorskip("trax", reason="the `vot` extra (vot-trax) is not installed")

from lorat_hf.vot import VotInputError, region_to_xywh  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TRACKER = "lorat"
TOOLKIT_TIMEOUT = 300


def toolkit_executable() -> Path:
    """The toolkit's `vot` command; a missing toolkit skips outside CI and fails in CI."""
    configured = os.environ.get("LORAT_HF_VOT_TOOLKIT")
    path = Path(configured) if configured else VENV_BIN.parent / "vot-toolkit" / "bin" / "vot"
    if not path.is_file():
        message = f"the VOT toolkit is not installed at {path} (run `make vot-toolkit`, or set LORAT_HF_VOT_TOOLKIT)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def readme_trackers_ini() -> str:
    """The README's `trackers.ini` block, with `lorat-vot` pointing at this venv's command."""
    blocks = re.findall(r"^```ini\n(.*?)^```", (REPO / "README.md").read_text(encoding="utf-8"), re.M | re.S)
    (block,) = [block for block in blocks if "lorat-vot" in block]
    assert f"[{TRACKER}]" in block and "protocol = trax" in block, block
    return block.replace("command = lorat-vot", f"command = {VENV_BIN / 'lorat-vot'}")


def offline_env(home: Path) -> dict[str, str]:
    """No Hub, one thread, and any HTTP(S) request (the toolkit's check for a newer version) sent to a closed port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VOT_"))}
    env.update(
        HOME=str(home),
        HF_HOME=str(home / "hf_home"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = "http://127.0.0.1:9"
    env["NO_PROXY"] = env["no_proxy"] = ""
    return env


def run_vot(args: list[str], cwd: Path) -> str:
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    result = run_in_process_group(
        [str(toolkit_executable()), *args], cwd=cwd, env=offline_env(home), timeout=TOOLKIT_TIMEOUT
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"vot {' '.join(args)} exited {result.returncode}:\n{output[-6000:]}"
    return output


# --------------------------------------------------------------------------------------------------------------------
# Regions in (no toolkit needed)
# --------------------------------------------------------------------------------------------------------------------


def test_regions_become_boxes():
    from trax import Mask, Polygon, Rectangle

    assert region_to_xywh(Rectangle.create(3, 4, 20, 10)).tolist() == [3, 4, 20, 10]
    polygon = Polygon.create([(2.0, 5.0), (12.0, 3.0), (9.0, 15.0)])
    assert region_to_xywh(polygon).tolist() == [2, 3, 10, 12]
    mask = np.zeros((8, 10), np.uint8)
    mask[2:5, 3:9] = 1
    # the mask's offset is applied: the box is in image pixels, covering every set pixel
    assert region_to_xywh(Mask.create(mask, 7, 11)).tolist() == [10, 13, 6, 3]


@pytest.mark.parametrize("kind", ["empty mask", "zero-size rectangle"])
def test_empty_regions_are_refused_with_a_message(kind):
    from trax import Mask, Rectangle

    region = Mask.create(np.zeros((4, 4), np.uint8)) if kind == "empty mask" else Rectangle.create(5, 5, 0, 10)
    with pytest.raises(VotInputError, match="empty|no area"):
        region_to_xywh(region)


# --------------------------------------------------------------------------------------------------------------------
# A TraX session with lorat-vot (the bindings' own client, no toolkit needed)
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def vot_server(tmp_path):
    """A running `lorat-vot` (the embedded tracker) and a TraX client connected to its standard input/output."""
    from trax.client import Client

    env = offline_env(tmp_path)
    process = subprocess.Popen(
        [str(VENV_BIN / "lorat-vot"), "--device", "cpu"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        # (the bindings' client needs a log callback: log=False fails in vot-trax 4.0.2)
        yield process, Client((process.stdin.fileno(), process.stdout.fileno()), timeout=120, log=lambda text: None)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def synthetic_frames(folder: Path, num_frames: int) -> tuple[list[Path], np.ndarray]:
    """JPEG frames of a held-out synthetic clip and its first box (x, y, w, h)."""
    from lorat_hf.assets import demo_video_config
    from lorat_hf.data.synthetic import generate_sequence

    sequence = generate_sequence(demo_video_config(num_frames=num_frames), seed=9100)
    folder.mkdir()
    paths = []
    for t, frame in enumerate(sequence.frames):
        paths.append(folder / f"{t + 1:08d}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    x1, y1, x2, y2 = sequence.boxes_xyxy[0]
    return paths, np.array([x1, y1, x2 - x1, y2 - y1])


def test_a_trax_session_gives_the_python_api_boxes(vot_server, tmp_path):
    from trax import FileImage, Rectangle

    from lorat_hf import LoraTracker
    from lorat_hf.video_io import read_image_rgb

    process, client = vot_server
    paths, first_box = synthetic_frames(tmp_path / "frames", 5)
    states, _ = client.initialize({"color": FileImage.create(str(paths[0]))}, [(Rectangle.create(*first_box), {})], {})
    trax_boxes, confidences = [], []
    for path in paths[1:]:
        ((region, properties),), _ = client.frame({"color": FileImage.create(str(path))}, {}, [])
        assert region.type == "rectangle"
        trax_boxes.append(region.bounds())
        confidences.append(float(properties["confidence"]))
    client.quit()
    assert process.wait(timeout=60) == 0, process.stderr.read().decode()[-3000:]

    tracker = LoraTracker.from_pretrained(device="cpu")
    expected = list(tracker.track_video([read_image_rgb(path) for path in paths], first_box))[1:]
    np.testing.assert_allclose(trax_boxes, [item.box for item in expected], atol=2e-3)
    np.testing.assert_allclose(confidences, [item.score for item in expected], atol=2e-6)


def test_an_empty_mask_ends_the_session_with_a_reason(vot_server, tmp_path):
    from trax import FileImage, Mask, TraxException

    process, client = vot_server
    paths, _ = synthetic_frames(tmp_path / "frames", 1)
    with pytest.raises(TraxException, match="mask is empty"):
        client.initialize(
            {"color": FileImage.create(str(paths[0]))}, [(Mask.create(np.zeros((6, 6), np.uint8)), {})], {}
        )
    assert process.wait(timeout=60) == 1
    assert "mask is empty" in process.stderr.read().decode()


# --------------------------------------------------------------------------------------------------------------------
# The VOT toolkit as the client
# --------------------------------------------------------------------------------------------------------------------


def test_vot_test_runs_the_tracker_on_the_dummy_sequence(tmp_path):
    (tmp_path / "trackers.ini").write_text(readme_trackers_ini())
    output = run_vot(["test", TRACKER], tmp_path)
    assert "Test concluded successfuly" in output or "Test concluded successfully" in output, output[-4000:]
    # the dummy sequence has several objects: one rectangle and a confidence per object and frame came back
    states = re.findall(r'@@TRAX:state "([-\d.]+),([-\d.]+),([-\d.]+),([-\d.]+)" "confidence=([\d.]+)"', output)
    assert len(states) > 10, output[-4000:]
    assert all(float(w) > 0 and float(h) > 0 and 0 <= float(c) <= 1 for _, _, w, h, c in states)


def write_vot_workspace(root: Path, num_sequences: int = 2, num_frames: int = 10) -> list[str]:
    """A VOT workspace of synthetic videos (held-out seeds of the demo tracker's kind of video) with a local stack."""
    from lorat_hf.assets import demo_video_config
    from lorat_hf.data.synthetic import generate_sequence

    names = []
    for index in range(num_sequences):
        sequence = generate_sequence(demo_video_config(num_frames=num_frames), seed=9000 + index)
        name = f"synthetic-{index}"
        folder = root / "sequences" / name
        (folder / "color").mkdir(parents=True)
        for t, frame in enumerate(sequence.frames):
            cv2.imwrite(str(folder / "color" / f"{t + 1:08d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        lines = [
            ",".join(f"{v:.3f}" for v in (x1, y1, x2 - x1, y2 - y1)) if np.all(np.isfinite(box)) else "0"
            for box in sequence.boxes_xyxy
            for x1, y1, x2, y2 in [box]
        ]
        (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        (folder / "sequence").write_text(f"channels.color=color/%08d.jpg\nfps=30\nformat=default\nname={name}\n")
        names.append(name)
    (root / "sequences" / "list.txt").write_text("\n".join(names) + "\n")
    (root / "stack.yaml").write_text(
        "title: lorat_hf synthetic clips\n"
        "experiments:\n"
        "  baseline:\n"
        "    type: unsupervised\n"
        "    repetitions: 1\n"
        "    analyses:\n"
        "      - type: average_accuracy\n"
        "        name: accuracy\n"
        "        burnin: 1\n"
    )
    (root / "config.yaml").write_text("registry:\n- ./trackers.ini\nstack: stack.yaml\n")
    (root / "trackers.ini").write_text(readme_trackers_ini())
    return names


def test_vot_evaluate_and_analysis_on_a_local_workspace(tmp_path):
    names = write_vot_workspace(tmp_path)
    run_vot(["evaluate", "--workspace", str(tmp_path), TRACKER], tmp_path)
    for name in names:
        folder = tmp_path / "results" / TRACKER / "baseline" / name
        assert (folder / f"{name}_001.bin").is_file(), sorted(p.name for p in folder.parent.rglob("*"))
        # one confidence per frame: 1 on the initialisation frame, then the tracker's scores
        confidences = [float(v) for v in (folder / f"{name}_001_confidence.value").read_text().split()]
        assert len(confidences) == 10 and confidences[0] == 1.0
        assert all(0 <= value <= 1 for value in confidences)

    run_vot(["analysis", "--workspace", str(tmp_path), "--name", "check", TRACKER], tmp_path)
    report = json.loads((tmp_path / "analysis" / "check.json").read_text())
    assert list(report["trackers"]) == [TRACKER] and sorted(report["sequences"]) == names
    baseline = report["results"]["baseline"]
    assert [analysis["name"] for analysis in baseline["parameters"]["analyses"]] == ["accuracy"]
    (accuracy,) = np.asarray(baseline["results"], dtype=float).ravel()  # one tracker, one average accuracy
    # the embedded tracker follows its own kind of synthetic target: a real overlap, not a constant box
    assert 0.5 < accuracy <= 1, report
