"""Many videos through the engine at once: the loop behind `lorat-eval run` and training validation.

Up to `batch_size` videos advance together (one template step per new video, one batched search step per frame
index); a finished video leaves the batch and the next waiting one takes its place. Frames are read by a thread pool.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from ..video_io import FrameInput
from .backends import TrackingBackend, get_backend
from .state import TargetState
from .steps import initialize_targets, release_targets, track_step


@dataclass
class VideoJob:
    """One video to track from a first-frame box.

    Args:
        key: the caller's id of the video (distinct among jobs that run together).
        num_frames: number of frames to track, the first included.
        read_frame: `read_frame(index)` -> the frame (any `FrameInput`); called from worker threads.
        init_box_xyxy: `(4,)` first-frame box, frame pixels.
    """

    key: Hashable
    num_frames: int
    read_frame: Callable[[int], FrameInput]
    init_box_xyxy: np.ndarray


@dataclass
class TrackedVideo:
    """A finished `VideoJob`.

    Args:
        key: the job's key.
        boxes_xyxy: `(T, 4)` float64 boxes in frame pixels; row 0 is the initial box.
        scores: `(T,)` confidences (1.0 on frame 0).
        seconds: `(T,)` wall time per frame, the batched steps' time shared equally among their videos.
    """

    key: Hashable
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    seconds: np.ndarray


@dataclass
class _Running:
    job: VideoJob
    state: TargetState
    boxes: list[np.ndarray]
    scores: list[float] = field(default_factory=lambda: [1.0])
    seconds: list[float] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.boxes) >= self.job.num_frames

    def finish(self) -> TrackedVideo:
        return TrackedVideo(
            self.job.key, np.stack(self.boxes), np.asarray(self.scores, dtype=np.float64), np.asarray(self.seconds)
        )


def track_videos(
    model: nn.Module | TrackingBackend,
    processor,
    jobs: Iterable[VideoJob],
    batch_size: int = 8,
    num_workers: int = 4,
    on_frames: Callable[[int], None] | None = None,
) -> Iterator[TrackedVideo]:
    """Track every job, `batch_size` videos at a time, and yield each one as soon as it is finished.

    Args:
        model: a tracker model (in eval mode) or a `TrackingBackend`.
        processor: the image processor (None: built from the model's config).
        jobs: the videos; taken in order as places in the batch free up.
        batch_size: videos advanced together (targets per batched forward).
        num_workers: threads reading frames.
        on_frames: called with the number of frames just processed (for progress bars).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    backend = get_backend(model)
    processor = processor or backend.default_image_processor()
    pending = deque(jobs)
    running: list[_Running] = []
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        while pending or running:
            starting = [pending.popleft() for _ in range(min(batch_size - len(running), len(pending)))]
            if starting:
                begin = time.perf_counter()
                frames = list(pool.map(lambda job: job.read_frame(0), starting))
                boxes = np.stack([np.asarray(job.init_box_xyxy, dtype=np.float64) for job in starting])
                states = initialize_targets(backend, processor, frames, boxes, [job.key for job in starting])
                share = (time.perf_counter() - begin) / len(starting)
                running += [
                    _Running(job, state, [box], seconds=[share])
                    for job, state, box in zip(starting, states, boxes, strict=True)
                ]
                if on_frames:
                    on_frames(len(starting))
            stepping = [entry for entry in running if not entry.done]
            if stepping:
                begin = time.perf_counter()
                frames = list(pool.map(lambda entry: entry.job.read_frame(len(entry.boxes)), stepping))
                results = track_step(backend, processor, [entry.state for entry in stepping], frames)
                share = (time.perf_counter() - begin) / len(stepping)
                for entry, result in zip(stepping, results, strict=True):
                    entry.boxes.append(result.box_xyxy)
                    entry.scores.append(result.score)
                    entry.seconds.append(share)
                if on_frames:
                    on_frames(len(stepping))
            finished = [entry for entry in running if entry.done]
            release_targets(backend, [entry.state for entry in finished])
            running = [entry for entry in running if not entry.done]
            for entry in finished:
                yield entry.finish()


__all__ = ["VideoJob", "TrackedVideo", "track_videos"]
