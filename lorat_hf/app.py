"""`lorat-app`: track objects in your own video from a web page (Gradio), offline.

    lorat-app                                   # the embedded demo tracker, http://127.0.0.1:7860
    lorat-app --model path/or/hub-id --port 8000 --max-frames 5000

Upload a video (or take the demo clip), drag a box around each target on the first frame (or type `x, y, w, h`
lines), press Track: the page shows a progress bar and, at the end, the annotated video, the per-frame score plot and
the boxes as CSV and JSON to download. Frames are streamed (decoded, tracked, drawn and encoded one at a time), so a
long video never sits in memory; Cancel stops between two frames and keeps what was tracked so far.

Bad input (no box, a box outside the frame, an empty, corrupt or undecodable upload, a video longer than
`--max-frames`) gets one message in the page saying what to do.

The tracking itself (`open_video`, `parse_boxes`, `track_to_files`) does not need Gradio; `build_app` makes the page
(the `app` extra: `pip install "lorat_hf[app]"`).
"""

import argparse
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .boxes import check_init_box, to_xyxy
from .video_io import DEFAULT_FPS, VideoReader, VideoSourceError, VideoWriter, draw_box

logger = logging.getLogger("lorat_hf.app")

PROG = "lorat-app"
DEFAULT_PORT = 7860
DEFAULT_MAX_FRAMES = 3000
DEMO_CLIP_FRAMES = 60
DEMO_CLIP_SEED = 47  # a run seed the demo tracker never saw in training (checked when the clip is made)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv")
TARGET_COLORS = ((0, 255, 0), (255, 64, 255), (0, 200, 255), (255, 200, 0), (255, 80, 80), (160, 120, 255))
ANNOTATED_VIDEO_NAME = "tracked.webm"  # VP8 WebM: what browsers play and the stock OpenCV wheels encode
SCORE_PLOT_NAME = "scores.png"
NO_BOX_MESSAGE = (
    "Mark the target first: drag a box around it on the first frame (or type `x, y, w, h` in the Targets box, one "
    "line per target)."
)


class AppInputError(ValueError):
    """A problem with what the user gave (video or boxes); its message is shown in the page."""


# --------------------------------------------------------------------------------------------------------------------
# Tracking, without Gradio
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoSummary:
    """An uploaded video, checked: its first frame `(H, W, 3)` RGB uint8 and what the container says."""

    path: str
    name: str
    first_frame: np.ndarray
    fps: float | None
    num_frames: int | None

    @property
    def size_wh(self) -> tuple[int, int]:
        return self.first_frame.shape[1], self.first_frame.shape[0]


def _too_long_message(name: str, num_frames: int | str, max_frames: int) -> str:
    return (
        f"{name} has {num_frames} frames; this app tracks at most {max_frames}. Trim the video, or start the app with "
        f"a larger limit (lorat-app --max-frames N)."
    )


def open_video(path: str | os.PathLike, max_frames: int, name: str | None = None) -> VideoSummary:
    """Check an uploaded video and decode its first frame only. Raises `AppInputError` with a message for the page."""
    path = os.fspath(path)
    name = name or Path(path).name
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise AppInputError(f"{name} is not a video file this app reads ({', '.join(VIDEO_SUFFIXES)}).")
    if os.path.getsize(path) == 0:
        raise AppInputError(f"{name} is empty (0 bytes): upload the video again.")
    try:
        with VideoReader(path) as reader:
            first_frame, info = reader.first_frame, reader.info
    except VideoSourceError as error:
        raise AppInputError(
            f"Cannot read {name}: it is corrupt, not a video, or uses a codec this OpenCV build cannot decode. Convert "
            "it to H.264 MP4 (e.g. `ffmpeg -i in.mov out.mp4`) and upload it again."
            if "cannot open" in str(error).lower()
            else str(error).replace(repr(path), name)
        ) from None
    if info.num_frames is not None and info.num_frames > max_frames:
        raise AppInputError(_too_long_message(name, info.num_frames, max_frames))
    return VideoSummary(path, name, first_frame, info.fps, info.num_frames)


