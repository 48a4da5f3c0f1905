"""Training: the loop (`loop`, run by `lorat-train` and `examples/train.py`) and its parts: arguments, model families,
data loading, optimisation, precision, checkpoints, progress, run folder, validation."""

from .arguments import (
    DataArguments,
    HubArguments,
    ModelArguments,
    PeftArguments,
    TrainArguments,
    TrainConfig,
    parse_train_args,
)
from .builders import build_tracker, ensure_random_backbone, tracker_config_from_args
from .checkpointing import (
    export_trained_model,
    latest_checkpoint,
    list_checkpoints,
    load_trainable_weights,
    mark_checkpoint_complete,
    read_checkpoint_marker,
    resolve_checkpoint,
    rotate_checkpoints,
    save_trainable_weights,
    write_json_atomic,
)
from .errors import TrainingSetupError
from .families import LoraTrackerTraining, TrainingFamily, register_training_family, training_family
from .loop import TrainingRun, train
from .optimization import WarmupCosineSchedule, build_parameter_groups, create_optimizer, warmup_cosine_lr
from .precision import cast_for_mixed_precision_, parameter_dtypes, weight_dtype_for
from .progress import BatchPlan, TrainingProgress, isolated_rng, plan_batches
from .validation import evaluate_loss, evaluate_tracking

__all__ = [
    "ModelArguments",
    "PeftArguments",
    "DataArguments",
    "TrainArguments",
    "HubArguments",
    "TrainConfig",
    "parse_train_args",
    "TrainingSetupError",
    "tracker_config_from_args",
    "ensure_random_backbone",
    "build_tracker",
    "build_parameter_groups",
    "create_optimizer",
    "warmup_cosine_lr",
    "WarmupCosineSchedule",
    "weight_dtype_for",
    "cast_for_mixed_precision_",
    "parameter_dtypes",
    "BatchPlan",
    "plan_batches",
    "TrainingProgress",
    "isolated_rng",
    "write_json_atomic",
    "mark_checkpoint_complete",
    "read_checkpoint_marker",
    "list_checkpoints",
    "latest_checkpoint",
    "resolve_checkpoint",
    "rotate_checkpoints",
    "save_trainable_weights",
    "load_trainable_weights",
    "export_trained_model",
    "evaluate_loss",
    "evaluate_tracking",
    "TrainingFamily",
    "LoraTrackerTraining",
    "register_training_family",
    "training_family",
    "TrainingRun",
    "train",
]
