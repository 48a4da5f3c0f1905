"""lorat_hf: LoRAT single-object tracking on Hugging Face transformers, peft and accelerate.

Importing the package registers `LoraTrackerConfig` / `LoraTrackerModel` / `LoraTrackerImageProcessor` /
`LoraTrackerProcessor` with the transformers Auto classes and the `"video-object-tracking"` pipeline task.
"""

__version__ = "0.1.0.dev0"

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from .assets import default_model_path
from .configuration_lora_tracker import VARIANTS, LoraTrackerConfig
from .configuration_loratv2 import LORATV2_VARIANTS, Loratv2Config
from .image_processing_lora_tracker import LoraTrackerImageProcessor
from .modeling_lora_tracker import LoraTrackerModel, LoraTrackerOutput, LoraTrackerPreTrainedModel
from .modeling_loratv2 import Loratv2KVCache, Loratv2Model, Loratv2Output, Loratv2PreTrainedModel
from .pipeline_video_object_tracking import VideoObjectTrackingPipeline, register_pipeline
from .processing_lora_tracker import (
    LoraTrackerInferenceSession,
    LoraTrackerProcessor,
    LoraTrackerVideoOutput,
    propagate_in_video_iterator,
    track_frame,
)
from .tracking import LoraTracker, TargetState, TrackedFrame, TrackResult, initialize_targets, track_step

AutoConfig.register(LoraTrackerConfig.model_type, LoraTrackerConfig, exist_ok=True)
AutoModel.register(LoraTrackerConfig, LoraTrackerModel, exist_ok=True)
AutoConfig.register(Loratv2Config.model_type, Loratv2Config, exist_ok=True)
AutoModel.register(Loratv2Config, Loratv2Model, exist_ok=True)
AutoImageProcessor.register(
    LoraTrackerConfig, image_processor_classes={"pil": LoraTrackerImageProcessor}, exist_ok=True
)
AutoProcessor.register(LoraTrackerConfig, LoraTrackerProcessor, exist_ok=True)
register_pipeline()

# Names whose modules pull in peft / accelerate / datasets / OpenCV load on first use (PEP 562).
_LAZY_NAMES = {
    "add_adapters": ".adapters",
    "count_parameters": ".adapters",
    "get_lora_config": ".adapters",
    "get_peft_config": ".adapters",
    "load_tracker_model": ".adapters",
    "save_adapter_folder": ".adapters",
    "add_stream_adapters": ".adapters_loratv2",
    "load_stream_adapters": ".adapters_loratv2",
    "save_stream_adapters": ".adapters_loratv2",
    "SyntheticVideoConfig": ".data",
    "TrackingSequence": ".data",
    "available_datasets": ".data",
    "generate_sequence": ".data",
    "load_sequences": ".data",
    "load_sequences_from": ".data",
    "synthetic_sequences_dataset": ".data",
    "EvaluationError": ".evaluation",
    "evaluate_sequences": ".evaluation",
    "run_evaluation": ".evaluation",
    "score_results": ".evaluation",
    "build_model_card": ".hub",
    "load_additional_adapter": ".hub",
    "push_tracker_to_hub": ".hub",
}


def __getattr__(name: str):
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY_NAMES[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))


__all__ = [
    "__version__",
    "VARIANTS",
    # model
    "LoraTrackerConfig",
    "LoraTrackerModel",
    "LoraTrackerOutput",
    "LoraTrackerPreTrainedModel",
    "LoraTrackerImageProcessor",
    "LORATV2_VARIANTS",
    "Loratv2Config",
    "Loratv2Model",
    "Loratv2Output",
    "Loratv2PreTrainedModel",
    "Loratv2KVCache",
    "add_stream_adapters",
    "load_stream_adapters",
    "save_stream_adapters",
    # adapters and Hub
    "add_adapters",
    "count_parameters",
    "get_lora_config",
    "get_peft_config",
    "load_tracker_model",
    "save_adapter_folder",
    "push_tracker_to_hub",
    "build_model_card",
    "load_additional_adapter",
    # tracking
    "default_model_path",
    "LoraTracker",
    "TargetState",
    "TrackResult",
    "TrackedFrame",
    "initialize_targets",
    "track_step",
    "LoraTrackerProcessor",
    "LoraTrackerInferenceSession",
    "LoraTrackerVideoOutput",
    "track_frame",
    "propagate_in_video_iterator",
    "VideoObjectTrackingPipeline",
    "register_pipeline",
    # data and evaluation
    "load_sequences",
    "load_sequences_from",
    "TrackingSequence",
    "available_datasets",
    "SyntheticVideoConfig",
    "generate_sequence",
    "synthetic_sequences_dataset",
    "evaluate_sequences",
    "score_results",
    "run_evaluation",
    "EvaluationError",
]
