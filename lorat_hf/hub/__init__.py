"""Publishing trackers on the Hugging Face Hub: model cards, upload folders, push, and multi-adapter loading.

Publishing goes through three steps, each usable alone:

1. `inspect_tracker_folder(folder)` (`hub/folders.py`) checks an adapter folder (`adapter_config.json`,
   `adapter_model.safetensors`, tracker `config.json`) or a merged model folder (`model.safetensors`, `config.json`)
   and reports every problem at once. A LoRATv2 folder holds one peft adapter per stream
   (`<stream>/adapter_config.json`, `<stream>/adapter_model.safetensors`) or merged weights.
2. `assemble_upload_folder(folder, output_dir, ...)` (`hub/upload.py`) builds a fresh folder from an allow-list:
   weights, configs, `preprocessor_config.json` (generated from the tracker config when absent), `train_config.json`,
   evaluation reports and plots, and a model card (`hub/cards.py`) written last (after peft's own card).
   Checkpoints, optimizer states, logs and `backbone/` copies are never copied.
3. `push_tracker_to_hub(folder_or_model, repo_id, ...)` (`hub/upload.py`) assembles into a temporary folder and
   uploads only that.

Adapter repos name their frozen DINOv2 by Hub id (`base_model`, and `base_model_name_or_path` in
`adapter_config.json`), so `LoraTracker.from_pretrained(repo_id)` downloads both.

peft's `save_pretrained` writes its own `README.md` (library `peft`, base model from `_name_or_path`, which is empty
for a tracker built from a config), so the card is always built here, after the peft files are written. Calling
`push_to_hub` on the `PeftModel` itself goes through transformers: it uploads the peft files plus the card already in
the repo, or a generic transformers card when the repo has none, and never the tracker `config.json`. A repo first
published with `push_tracker_to_hub` therefore keeps its card and config when it is updated that way, but a new repo
created by `model.push_to_hub` cannot be loaded: publish with `push_tracker_to_hub(model, repo_id)` instead.

Loading goes through `lorat_hf.adapters.load_tracker_model`; `load_additional_adapter` (`hub/loading.py`) adds more
adapters over the same backbone for `model.set_adapter(name)` switching.

Modules, bottom to top: `common` (file names, errors), `results` (evaluation results), `cards` (model cards),
`folders` (local folders), `upload` (assembling and pushing), `loading` (several adapters).
"""

from .cards import (
    CITATION,
    CODE_URL,
    DEFAULT_LICENSE,
    LICENSE_TEXT,
    LORATV2_CITATION,
    LORATV2_PAPER_URL,
    PAPER_URL,
    REQUIRED_TAGS,
    build_model_card,
    count_tracker_parameters,
    training_rows_from_train_config,
    validate_model_card,
)
from .common import (
    CARD_NAME,
    EVAL_DIR,
    EVAL_RESULTS_NAME,
    MERGED_INDEX_NAME,
    MERGED_WEIGHTS_NAME,
    PREPROCESSOR_CONFIG_NAME,
    TRAIN_CONFIG_NAME,
    HubPublishError,
    ModelCardError,
    TrackerFolderError,
)
from .folders import TrackerFolder, inspect_tracker_folder, resolve_base_model
from .loading import load_additional_adapter
from .results import BENCHMARKS, METRIC_NAMES, TASK_NAME, TASK_TYPE, TrackingResult, benchmark_names
from .upload import (
    MANAGED_REMOTE_PATTERNS,
    UPLOAD_PATTERNS,
    AssembledFolder,
    PushResult,
    assemble_upload_folder,
    push_tracker_to_hub,
)

__all__ = [
    "BENCHMARKS",
    "CARD_NAME",
    "CITATION",
    "CODE_URL",
    "DEFAULT_LICENSE",
    "EVAL_DIR",
    "EVAL_RESULTS_NAME",
    "LICENSE_TEXT",
    "LORATV2_CITATION",
    "LORATV2_PAPER_URL",
    "MANAGED_REMOTE_PATTERNS",
    "MERGED_INDEX_NAME",
    "MERGED_WEIGHTS_NAME",
    "METRIC_NAMES",
    "PAPER_URL",
    "PREPROCESSOR_CONFIG_NAME",
    "REQUIRED_TAGS",
    "TASK_NAME",
    "TASK_TYPE",
    "TRAIN_CONFIG_NAME",
    "UPLOAD_PATTERNS",
    "AssembledFolder",
    "HubPublishError",
    "ModelCardError",
    "PushResult",
    "TrackerFolder",
    "TrackerFolderError",
    "TrackingResult",
    "assemble_upload_folder",
    "benchmark_names",
    "build_model_card",
    "count_tracker_parameters",
    "inspect_tracker_folder",
    "load_additional_adapter",
    "push_tracker_to_hub",
    "resolve_base_model",
    "training_rows_from_train_config",
    "validate_model_card",
]
