#!/usr/bin/env python
"""Train a LoRAT tracker with accelerate.

    accelerate launch examples/train.py --config examples/configs/B-224.yaml [--field value ...]

One readable loop in the diffusers/accelerate idiom. The recipe (YAML) and every flag are documented in
`lorat_hf/training/arguments.py`; `examples/README.md` has the launch commands for each variant and accelerate config.

What happens, in order:

1. parse the recipe + overrides; build the `Accelerator` (mixed precision, gradient accumulation, trackers);
2. build the tracker (DINOv2 from the Hub/a folder, or random for smoke tests), wrap it with peft adapters (or unfreeze
   everything for the full fine-tuning baseline), store the frozen backbone in the low dtype and trainable weights fp32;
3. build the training pairs (`TrackingPairDataset`, deterministic per (seed, epoch, index)) and the fixed validation
   pairs; split the global batch (128) over processes and accumulation steps;
4. AdamW with the official parameter groups and the per-step warmup + cosine schedule;
5. train: `accumulate` / `backward` / clip / step; log; validate; checkpoint with `save_state` on EVERY rank (hooks
   store only trainable weights), export a loadable adapter in each checkpoint, mark it complete last, rotate;
6. export `final/` (adapter + tracker config + image processor + train_config.json), optionally push it to the Hub.

`--resume_from_checkpoint latest` continues exactly: same batches, same RNG, same losses as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DistributedType, ProjectConfiguration, TorchDynamoPlugin, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

import lorat_hf
from lorat_hf import LoraTrackerImageProcessor, count_parameters
from lorat_hf.data.pairs import EpochIndexSampler, TrackingPairDataset, collate_pairs, training_dataset_for
from lorat_hf.data.workers import dataloader_worker_options
from lorat_hf.file_utils import write_text_atomic
from lorat_hf.training.arguments import DataArguments, TrainConfig, parse_dataset_entry, parse_train_args
from lorat_hf.training.builders import (
    BACKBONE_DIRNAME,
    build_tracker,
    enable_activation_checkpointing,
    ensure_random_backbone,
    read_phase1_config,
    tracker_config_from_args,
)
from lorat_hf.training.checkpointing import (
    CHECKPOINTS_DIRNAME,
    EXPORT_DIRNAME,
    FINAL_DIRNAME,
    TRAIN_CONFIG_NAME,
    TRAINABLE_WEIGHTS_NAME,
    TRAINING_STATE_NAME,
    checkpoint_dir,
    export_trained_model,
    load_trainable_weights,
    mark_checkpoint_complete,
    prepare_checkpoint_dir,
    resolve_checkpoint,
    rotate_checkpoints,
    save_trainable_weights,
    trainable_state_dict,
    write_json_atomic,
)
from lorat_hf.training.errors import TrainingSetupError
from lorat_hf.training.optimization import WarmupCosineSchedule, build_parameter_groups
from lorat_hf.training.precision import cast_for_mixed_precision_, parameter_dtypes, weight_dtype_for
from lorat_hf.training.progress import TrainingProgress, plan_batches
from lorat_hf.training.validation import evaluate_loss, evaluate_tracking

logger = get_logger(__name__, log_level="INFO")

METRICS_FILE = "train_metrics.jsonl"
RUN_ARTIFACTS = (CHECKPOINTS_DIRNAME, FINAL_DIRNAME, TRAIN_CONFIG_NAME, BACKBONE_DIRNAME, "logs", "sample_ids")


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


class WithSampleIndex(torch.utils.data.Dataset):
    """Adds `sample_index = (epoch, index)` to every item (for `--log_sample_ids`); forwards the epoch API."""

    def __init__(self, dataset: TrackingPairDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __getitem__(self, index):
        epoch, position = index if isinstance(index, (tuple, list)) else (self.dataset.epoch, index)
        item = dict(self.dataset[(epoch, position)])
        item["sample_index"] = torch.tensor([epoch, position], dtype=torch.int64)
        return item


def synthetic_sequences(split: str | None, data_args: DataArguments, output_dir: Path):
    """The `synthetic` dataset: videos from `lorat_hf.data.synthetic` written once (resumably) in the generic layout.

    `train` holds `synthetic_sequences` videos; any other split (`test`, `val`) holds `synthetic_val_sequences` other
    videos (another seed), so evaluation is on held-out sequences. Frames are written under `synthetic_data_dir`.
    """
    from lorat_hf.data.sequences import load_sequences
    from lorat_hf.data.synthetic import SyntheticVideoConfig, write_generic_layout

    split = split or "train"
    root = Path(data_args.synthetic_data_dir) if data_args.synthetic_data_dir else output_dir / "synthetic_data"
    training_split = split == "train"
    video = SyntheticVideoConfig(
        frame_size=tuple(data_args.synthetic_frame_size), num_frames=data_args.synthetic_sequence_length
    )
    names = write_generic_layout(
        root / split,
        data_args.synthetic_sequences if training_split else data_args.synthetic_val_sequences,
        video,
        seed=data_args.synthetic_seed + (0 if training_split else 1),
    )
    table = load_sequences("generic", root, split, cache_dir=data_args.sequence_cache_dir)
    rows = {name: row for row, name in enumerate(table["name"])}
    return table.select([rows[name] for name in names])  # exactly this configuration's videos


def load_sequence_table(entry: str, data_args: DataArguments, output_dir: Path, accelerator: Accelerator):
    """`name:split` -> a sequence `datasets.Dataset` (the `synthetic` name generates its videos on first use)."""
    from lorat_hf.data.sequences import load_sequences

    name, split = parse_dataset_entry(entry)
    with accelerator.main_process_first():  # parse/generate once; the other processes then read the cache
        if name == "synthetic":
            return synthetic_sequences(split, data_args, output_dir)
        root = data_args.dataset_roots.get(name)
        if root is None:
            raise TrainingSetupError(
                f"No root folder for dataset {name!r}: add it to dataset_roots in the recipe, e.g. "
                f'--dataset_roots \'{{"{name}": "/data/{name}"}}\'.'
            )
        return load_sequences(name, root, split, cache_dir=data_args.sequence_cache_dir)


def build_dataloaders(
    config: TrainConfig, model_config, image_processor, plan, accelerator: Accelerator, output_dir: Path
):
    """The training loader (epoch-ordered pairs, or LoRATv2 tuplets), the fixed validation loader (or None) and
    tracking sequences."""
    data, training = config.data, config.training
    train_tables = [load_sequence_table(e, data, output_dir, accelerator) for e in data.train_datasets]
    train_dataset = training_dataset_for(
        model_config,
        train_tables,
        image_processor,
        weights=data.train_dataset_weights,
        samples_per_epoch=plan.samples_per_epoch,
        seed=training.seed,
        max_gap=data.max_frame_gap,
        augmentation=data.augment,
        exact=data.exact_crops,
    )
    if training.log_sample_ids:
        train_dataset = WithSampleIndex(train_dataset)
    # An explicit generator keeps DataLoader iterator creation from consuming the global RNG (exact resume).
    loader_generator = torch.Generator()
    workers = data.dataloader_num_workers
    train_loader = DataLoader(
        train_dataset,
        batch_size=plan.per_device_batch_size,
        sampler=EpochIndexSampler(train_dataset),
        collate_fn=collate_pairs,
        drop_last=True,
        generator=loader_generator,
        **dataloader_worker_options(workers),  # started clean, never forked from this process
        pin_memory=torch.cuda.is_available(),
    )

    val_loader = None
    if data.val_pairs > 0 and data.val_datasets and training.validation_steps > 0:
        val_tables = [load_sequence_table(e, data, output_dir, accelerator) for e in data.val_datasets]
        val_dataset = training_dataset_for(
            model_config,
            val_tables,
            image_processor,
            samples_per_epoch=data.val_pairs,
            seed=training.seed + 1,
            max_gap=data.max_frame_gap,
            augmentation=False,
            exact=data.exact_crops,
            validation=True,
        )
        val_loader = DataLoader(
            val_dataset,
            batch_size=plan.per_device_batch_size,
            sampler=EpochIndexSampler(val_dataset),
            collate_fn=collate_pairs,
            **dataloader_worker_options(min(workers, 2)),
            generator=torch.Generator().manual_seed(training.seed),
        )

    tracking_sequences = None
    if data.tracking_eval_sequences > 0 and data.tracking_eval_dataset and training.tracking_eval_steps > 0:
        table = load_sequence_table(data.tracking_eval_dataset, data, output_dir, accelerator)
        tracking_sequences = table.select(range(min(data.tracking_eval_sequences, len(table))))
    return train_loader, loader_generator, val_loader, tracking_sequences


# ---------------------------------------------------------------------------------------------------------------------
# Run folder, effective configuration, metrics
# ---------------------------------------------------------------------------------------------------------------------


def check_output_dir(output_dir: Path, resuming: bool, overwrite: bool, accelerator: Accelerator) -> None:
    """Refuse to start a new run on top of another one unless `--overwrite_output_dir` (then clear our artifacts).

    `resuming`: `--resume_from_checkpoint` was given; with no complete checkpoint the run restarts from step 0 here.
    """
    existing = [name for name in RUN_ARTIFACTS if (output_dir / name).exists()]
    if not existing or resuming:
        return
    if not overwrite:
        raise TrainingSetupError(
            f"{output_dir} already holds a training run ({', '.join(existing)}). Continue it with "
            "--resume_from_checkpoint latest (from step 0 if it stopped before its first checkpoint), choose another "
            "--output_dir, or pass --overwrite_output_dir to replace its checkpoints, final/ export and logs."
        )
    if accelerator.is_main_process:
        import shutil

        logger.warning(f"--overwrite_output_dir: removing {', '.join(existing)} from {output_dir}")
        for name in existing:
            path = output_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    accelerator.wait_for_everyone()


def check_trackers(report_to: str) -> None:
    """accelerate silently drops a tracker whose package is missing: say so instead."""
    import importlib.util

    wanted = {"all": ("tensorboard", "wandb"), "none": ()}.get(report_to, (report_to,))
    for name in wanted:
        if importlib.util.find_spec(name) is None:
            raise TrainingSetupError(
                f"--report_to {report_to} needs the {name} package: pip install {name} (or pass --report_to none)."
            )


def check_gradient_accumulation(accelerator: Accelerator, requested: int) -> None:
    """Refuse a run whose accumulation was silently changed by the environment or a DeepSpeed config: the global
    batch (and so the official recipe) would no longer be what the recipe says."""
    effective = accelerator.gradient_accumulation_steps
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None and isinstance(plugin.deepspeed_config.get("gradient_accumulation_steps"), int):
        effective = plugin.deepspeed_config["gradient_accumulation_steps"]
    if effective != requested:
        raise TrainingSetupError(
            f"The recipe asks for gradient_accumulation_steps={requested} but accelerate uses {effective} (set by "
            "ACCELERATE_GRADIENT_ACCUMULATION_STEPS or the DeepSpeed config). Make them equal: the global batch is "
            "split over processes x accumulation steps."
        )


def effective_config(config: TrainConfig, accelerator: Accelerator, plan, schedule: dict, model) -> dict[str, Any]:
    """train_config.json: the arguments plus what actually ran (accelerate state, batch split, schedule, versions)."""
    import accelerate
    import peft

    total, trainable = count_parameters(model)
    state = accelerator.state
    return {
        "arguments": config.to_dict(),
        "accelerate": {
            "distributed_type": str(state.distributed_type),
            "num_processes": state.num_processes,
            "processes_per_machine": int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes)),
            "mixed_precision": str(state.mixed_precision),
            "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
            "device": str(accelerator.device),
            "dynamo_backend": str(state.dynamo_plugin.backend) if state.dynamo_plugin else None,
        },
        "batch_plan": plan.to_dict(),
        "schedule": schedule,
        "model": {
            "total_parameters": total,
            "trainable_parameters": trainable,
            "parameter_dtypes": parameter_dtypes(model),
        },
        "versions": {
            "lorat_hf": lorat_hf.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "accelerate": accelerate.__version__,
            "datasets": datasets.__version__,
            "python": platform.python_version(),
        },
        "command": sys.argv,
    }


def tracker_hparams(config: TrainConfig) -> dict[str, Any]:
    """Flat scalar hyper-parameters for the experiment trackers (TensorBoard accepts scalars and strings only)."""
    flat = {}
    for group, values in config.to_dict().items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[f"{group}/{key}"] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
    return flat


def append_metrics(output_dir: Path, record: dict[str, Any]) -> None:
    with open(output_dir / "logs" / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def truncate_metrics(output_dir: Path, last_step: int) -> None:
    """On resume, drop metric lines written after the checkpoint by the interrupted run."""
    path = output_dir / "logs" / METRICS_FILE
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and json.loads(line)["step"] <= last_step
    ]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    try:
        config = parse_train_args(argv)
    except (ValueError, FileNotFoundError) as error:  # a bad recipe or flag
        raise TrainingSetupError(str(error)) from None
    model_args, peft_args, data_args, training, hub = (
        config.model,
        config.peft,
        config.data,
        config.training,
        config.hub,
    )
    check_trackers(training.report_to)
    output_dir = Path(training.output_dir).resolve()

    accelerator = Accelerator(
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        mixed_precision=training.mixed_precision,
        log_with=None if training.report_to == "none" else training.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dynamo_plugin=TorchDynamoPlugin(backend="inductor") if training.torch_compile else None,
        step_scheduler_with_optimizer=False,
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    check_gradient_accumulation(accelerator, training.gradient_accumulation_steps)
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise TrainingSetupError(
            "fp16 mixed precision needs a GPU (CPU autocast does not cover it); use bf16 or no on CPU."
        )
    library_verbosity = logging.WARNING if accelerator.is_local_main_process else logging.ERROR
    transformers.utils.logging.set_verbosity(library_verbosity)
    datasets.utils.logging.set_verbosity(library_verbosity)
    if training.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    checkpoints_root = output_dir / CHECKPOINTS_DIRNAME
    resume_path = None
    if training.resume_from_checkpoint:
        resume_path = resolve_checkpoint(training.resume_from_checkpoint, checkpoints_root)
    check_output_dir(output_dir, bool(training.resume_from_checkpoint), training.overwrite_output_dir, accelerator)
    accelerator.wait_for_everyone()  # every rank checked the folder before anything is written to it
    if accelerator.is_main_process:
        (output_dir / "logs").mkdir(parents=True, exist_ok=True)
        if training.resume_from_checkpoint and resume_path is None:
            logger.warning(f"No complete checkpoint in {checkpoints_root}: starting from step 0 in {output_dir}.")
            truncate_metrics(output_dir, 0)  # an earlier attempt's lines are replaced by this run's
            for stale in (output_dir / "sample_ids").glob("rank-*.jsonl"):
                stale.unlink()
    if hub.push_to_hub and accelerator.is_main_process:
        from huggingface_hub import create_repo

        create_repo(hub.hub_model_id, private=hub.hub_private_repo, exist_ok=True)  # fail fast on auth/naming problems

    set_seed(training.seed)

    # ----- model -----
    # LoRATv2 phase 2 continues a phase-1 export: its backbone, geometry and frozen streams
    phase1_config = read_phase1_config(model_args.phase1_model_path) if model_args.is_phase_2 else None
    tracker_config = tracker_config_from_args(model_args, peft_args, phase1_config)
    if model_args.random_backbone and phase1_config is None:
        backbone = output_dir / BACKBONE_DIRNAME
        if accelerator.is_main_process:
            ensure_random_backbone(backbone, tracker_config.dinov2_config, training.seed)
        accelerator.wait_for_everyone()
    else:
        backbone = model_args.backbone_name_or_path or tracker_config.backbone_name_or_path
    with accelerator.main_process_first():  # download the backbone once per machine
        model = build_tracker(tracker_config, peft_args, backbone, model_args.phase1_model_path)
    base_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    image_processor = LoraTrackerImageProcessor.from_tracker_config(base_model.config)
    weight_dtype = weight_dtype_for(accelerator.mixed_precision)
    autocast_dtype = None if weight_dtype == torch.float32 else weight_dtype
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        logger.info("FSDP/DeepSpeed manage parameter dtypes themselves: every weight is kept fp32 here.")
    else:
        cast_for_mixed_precision_(model, weight_dtype)
    if training.gradient_checkpointing:
        enable_activation_checkpointing(base_model)
    total_params, trainable_params = count_parameters(model)
    logger.info(
        f"Parameters: {total_params:,} total, {trainable_params:,} trainable ({100 * trainable_params / total_params:.2f}%)"
    )

    # ----- data, optimizer, schedule -----
    plan = plan_batches(
        training.global_batch_size,
        accelerator.num_processes,
        training.gradient_accumulation_steps,
        data_args.samples_per_epoch,
    )
    train_loader, loader_generator, val_loader, tracking_sequences = build_dataloaders(
        config, base_model.config, image_processor, plan, accelerator, output_dir
    )
    optimizer = torch.optim.AdamW(
        build_parameter_groups(model, training.learning_rate, training.weight_decay, peft_args.layer_decay),
        lr=training.learning_rate,
        betas=(training.adam_beta1, training.adam_beta2),
        eps=training.adam_epsilon,
        weight_decay=training.weight_decay,
    )
    total_steps = plan.steps_per_epoch * training.num_train_epochs
    warmup_steps = int(plan.steps_per_epoch * training.warmup_epochs)
    lr_scheduler = WarmupCosineSchedule(optimizer, warmup_steps, total_steps, training.warmup_lr, training.min_lr)
    stop_step = min(total_steps, training.max_train_steps or total_steps)
    schedule = {"total_steps": total_steps, "warmup_steps": warmup_steps, "stop_step": stop_step}

    # The scheduler is stepped by hand once per optimizer step (accelerate would step it num_processes times).
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    accelerator.register_for_checkpointing(lr_scheduler)
    progress = TrainingProgress()
    sharded_weights = accelerator.distributed_type == DistributedType.FSDP or (
        accelerator.distributed_type == DistributedType.DEEPSPEED
        and accelerator.state.deepspeed_plugin.zero_stage == 3
    )

    def unwrap(wrapped: torch.nn.Module) -> torch.nn.Module:
        """The PeftModel / LoraTrackerModel inside DDP, FSDP and torch.compile wrappers."""
        return accelerator.unwrap_model(wrapped, keep_torch_compile=False)

    def save_model_hook(models, weights, folder):
        # Called on every rank by save_state. Store the trainable weights only (not the frozen DINOv2); file I/O on
        # the main process. FSDP/DeepSpeed save their own (sharded) states and pass no weights here.
        if not weights:
            return
        if accelerator.is_main_process:
            for saved in models:
                save_trainable_weights(unwrap(saved), Path(folder) / TRAINABLE_WEIGHTS_NAME)
        weights.clear()

    def load_model_hook(models, folder):
        while models:
            load_trainable_weights(unwrap(models.pop()), Path(folder) / TRAINABLE_WEIGHTS_NAME)

    accelerator.register_save_state_pre_hook(save_model_hook)
    accelerator.register_load_state_pre_hook(load_model_hook)

    run_config = effective_config(config, accelerator, plan, schedule, unwrap(model))
    if accelerator.is_main_process:
        write_json_atomic(output_dir / TRAIN_CONFIG_NAME, run_config)
    accelerator.init_trackers(training.tracker_project_name, config=tracker_hparams(config))  # main process only

    if resume_path is not None:
        with open(resume_path / TRAINING_STATE_NAME, encoding="utf-8") as handle:
            saved = json.load(handle)
        if (
            saved["batch_plan"]["global_batch_size"] != plan.global_batch_size
            or saved["batch_plan"]["steps_per_epoch"] != plan.steps_per_epoch
        ):
            raise TrainingSetupError(
                f"{resume_path} was written with global_batch_size={saved['batch_plan']['global_batch_size']} and "
                f"{saved['batch_plan']['steps_per_epoch']} steps per epoch; this run has {plan.global_batch_size} and "
                f"{plan.steps_per_epoch}. Resume with the same global batch and samples_per_epoch."
            )
        if saved["batch_plan"]["num_processes"] != plan.num_processes:
            logger.warning(
                "Resuming with %d processes, the checkpoint used %d: the data order is unchanged but per-rank RNG "
                "streams (drop path) differ from an uninterrupted run.",
                plan.num_processes,
                saved["batch_plan"]["num_processes"],
            )
        accelerator.load_state(str(resume_path))
        progress = TrainingProgress.from_dict(saved["progress"])
        logger.info(f"Resumed from {resume_path} at step {progress.global_step} (epoch {progress.epoch}).")
        if accelerator.is_main_process:
            truncate_metrics(output_dir, progress.global_step)

    def log(metrics: dict[str, Any]) -> None:
        accelerator.log(metrics, step=progress.global_step)
        if accelerator.is_main_process:
            append_metrics(output_dir, {"step": progress.global_step, **metrics})

    def export(folder: Path) -> None:
        """A loadable adapter (or model) folder. Collective: sharded weights are gathered on every rank first."""
        state_dict = accelerator.get_state_dict(model) if sharded_weights else None
        if accelerator.is_main_process:
            export_trained_model(unwrap(model), folder, image_processor, run_config, state_dict)
        accelerator.wait_for_everyone()

    def save_checkpoint() -> None:
        folder = checkpoint_dir(checkpoints_root, progress.global_step)
        if accelerator.is_main_process:
            prepare_checkpoint_dir(folder)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(folder))  # every rank (DeepSpeed/FSDP need all of them)
        if accelerator.is_main_process:
            write_json_atomic(
                folder / TRAINING_STATE_NAME, {"progress": progress.to_dict(), "batch_plan": plan.to_dict()}
            )
        export(folder / EXPORT_DIRNAME)
        if accelerator.is_main_process:
            mark_checkpoint_complete(folder, progress.global_step)  # LAST: only now does the checkpoint count
            rotate_checkpoints(checkpoints_root, training.checkpoints_total_limit)
        accelerator.wait_for_everyone()

    def track_and_score() -> None:
        # Sharded weights (FSDP, ZeRO-3) need every rank in each forward: all ranks then track the same sequences.
        if accelerator.is_main_process or sharded_weights:
            metrics = evaluate_tracking(
                model if sharded_weights else unwrap(model),
                image_processor,
                tracking_sequences,
                autocast_dtype=autocast_dtype,
                max_batch_size=plan.per_device_batch_size * 4,
            )
            if accelerator.is_main_process:
                log(metrics)
        accelerator.wait_for_everyone()

    logger.info(
        f"Training {stop_step - progress.global_step} steps (of {total_steps}): {plan.steps_per_epoch} steps/epoch, global "
        f"batch {plan.global_batch_size} = {plan.num_processes} processes x {plan.gradient_accumulation_steps} "
        f"accumulation x {plan.per_device_batch_size} pairs"
    )
    progress_bar = tqdm(
        total=stop_step, initial=progress.global_step, desc="Steps", disable=not accelerator.is_local_main_process
    )
    sample_log = None
    if training.log_sample_ids:
        (output_dir / "sample_ids").mkdir(parents=True, exist_ok=True)
        sample_log = open(output_dir / "sample_ids" / f"rank-{accelerator.process_index}.jsonl", "a", encoding="utf-8")
    trainable = [p for p in model.parameters() if p.requires_grad]
    window = torch.zeros(4, dtype=torch.float64, device=accelerator.device)  # loss, cls, reg, micro-batches
    window_start, grad_norm = time.perf_counter(), None

    model.train()
    while progress.global_step < stop_step:
        epoch = progress.epoch
        train_loader.set_epoch(epoch)
        loader_generator.manual_seed(training.seed * 1_000_003 + epoch)  # worker seeds of this epoch
        skip = progress.step_in_epoch * plan.gradient_accumulation_steps
        epoch_loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        for batch in epoch_loader:
            sample_index = batch.pop("sample_index", None)
            with accelerator.accumulate(model):
                output = model(**batch)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and training.max_grad_norm is not None:
                    grad_norm = accelerator.clip_grad_norm_(trainable, training.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            terms = output.loss_dict
            window += torch.stack(
                [output.loss.detach(), terms["cls_loss"], terms["reg_loss"], torch.ones((), device=window.device)]
            ).to(window)
            if sample_log is not None:
                sample_log.write(json.dumps({"step": progress.global_step, "samples": sample_index.tolist()}) + "\n")
            if not accelerator.sync_gradients:
                continue

            step_lr = optimizer.param_groups[0]["lr"]  # the lr this step used
            lr_scheduler.step()
            progress.advance(plan.steps_per_epoch)
            progress_bar.update(1)
            if progress.global_step % training.logging_steps == 0 or progress.global_step == stop_step:
                window = accelerator.reduce(window, reduction="sum")
                batches = float(window[3])
                elapsed = time.perf_counter() - window_start
                metrics = {
                    "loss": float(window[0]) / batches,
                    "cls_loss": float(window[1]) / batches,
                    "reg_loss": float(window[2]) / batches,
                    "lr": step_lr,
                    "epoch": progress.epoch + progress.step_in_epoch / plan.steps_per_epoch,
                    "pairs_per_second": batches * plan.per_device_batch_size / max(elapsed, 1e-9),
                }
                if grad_norm is not None:
                    metrics["grad_norm"] = float(grad_norm)
                log(metrics)
                progress_bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
                window.zero_()
                window_start = time.perf_counter()
            if val_loader is not None and progress.global_step % training.validation_steps == 0:
                log(evaluate_loss(model, val_loader, accelerator))
            if tracking_sequences is not None and progress.global_step % training.tracking_eval_steps == 0:
                track_and_score()
            if progress.global_step % training.checkpointing_steps == 0 or progress.global_step == stop_step:
                save_checkpoint()
            if progress.global_step >= stop_step:
                break
    progress_bar.close()
    if sample_log is not None:  # a digest of this rank's weights: DDP ranks must agree exactly
        digest = hashlib.sha256()
        for name, tensor in sorted(trainable_state_dict(unwrap(model)).items()):
            digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
        sample_log.write(json.dumps({"step": progress.global_step, "weights_sha256": digest.hexdigest()}) + "\n")
        sample_log.close()

    # ----- final export (and upload) -----
    accelerator.wait_for_everyone()
    final_dir = output_dir / FINAL_DIRNAME
    export(final_dir)
    if accelerator.is_main_process:
        logger.info(f"Saved the trained tracker to {final_dir} (load it with lorat_hf.load_tracker_model).")
        if hub.push_to_hub:
            from lorat_hf.hub import push_tracker_to_hub

            pushed = push_tracker_to_hub(final_dir, hub.hub_model_id, private=hub.hub_private_repo)
            logger.info(f"Pushed {final_dir} to {hub.hub_model_id}: {pushed}")
    accelerator.wait_for_everyone()
    accelerator.end_training()


def cli(argv: list[str] | None = None) -> int:
    """Run `main`; a run refused before it starts is one line on stderr and exit status 2."""
    try:
        main(argv)
    except TrainingSetupError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