def parse_boxes(text: str | None, size_wh: tuple[int, int] | None = None) -> np.ndarray:
    """`"x, y, w, h"` lines (commas or spaces; blank lines ignored) -> `(N, 4)` float64 boxes, checked against the
    first frame's size when given. Raises `AppInputError` naming the line at fault."""
    boxes = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        try:
            values = [float(part) for part in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise AppInputError(f"Target line {number} ({line.strip()!r}) is not four numbers `x, y, w, h`.")
        boxes.append(values)
    if not boxes:
        raise AppInputError(NO_BOX_MESSAGE)
    boxes = np.asarray(boxes, dtype=np.float64)
    if size_wh is not None:
        for number, box in enumerate(boxes, start=1):
            try:
                check_init_box(to_xyxy(box, "xywh"), size_wh, "xywh")
            except ValueError as error:
                raise AppInputError(f"Target {number}: {error}") from None
    return boxes


def target_ids(count: int) -> list[str]:
    return [f"target-{index}" for index in range(1, count + 1)]


def draw_targets(frame: np.ndarray, boxes_xywh: np.ndarray, scores: list[float] | None = None) -> np.ndarray:
    """The frame with each target's box (and score) drawn in its own colour, labelled 1, 2, ..."""
    canvas = frame
    for index, box in enumerate(boxes_xywh):
        score = None if scores is None else scores[index]
        label = str(index + 1) if len(boxes_xywh) > 1 else None
        color = TARGET_COLORS[index % len(TARGET_COLORS)]
        canvas = draw_box(canvas, to_xyxy(box, "xywh"), score, label=label, color=color)
    return canvas if canvas is not frame else frame.copy()


@dataclass
class TrackingOutputs:
    """What `track_to_files` wrote: the annotated video, a CSV and a JSON box file per target, the score plot."""

    video: Path
    box_files: list[Path]
    score_plot: Path
    num_frames: int
    cancelled: bool
    boxes: dict[str, list[np.ndarray]] = field(repr=False)
    scores: dict[str, list[float]] = field(repr=False)

    @property
    def files(self) -> list[Path]:
        return [self.video, *self.box_files, self.score_plot]


def box_file_stem(target: str, num_targets: int) -> str:
    return "boxes" if num_targets == 1 else f"boxes-{target}"


def plot_scores(scores: dict[str, list[float]], path: Path) -> Path:
    """Per-frame score of each target, one line each, written to `path` (PNG) atomically."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .file_utils import write_text_atomic

    figure = Figure(figsize=(8, 2.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, (target, values) in enumerate(scores.items()):
        color = np.asarray(TARGET_COLORS[index % len(TARGET_COLORS)]) / 255.0 * 0.8
        axes.plot(np.arange(len(values)), values, color=color, label=target, linewidth=1.5)
    axes.set(xlabel="frame", ylabel="score", ylim=(0, 1.02), title="Tracker confidence per frame")
    axes.grid(alpha=0.3)
    if len(scores) > 1:
        axes.legend(loc="lower left", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_text_atomic(path, buffer.getvalue())


def track_to_files(
    tracker,
    video: VideoSummary,
    boxes_xywh: np.ndarray,
    output_dir: str | os.PathLike,
    max_frames: int,
    should_stop: Callable[[], bool] = lambda: False,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> TrackingOutputs:
    """Track every target of `video` from its first-frame box, streaming frames, and write the outputs.

    Args:
        tracker: a `LoraTracker` (its state is replaced).
        video: the checked upload (`open_video`).
        boxes_xywh: `(N, 4)` first-frame boxes, pixels.
        output_dir: an existing folder for `tracked.webm`, `boxes*.csv` / `boxes*.json` and `scores.png`.
        max_frames: refuse videos with more frames (`AppInputError`); the container's count is only an estimate.
        should_stop: polled after each frame; True stops there and keeps the frames tracked so far.
        on_frame: called with `(frames done, total or None)` after each frame.
    """
    from .commands.track import box_rows, write_box_file

    output_dir = Path(output_dir)
    ids = target_ids(len(boxes_xywh))
    boxes = {target: [] for target in ids}
    scores = {target: [] for target in ids}
    total = video.num_frames
    writer = VideoWriter(output_dir / ANNOTATED_VIDEO_NAME, fps=video.fps or DEFAULT_FPS, overwrite=True)
    cancelled = False
    try:
        frames = tracker.track_video(video.path, boxes=boxes_xywh, object_ids=ids, box_format="xywh")
        for item in frames:
            if item.frame_index >= max_frames:
                frames.close()
                raise AppInputError(_too_long_message(video.name, f"more than {max_frames}", max_frames))
            for target in ids:
                box, score = item.objects[target]
                boxes[target].append(np.asarray(box, dtype=np.float64))
                scores[target].append(float(score))
            drawn = np.stack([boxes[target][-1] for target in ids])
            writer.write(draw_targets(item.frame, drawn, [scores[target][-1] for target in ids]))
            if on_frame is not None:
                on_frame(item.frame_index + 1, total)
            if should_stop():
                cancelled = True
                frames.close()
                break
    except BaseException:
        writer.abort()
        raise
    video_path = writer.close()
    box_files = []
    for target in ids:
        rows = box_rows(
            [(index, box, score) for index, (box, score) in enumerate(zip(boxes[target], scores[target], strict=True))]
        )
        for suffix in (".csv", ".json"):
            path = output_dir / f"{box_file_stem(target, len(ids))}{suffix}"
            write_box_file(path, rows, "xywh", video.name)
            box_files.append(path)
    plot = plot_scores(scores, output_dir / SCORE_PLOT_NAME)
    return TrackingOutputs(video_path, box_files, plot, len(scores[ids[0]]), cancelled, boxes, scores)


def write_demo_clip(folder: str | os.PathLike, num_frames: int = DEMO_CLIP_FRAMES, seed: int = DEMO_CLIP_SEED) -> Path:
    """A held-out synthetic clip of the kind the embedded tracker was trained on, as `folder/demo-clip.mp4`."""
    from .assets import check_held_out_seed, demo_video_config
    from .data.synthetic import SyntheticVideo

    check_held_out_seed(seed)
    video = SyntheticVideo(demo_video_config(num_frames=num_frames), seed)
    path = Path(folder) / "demo-clip.mp4"
    with VideoWriter(path, fps=DEFAULT_FPS, overwrite=True) as writer:
        for t in range(video.num_frames):
            writer.write(video.render_frame(t))
    return path


# --------------------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------------------

# Runs once in the page: dragging on the first frame draws a rectangle and appends its `x, y, w, h` (pixels of the
# video) as a line of the Targets textbox, which Gradio then sees as typed input.
BOX_DRAWING_JS = r"""
() => {
  let drag = null;
  const frameImage = (target) => target.closest && target.closest('#first-frame') && target.tagName === 'IMG'
    ? target : null;
  // the image is drawn with object-fit: contain, so map through the letterboxed content rectangle
  const toPixels = (img, clientX, clientY) => {
    const rect = img.getBoundingClientRect();
    const scale = Math.min(rect.width / img.naturalWidth, rect.height / img.naturalHeight);
    const left = rect.left + (rect.width - img.naturalWidth * scale) / 2;
    const top = rect.top + (rect.height - img.naturalHeight * scale) / 2;
    const x = Math.min(Math.max((clientX - left) / scale, 0), img.naturalWidth);
    const y = Math.min(Math.max((clientY - top) / scale, 0), img.naturalHeight);
    return [x, y];
  };
  document.addEventListener('mousedown', (event) => {
    const img = frameImage(event.target);
    if (!img || event.button !== 0) return;
    event.preventDefault();
    const overlay = document.createElement('div');
    overlay.id = 'box-drawing';
    overlay.style.cssText = 'position:fixed;border:2px dashed #00e000;background:rgba(0,224,0,0.12);' +
      'pointer-events:none;z-index:1000;left:' + event.clientX + 'px;top:' + event.clientY + 'px;width:0;height:0';
    document.body.appendChild(overlay);
    drag = {img, overlay, x0: event.clientX, y0: event.clientY};
  }, true);
  document.addEventListener('mousemove', (event) => {
    if (!drag) return;
    const s = drag.overlay.style;
    s.left = Math.min(drag.x0, event.clientX) + 'px';
    s.top = Math.min(drag.y0, event.clientY) + 'px';
    s.width = Math.abs(event.clientX - drag.x0) + 'px';
    s.height = Math.abs(event.clientY - drag.y0) + 'px';
  }, true);
  document.addEventListener('mouseup', (event) => {
    if (!drag) return;
    const {img, overlay, x0, y0} = drag;
    drag = null;
    overlay.remove();
    const [ax, ay] = toPixels(img, x0, y0);
    const [bx, by] = toPixels(img, event.clientX, event.clientY);
    const w = Math.abs(bx - ax), h = Math.abs(by - ay);
    if (w < 2 || h < 2) return;
    const line = [Math.min(ax, bx), Math.min(ay, by), w, h].map((v) => v.toFixed(1)).join(', ');
    const box = document.querySelector('#targets textarea');
    const text = box.value.trim();
    const setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set;
    setter.call(box, text ? text + '\n' + line : line);
    box.dispatchEvent(new Event('input', {bubbles: true}));
    box.dispatchEvent(new Event('change', {bubbles: true}));
  }, true);
}
"""

PAGE_CSS = """
#first-frame img { cursor: crosshair; user-select: none; -webkit-user-drag: none; }
#message p { font-size: 1.05em; }
"""

INSTRUCTIONS = """# LoRAT tracker
1. Upload a video, or press **Use the demo clip**.
2. Drag a box around each target on the first frame (or type `x, y, w, h` lines in **Targets**).
3. Press **Track**. The annotated video, the score plot and the boxes (CSV, JSON) appear below.
"""


@dataclass
class _Session:
    """Per-browser-session state kept on the server: the checked video and the cancel flag of its run."""

    video: VideoSummary | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


def build_app(
    tracker=None,
    model_name: str | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    work_dir: str | os.PathLike | None = None,
):
    """The Gradio page (a `gr.Blocks`). `tracker`: a `LoraTracker` whose model every run shares (None: the embedded
    tracker); `work_dir`: where uploads' outputs and the demo clip are written (None: a new temporary folder)."""
    import gradio as gr

    from .tracking import LoraTracker

    if tracker is None:
        tracker = LoraTracker.from_pretrained()
    work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="lorat-app-"))
    sessions: dict[str, _Session] = {}
    demo_clip: list[Path] = []
    lock = threading.Lock()

    def session(request: gr.Request) -> _Session:
        with lock:
            return sessions.setdefault(request.session_hash or "default", _Session())

    def message(text: str, kind: str = "info") -> str:
        return {"error": "**Error:** ", "info": ""}[kind] + text

    def load(path: str | None, name: str | None, request: gr.Request):
        """-> (first frame, targets text, message, upload): a refused file is taken off the upload area."""
        state = session(request)
        state.video = None
        if path is None:
            return None, "", "", gr.update()
        try:
            state.video = open_video(path, max_frames, name=name)
        except AppInputError as error:
            return None, "", message(str(error), "error"), None
        video = state.video
        count = f"{video.num_frames} frames" if video.num_frames is not None else "frame count unknown"
        width, height = video.size_wh
        summary = f"{video.name}: {width}x{height}, {count}. Drag a box around each target on the first frame."
        return video.first_frame, "", summary, gr.update()

    def on_upload(file, request: gr.Request):
        if file is None:
            return load(None, None, request)
        path = file if isinstance(file, str) else file.name
        return load(path, Path(path).name, request)

    def on_demo(request: gr.Request):
        with lock:
            if not demo_clip:
                demo_clip.append(write_demo_clip(work_dir))
        return load(str(demo_clip[0]), "the demo clip", request)

    def on_targets(text: str, request: gr.Request):
        video = session(request).video
        if video is None:
            return gr.update(), ""
        try:
            boxes = parse_boxes(text, video.size_wh)
        except AppInputError as error:
            if not (text or "").strip():
                return video.first_frame, ""
            return video.first_frame, message(str(error), "error")
        plural = "s" if len(boxes) > 1 else ""
        return draw_targets(video.first_frame, boxes), f"{len(boxes)} target{plural} marked. Press Track."

    def on_track(text: str, request: gr.Request, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
        state = session(request)
        nothing = (None, None, None)
        if state.video is None:
            return (message("Upload a video (or use the demo clip) first.", "error"), *nothing)
        try:
            boxes = parse_boxes(text, state.video.size_wh)
        except AppInputError as error:
            return (message(str(error), "error"), *nothing)
        state.cancel.clear()
        run_tracker = LoraTracker(tracker.backend, tracker.image_processor)  # shares the weights, not the state
        output_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work_dir))
        progress(0, desc="Tracking")

        def on_frame(done: int, total: int | None) -> None:
            progress((done, total) if total else None, desc=f"Tracking: frame {done}", unit="frames")

        try:
            outputs = track_to_files(
                run_tracker, state.video, boxes, output_dir, max_frames, state.cancel.is_set, on_frame
            )
        except AppInputError as error:
            return (message(str(error), "error"), *nothing)
        except (VideoSourceError, OSError) as error:
            return (message(f"Tracking stopped: {error}", "error"), *nothing)
        done = f"Cancelled: kept the {outputs.num_frames} frames tracked so far." if outputs.cancelled else "Done:"
        summary = f"{done} {outputs.num_frames} frames, {len(boxes)} target{'s' if len(boxes) > 1 else ''}."
        return (
            summary,
            str(outputs.video),
            str(outputs.score_plot),
            [str(path) for path in [outputs.video, *outputs.box_files]],
        )

    def on_cancel(request: gr.Request):
        session(request).cancel.set()
        return "Cancelling..."

    with gr.Blocks(title="LoRAT tracker", analytics_enabled=False) as page:
        gr.Markdown(INSTRUCTIONS + (f"\nModel: `{model_name}`" if model_name else ""))
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Your video", file_types=list(VIDEO_SUFFIXES), elem_id="video-upload")
                demo_button = gr.Button("Use the demo clip", elem_id="demo-clip")
                targets = gr.Textbox(
                    label="Targets (x, y, w, h in pixels, one line per target)",
                    lines=3,
                    placeholder="Drag on the first frame, or type e.g. 120, 80, 60, 40",
                    elem_id="targets",
                )
                with gr.Row():
                    clear_button = gr.Button("Clear targets", elem_id="clear-targets")
                    track_button = gr.Button("Track", variant="primary", elem_id="track")
                    cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel")
                status = gr.Markdown("", elem_id="message")
            with gr.Column(scale=2):
                first_frame = gr.Image(
                    label="First frame: drag a box around each target",
                    type="numpy",
                    interactive=False,
                    height=420,
                    elem_id="first-frame",
                )
        with gr.Row():
            result_video = gr.Video(label="Tracked video", elem_id="result-video", interactive=False)
            score_plot = gr.Image(label="Scores", type="filepath", elem_id="score-plot", interactive=False)
        downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads", interactive=False)

        loaded = [first_frame, targets, status, upload]
        upload.upload(on_upload, inputs=upload, outputs=loaded)
        upload.clear(on_upload, inputs=upload, outputs=loaded)
        demo_button.click(on_demo, outputs=loaded)
        targets.change(on_targets, inputs=targets, outputs=[first_frame, status])
        clear_button.click(lambda: "", outputs=targets)
        track_button.click(on_track, inputs=targets, outputs=[status, result_video, score_plot, downloads])
        cancel_button.click(on_cancel, outputs=status)
    return page


