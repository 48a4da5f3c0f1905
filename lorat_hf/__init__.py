"""lorat_hf: LoRAT single-object tracking on Hugging Face transformers, peft and accelerate."""

__version__ = "0.1.0.dev0"

from transformers import AutoConfig, AutoModel

from .adapters import add_adapters, count_parameters, get_lora_config, get_peft_config, load_tracker_model
from .configuration_lora_tracker import VARIANTS, LoraTrackerConfig
from .modeling_lora_tracker import LoraTrackerModel, LoraTrackerOutput, LoraTrackerPreTrainedModel

AutoConfig.register(LoraTrackerConfig.model_type, LoraTrackerConfig, exist_ok=True)
AutoModel.register(LoraTrackerConfig, LoraTrackerModel, exist_ok=True)

__all__ = [
    "__version__",
    "VARIANTS",
    "LoraTrackerConfig",
    "LoraTrackerModel",
    "LoraTrackerOutput",
    "LoraTrackerPreTrainedModel",
    "add_adapters",
    "count_parameters",
    "get_lora_config",
    "get_peft_config",
    "load_tracker_model",
]
