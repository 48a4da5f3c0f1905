"""lorat_hf: LoRAT single-object tracking on Hugging Face transformers, peft and accelerate."""

__version__ = "0.1.0.dev0"

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from .adapters import add_adapters, count_parameters, get_lora_config, get_peft_config, load_tracker_model
from .configuration_lora_tracker import VARIANTS, LoraTrackerConfig
from .image_processing_lora_tracker import LoraTrackerImageProcessor
from .modeling_lora_tracker import LoraTrackerModel, LoraTrackerOutput, LoraTrackerPreTrainedModel

AutoConfig.register(LoraTrackerConfig.model_type, LoraTrackerConfig, exist_ok=True)
AutoModel.register(LoraTrackerConfig, LoraTrackerModel, exist_ok=True)
try:  # transformers >= 5.x: one class per backend
    AutoImageProcessor.register(
        LoraTrackerConfig, image_processor_classes={"pil": LoraTrackerImageProcessor}, exist_ok=True
    )
except TypeError:  # older signature
    AutoImageProcessor.register(LoraTrackerConfig, slow_image_processor_class=LoraTrackerImageProcessor, exist_ok=True)

__all__ = [
    "__version__",
    "VARIANTS",
    "LoraTrackerConfig",
    "LoraTrackerImageProcessor",
    "LoraTrackerModel",
    "LoraTrackerOutput",
    "LoraTrackerPreTrainedModel",
    "add_adapters",
    "count_parameters",
    "get_lora_config",
    "get_peft_config",
    "load_tracker_model",
]