def launch_kwargs(port: int, host: str) -> dict:
    """`Blocks.launch` settings for an offline page: local fonts only, the drawing script, no share link."""
    import gradio as gr

    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    return dict(
        server_name=host,
        server_port=port,
        share=False,
        theme=theme,
        css=PAGE_CSS,
        js=BOX_DRAWING_JS,
        footer_links=[],
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
    )


def build_parser() -> argparse.ArgumentParser:
    from .commands import add_tracker_arguments

    parser = argparse.ArgumentParser(prog=PROG, description="Track objects in your own video from a web page.")
    add_tracker_arguments(parser)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument(
        "--max-frames",
        type=int,
        default=DEFAULT_MAX_FRAMES,
        help=f"longest video accepted (default {DEFAULT_MAX_FRAMES})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.max_frames < 1:
        print(f"{PROG}: error: --max-frames must be at least 1, got {args.max_frames}.", file=sys.stderr)
        return 2
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"{PROG}: error: the web app needs Gradio: pip install 'lorat_hf[app]'", file=sys.stderr)
        return 2
    from .commands import load_tracker_from_arguments

    tracker = load_tracker_from_arguments(args, PROG)
    if tracker is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="lorat-app-") as work_dir:
        page = build_app(
            tracker, model_name=args.model or "embedded demo tracker", max_frames=args.max_frames, work_dir=work_dir
        )
        page.queue().launch(**launch_kwargs(args.port, args.host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
