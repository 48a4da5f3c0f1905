"""The tracking engine: per-target state, initialisation and the batched step, under every front door.

`LoraTracker` (`lorat_hf.tracking`), the Sam2Video-style session (`lorat_hf.engine.session`, created by
`LoraTrackerProcessor`), the `video-object-tracking` pipeline, `lorat-eval run` and training validation all run
`initialize_targets` / `track_step` (`steps`), through a `TrackingBackend` (`backends`) that runs a model family's
forward pieces. See docs/architecture.md for how a new model family or runtime plugs in.
"""

from .backends import (
    LoraTrackerBackend,
    TrackingBackend,
    get_backend,
    model_device_and_dtype,
    register_backend,
    registered_model_types,
    run_tracker_forward,
    tracker_config,
)
from .session import LoraTrackerInferenceSession, LoraTrackerVideoOutput, propagate_in_video_iterator, track_frame
from .state import TargetState, TrackResult
from .steps import (
    check_processor_matches,
    default_image_processor,
    initialize_targets,
    parse_compute_dtype,
    release_targets,
    resolve_autocast_dtype,
    resolve_device,
    rgb_frames,
    track_step,
)
from .videos import TrackedVideo, VideoJob, track_videos

__all__ = [
    "TargetState",
    "TrackResult",
    "TrackingBackend",
    "LoraTrackerBackend",
    "get_backend",
    "register_backend",
    "registered_model_types",
    "run_tracker_forward",
    "model_device_and_dtype",
    "tracker_config",
    "initialize_targets",
    "track_step",
    "release_targets",
    "check_processor_matches",
    "default_image_processor",
    "parse_compute_dtype",
    "resolve_autocast_dtype",
    "resolve_device",
    "rgb_frames",
    "LoraTrackerInferenceSession",
    "LoraTrackerVideoOutput",
    "track_frame",
    "propagate_in_video_iterator",
    "VideoJob",
    "TrackedVideo",
    "track_videos",
]
