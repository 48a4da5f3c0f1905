"""Video input/output with OpenCV: frames from video files, frame folders, webcams and streams; annotated videos out.

Every frame this module returns is an `(H, W, 3)` uint8 **RGB** numpy array (OpenCV decodes BGR; the conversion is
done here, once). `VideoWriter` takes RGB frames too.

    with VideoReader("clip.mp4") as reader:          # or a folder of frames, 0 (webcam), "rtsp://..."
        for frame in reader:
            ...
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from .file_utils import move_into_place, temporary_sibling

if TYPE_CHECKING:
    import cv2

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# output suffix -> FourCC that the stock OpenCV wheels can encode without extra codecs
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".webm": "VP80"}
DEFAULT_FPS = 30.0


FrameInput = np.ndarray | torch.Tensor | Image.Image


def to_rgb_array(frame: FrameInput) -> np.ndarray:
    """A frame as an `(H, W, 3)` uint8 RGB numpy array.

    Accepts `(H, W, 3)` uint8 numpy arrays (taken as RGB: convert OpenCV's BGR with `cv2.cvtColor` first),
    PIL images (any mode, converted to RGB) and torch uint8 tensors `(3, H, W)` or `(H, W, 3)`.
    """
    if isinstance(frame, Image.Image):
        return np.array(frame.convert("RGB"))  # a writable copy
    if isinstance(frame, torch.Tensor):
        if frame.dtype != torch.uint8:
            raise ValueError(
                f"Torch frames must be uint8 (0..255), got {frame.dtype}; multiply by 255 and cast first."
            )
        if frame.ndim == 3 and frame.shape[0] == 3 and frame.shape[-1] != 3:
            frame = frame.permute(1, 2, 0)
        frame = frame.cpu().numpy()
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"A frame must be a numpy array, a PIL image or a torch tensor, got {type(frame).__name__}.")
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"A frame must be (height, width, 3) RGB, got shape {frame.shape}.")
    if frame.dtype != np.uint8:
        raise ValueError(f"A frame must be uint8 (0..255), got {frame.dtype}.")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"The frame is empty (shape {frame.shape}).")
    return frame


def frame_to_rgb(frame: FrameInput) -> np.ndarray:
    """A frame as a writable `(H, W, 3)` uint8 RGB array (see `to_rgb_array` for the accepted inputs).

    Read-only arrays (PIL views, `np.frombuffer`) are copied: torch warns when a crop wraps them.
    """
    rgb = to_rgb_array(frame)
    return rgb if rgb.flags.writeable else rgb.copy()


class VideoSourceError(ValueError):
    """A video source that cannot be opened or read (missing path, undecodable file, no frames, ...)."""


class IncompleteVideoWarning(UserWarning):
    """A video file ended before the frame count its container states (damaged or truncated file)."""


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a source before reading it all.

    Args:
        kind: `"file"`, `"folder"`, `"camera"` or `"stream"`.
        width, height: size of the first frame in pixels.
        fps: frames per second reported by the container (None for folders, and when OpenCV reports 0).
        num_frames: frame count (exact for folders, the container's estimate for files, None for cameras/streams).
    """

    kind: str
    width: int
    height: int
    fps: float | None
    num_frames: int | None


def natural_key(name: str) -> list:
    """Sort key that orders `frame2.jpg` before `frame10.jpg`."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """Image files of a frame folder (see `IMAGE_EXTENSIONS`) in natural order (`2.jpg` before `10.jpg`)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def parse_source(source: str | int | os.PathLike) -> str | int:
    """Normalise a user-given source: an existing path stays a path, a bare integer (`0`, `"1"`) is a camera index,
    `scheme://...` is a stream URL. Raises `VideoSourceError` for a path that does not exist."""
    if isinstance(source, int):
        return source
    text = os.fspath(source)
    if os.path.exists(text):
        return text
    if text.isdigit():
        return int(text)
    if "://" in text:
        return text
    raise VideoSourceError(
        f"No such video file or frame folder: {text!r}. Pass an existing path, a camera index such as 0, or a "
        "stream URL such as rtsp://host/stream."
    )


class FrameNotFoundError(VideoSourceError, FileNotFoundError):
    """A frame file that does not exist (both a `VideoSourceError` and a `FileNotFoundError`)."""


JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
REDUCTIONS = (1, 2, 4, 8)


def is_jpeg(path: str | os.PathLike) -> bool:
    """True when the file name has a JPEG suffix (the only format with reduced-size decoding)."""
    return os.fspath(path).lower().endswith(JPEG_SUFFIXES)


@dataclass
class DecodedFrame:
    """A frame decoded at `1 / reduction` of its size.

    Attributes:
        bgr: `(h, w, 3)` uint8 pixels in OpenCV's BGR order (crops swap channels on their few pixels only).
        reduction: 1, 2, 4 or 8; decoded pixel `u` covers frame pixels `[reduction * u, reduction * (u + 1))`.
        path: the file it came from.
    """

    bgr: np.ndarray
    reduction: int
    path: str
    _mean_rgb: torch.Tensor | None = field(default=None, init=False, repr=False)

    @property
    def size_wh(self) -> tuple[int, int]:
        """Size of the decoded pixels `(w, h)`."""
        return int(self.bgr.shape[1]), int(self.bgr.shape[0])

    @property
    def mean_rgb(self) -> torch.Tensor:
        """Per-channel float32 RGB mean `(3,)` of the decoded pixels (the padding colour)."""
        import cv2

        if self._mean_rgb is None:
            blue, green, red, _ = cv2.mean(self.bgr)
            self._mean_rgb = torch.tensor((red, green, blue), dtype=torch.float32)
        return self._mean_rgb


def decode_frame(
    path: str | os.PathLike, reduction: int = 1, frame_size_wh: Sequence[int] | None = None
) -> DecodedFrame:
    """Decode an image file with OpenCV, at `1 / reduction` size when it is a JPEG (else in full).

    With `frame_size_wh` (the size the sequence table gives), a reduced decode whose size does not match
    `ceil(size / reduction)` is redone in full, so the returned pixels always map exactly onto frame coordinates.
    Raises `FrameNotFoundError` (a `FileNotFoundError`) or `VideoSourceError` (a `ValueError`) naming the file when
    it is missing or cannot be decoded.
    """
    import cv2

    path = os.fspath(path)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction}.")
    if reduction > 1 and not is_jpeg(path):
        reduction = 1
    flags = {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }[reduction]
    pixels = cv2.imread(path, flags)
    if pixels is None:
        if not os.path.exists(path):
            raise FrameNotFoundError(f"Frame {path} does not exist.")
        raise VideoSourceError(f"Frame {path} could not be decoded as an image (corrupt or unsupported format).")
    if reduction > 1 and frame_size_wh is not None:
        width, height = int(frame_size_wh[0]), int(frame_size_wh[1])
        if pixels.shape[:2] != (-(-height // reduction), -(-width // reduction)):
            return decode_frame(path, 1)
    return DecodedFrame(pixels, reduction, path)


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's `(H, W, 3)` BGR pixels as RGB (a new array)."""
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as `(H, W, 3)` uint8 RGB (grey and alpha images are converted).

    Raises `FrameNotFoundError` or `VideoSourceError` naming the file when it is missing or cannot be decoded.
    """
    return bgr_to_rgb(decode_frame(path).bgr)


class VideoReader:
    """Iterate the frames of a video file, a folder of frames, a webcam or a stream as RGB uint8 arrays.

    The source is opened and its first frame decoded in the constructor, so a missing path, an undecodable file or an
    empty video raises `VideoSourceError` right away, and `info` (size, fps, frame count) is known before iterating.

    Args:
        source: a video file, a folder of images (natural order), a camera index (`0`) or a stream URL.
        max_frames: stop after this many frames (None: all).
    """

    def __init__(self, source: str | int | os.PathLike, max_frames: int | None = None):
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}.")
        self.source = parse_source(source)
        self.max_frames = max_frames
        self._capture: cv2.VideoCapture | None = None
        self._files: list[Path] | None = None
        self._first_frame: np.ndarray | None = None
        self._consumed = False
        self.frames_read = 0
        self.missing_frames = 0
        if isinstance(self.source, str) and os.path.isdir(self.source):
            self._files = list_frame_files(self.source)
            if not self._files:
                raise VideoSourceError(
                    f"The folder {self.source!r} holds no image frames (looked for {', '.join(IMAGE_EXTENSIONS)})."
                )
            self._first_frame = read_image_rgb(self._files[0])
            kind, fps, count = "folder", None, len(self._files)
        else:
            import cv2

            kind = "camera" if isinstance(self.source, int) else ("stream" if "://" in self.source else "file")
            self._capture = cv2.VideoCapture(self.source)
            if not self._capture.isOpened():
                raise VideoSourceError(self._open_error(kind))
            ok, frame = self._capture.read()
            if not ok or frame is None:
                self._capture.release()
                raise VideoSourceError(
                    f"{self.source!r} contains no readable frames (an empty or corrupt video)."
                    if kind == "file"
                    else f"No frame could be read from {kind} {self.source!r}."
                )
            self._first_frame = bgr_to_rgb(frame)
            reported_fps = self._capture.get(cv2.CAP_PROP_FPS)
            fps = float(reported_fps) if reported_fps and np.isfinite(reported_fps) and reported_fps > 0 else None
            reported_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
            count = reported_count if kind == "file" and reported_count > 0 else None
        if count is not None and max_frames is not None:
            count = min(count, max_frames)
        height, width = self._first_frame.shape[:2]
        self.info = VideoInfo(kind=kind, width=width, height=height, fps=fps, num_frames=count)

    def _open_error(self, kind: str) -> str:
        if kind == "file":
            return (
                f"OpenCV cannot open the video file {self.source!r}: it is empty, corrupt, not a video, or in a "
                "format/codec this OpenCV build cannot decode. Convert it (e.g. to H.264 mp4) or extract its frames "
                "into a folder."
            )
        if kind == "camera":
            return f"Cannot open camera {self.source}; check that it is connected and not used by another program."
        return f"Cannot open the stream {self.source!r}; check the URL and that the stream is reachable."

    @property
    def first_frame(self) -> np.ndarray:
        """The first frame `(H, W, 3)` RGB uint8 (decoded when the reader was opened)."""
        return self._first_frame

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._consumed:
            raise RuntimeError("A VideoReader can be iterated once; open a new one to read the video again.")
        self._consumed = True
        limit = self.max_frames
        try:
            yield self._first_frame
            self.frames_read = 1
            if self._files is not None:
                for path in self._files[1:]:
                    if limit is not None and self.frames_read >= limit:
                        return
                    yield read_image_rgb(path)
                    self.frames_read += 1
            else:
                while limit is None or self.frames_read < limit:
                    ok, frame = self._capture.read()
                    if not ok or frame is None:
                        self._check_complete()
                        return
                    yield bgr_to_rgb(frame)
                    self.frames_read += 1
        finally:
            self.close()

    def _check_complete(self) -> None:
        """At the end of a file: a shortfall against the container's frame count sets `missing_frames` and warns."""
        expected = self.info.num_frames
        if self.info.kind != "file" or expected is None or self.frames_read >= expected:
            return
        self.missing_frames = expected - self.frames_read
        warnings.warn(IncompleteVideoWarning(self.incomplete_message), stacklevel=3)

    @property
    def incomplete_message(self) -> str:
        """What a shortfall means, in words (empty when the whole video was read)."""
        if not self.missing_frames:
            return ""
        expected = self.frames_read + self.missing_frames
        return (
            f"{self.source!r} ended after {self.frames_read} of the {expected} frames its container states: the file "
            f"is damaged or truncated, and frames {self.frames_read}..{expected - 1} could not be decoded."
        )

    def __len__(self) -> int:
        if self.info.num_frames is None:
            raise TypeError(f"The number of frames of {self.info.kind} {self.source!r} is not known in advance.")
        return self.info.num_frames

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_video_frames(source: str | int | os.PathLike, max_frames: int | None = None) -> list[np.ndarray]:
    """All frames (up to `max_frames`) of a video file or frame folder, as a list of `(H, W, 3)` RGB uint8 arrays."""
    with VideoReader(source, max_frames=max_frames) as reader:
        if reader.info.kind in ("camera", "stream") and max_frames is None:
            raise ValueError(f"Reading a whole {reader.info.kind} into memory never ends; pass max_frames.")
        return list(reader)


class VideoWriter:
    """Write RGB frames to a video file, atomically: frames go to a temporary file next to `path`, which replaces
    `path` only on `close()`. The frame size is taken from the first frame.

    Args:
        path: output file; the suffix picks the codec (see `VIDEO_CODECS`: `.mp4`/`.mov`/`.m4v` use mp4v,
            `.avi`/`.mkv` use MJPG, `.webm` VP8, which browsers play).
        fps: frames per second of the output.
        overwrite: replace an existing file (otherwise `FileExistsError`).
    """

    def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FPS, overwrite: bool = False):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_CODECS:
            raise ValueError(
                f"Cannot write video {str(self.path)!r}: unsupported suffix {suffix or '(none)'}; use one of "
                f"{', '.join(VIDEO_CODECS)}."
            )
        if self.path.exists() and not overwrite:
            raise FileExistsError(
                f"{str(self.path)!r} already exists; pass overwrite=True (--overwrite) to replace it."
            )
        if not self.path.parent.exists():
            raise FileNotFoundError(f"The folder of the output video {str(self.path.parent)!r} does not exist.")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}.")
        self.fps = float(fps)
        self.num_frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._temporary = temporary_sibling(self.path, suffix=suffix)  # the suffix tells OpenCV the container

    def write(self, frame_rgb: np.ndarray) -> None:
        """Append one `(H, W, 3)` uint8 RGB frame (every frame must have the first frame's size)."""
        if self._temporary is None:
            raise RuntimeError("This VideoWriter is closed.")
        frame_rgb = np.asarray(frame_rgb)
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"Frames must be (height, width, 3) uint8 RGB, got {frame_rgb.shape} {frame_rgb.dtype}.")
        import cv2

        height, width = frame_rgb.shape[:2]
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self._temporary), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                self.abort()
                raise OSError(f"OpenCV cannot encode {self.path.suffix} video here; try an .avi output.")
            self._size = (width, height)
        elif (width, height) != self._size:
            raise ValueError(
                f"Frame size {width}x{height} differs from the first frame's {self._size[0]}x{self._size[1]}."
            )
        self._writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
        self.num_frames += 1

    def close(self) -> Path:
        """Finish the file and move it to `path`; returns `path`. A writer that received no frame writes nothing."""
        if self._temporary is None:
            return self.path
        if self._writer is None:
            self.abort()
            raise ValueError(f"No frame was written; {str(self.path)!r} was not created.")
        self._writer.release()
        move_into_place(self._temporary, self.path)
        self._temporary = None
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; `path` is left untouched."""
        if self._writer is not None:
            self._writer.release()
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def draw_box(
    frame_rgb: np.ndarray,
    box_xyxy: Sequence[float] | np.ndarray,
    score: float | None = None,
    label: str | None = None,
    color: tuple[int, int, int] = (0, 255, 0),
    thickness: int = 2,
) -> np.ndarray:
    """A copy of an RGB frame with a box (pixels, continuous `xyxy`) and an optional `"label score"` caption drawn."""
    import cv2

    canvas = np.ascontiguousarray(frame_rgb).copy()
    box = np.asarray(box_xyxy, dtype=np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        return canvas
    x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
    x2, y2 = int(np.ceil(box[2])) - 1, int(np.ceil(box[3])) - 1
    cv2.rectangle(canvas, (x1, y1), (max(x1, x2), max(y1, y2)), color, thickness, lineType=cv2.LINE_8)
    caption = " ".join(part for part in (label, None if score is None else f"{score:.2f}") if part)
    if caption:
        scale = max(0.4, min(canvas.shape[:2]) / 600.0)
        (text_w, text_h), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y1 - text_h - baseline - 2 if y1 - text_h - baseline - 2 >= 0 else y1 + 2
        cv2.rectangle(canvas, (x1, top), (x1 + text_w + 4, top + text_h + baseline + 2), color, cv2.FILLED)
        cv2.putText(
            canvas, caption, (x1 + 2, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return canvas


__all__ = [
    "DecodedFrame",
    "FrameNotFoundError",
    "IMAGE_EXTENSIONS",
    "JPEG_SUFFIXES",
    "REDUCTIONS",
    "IncompleteVideoWarning",
    "VIDEO_CODECS",
    "VideoInfo",
    "VideoReader",
    "VideoSourceError",
    "VideoWriter",
    "bgr_to_rgb",
    "decode_frame",
    "draw_box",
    "is_jpeg",
    "list_frame_files",
    "parse_source",
    "read_image_rgb",
    "read_video_frames",
]
