"""The training loop, in the diffusers/accelerate idiom, shared by `accelerate launch examples/train.py` and the
`lorat-train` console script.

What happens, in order:

1. parse the recipe + overrides; build the `Accelerator` (mixed precision, gradient accumulation, trackers);
2. build the model of the recipe's `model_type` (`lorat_hf.training.families`): DINOv2 from the Hub/a folder, or
   random for smoke tests, wrapped with peft adapters (or fully trainable); the frozen backbone stored in the low
   dtype, trainable weights fp32;
3. build the training samples (deterministic per (seed, epoch, index)) and the fixed validation samples; split the
   global batch over processes and accumulation steps;
4. AdamW with the official parameter groups and the per-step warmup + cosine schedule;
5. train: `accumulate` / `backward` / clip / step; log; validate; checkpoint with `save_state` on EVERY rank (hooks
   store only trainable weights), export a loadable model folder in each checkpoint, mark it complete last, rotate;
6. export `final/` (model + image processor + train_config.json), optionally push it to the Hub.

`--resume_from_checkpoint latest` continues exactly: same batches, same RNG, same losses as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from tqdm.auto import tqdm

from ..adapters import count_parameters
from .arguments import TrainConfig, parse_train_args
from .builders import BACKBONE_DIRNAME, enable_activation_checkpointing
from .checkpointing import (
    CHECKPOINTS_DIRNAME,
    EXPORT_DIRNAME,
    FINAL_DIRNAME,
    TRAIN_CONFIG_NAME,
    TRAINABLE_WEIGHTS_NAME,
    TRAINING_STATE_NAME,
    checkpoint_dir,
    load_trainable_weights,
    mark_checkpoint_complete,
    prepare_checkpoint_dir,
    resolve_checkpoint,
    rotate_checkpoints,
    save_trainable_weights,
    trainable_state_dict,
    write_json_atomic,
)
from .data_loading import build_dataloaders
from .errors import TrainingSetupError
from .families import TrainingFamily, training_family
from .optimization import WarmupCosineSchedule, build_parameter_groups
from .precision import cast_for_mixed_precision_, weight_dtype_for
from .progress import BatchPlan, TrainingProgress, plan_batches
from .run_folder import (
    append_metrics,
    check_gradient_accumulation,
    check_output_dir,
    check_trackers,
    effective_config,
    tracker_hparams,
    truncate_metrics,
)
from .validation import evaluate_loss, evaluate_tracking

logger = get_logger(__name__, log_level="INFO")


def create_accelerator(config: TrainConfig, output_dir: Path) -> Accelerator:
    """The `Accelerator` of a recipe, with logging, library verbosity and TF32 set up; refuses a global batch that the
    environment would silently change, and fp16 on CPU."""
    training = config.training
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
    return accelerator


def prepare_run_folder(config: TrainConfig, accelerator: Accelerator, output_dir: Path) -> Path | None:
    """Check the output folder (resume or a fresh run), create `logs/`, fail fast on Hub problems. Returns the
    checkpoint to resume from, or None."""
    training, hub = config.training, config.hub
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
    return resume_path


def build_model(family: TrainingFamily, config: TrainConfig, accelerator: Accelerator, output_dir: Path):
    """The model to train (weights cast for mixed precision, activation checkpointing when asked), the config of the
    tracker inside it and its image processor."""
    model_args, training = config.model, config.training
    model_config = family.model_config(model_args, config.peft)
    if family.uses_random_backbone(model_args):
        backbone = output_dir / BACKBONE_DIRNAME
        if accelerator.is_main_process:
            family.write_random_backbone(backbone, model_config, training.seed)
        accelerator.wait_for_everyone()
    else:
        backbone = model_args.backbone_name_or_path or family.default_backbone(model_config)
    with accelerator.main_process_first():  # download the backbone once per machine
        model = family.build_model(model_config, model_args, config.peft, backbone)
    base_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    image_processor = family.image_processor(base_model.config)
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        logger.info("FSDP/DeepSpeed manage parameter dtypes themselves: every weight is kept fp32 here.")
    else:
        cast_for_mixed_precision_(model, weight_dtype_for(accelerator.mixed_precision))
    if training.gradient_checkpointing:
        enable_activation_checkpointing(base_model)
    total_params, trainable_params = count_parameters(model)
    logger.info(
        f"Parameters: {total_params:,} total, {trainable_params:,} trainable ({100 * trainable_params / total_params:.2f}%)"
    )
    return model, base_model.config, image_processor


def build_optimization(model: torch.nn.Module, config: TrainConfig, plan: BatchPlan):
    """AdamW over the official parameter groups, the warmup + cosine schedule and the step plan."""
    training = config.training
    optimizer = torch.optim.AdamW(
        build_parameter_groups(model, training.learning_rate, training.weight_decay, config.peft.layer_decay),
        lr=training.learning_rate,
        betas=(training.adam_beta1, training.adam_beta2),
        eps=training.adam_epsilon,
        weight_decay=training.weight_decay,
    )
    total_steps = plan.steps_per_epoch * training.num_train_epochs
    warmup_steps = int(plan.steps_per_epoch * training.warmup_epochs)
    lr_scheduler = WarmupCosineSchedule(optimizer, warmup_steps, total_steps, training.warmup_lr, training.min_lr)
    stop_step = min(total_steps, training.max_train_steps or total_steps)
    return optimizer, lr_scheduler, {"total_steps": total_steps, "warmup_steps": warmup_steps, "stop_step": stop_step}


class TrainingRun:
    """One training run once everything is built: prepares it with accelerate, then trains, validates, checkpoints
    and exports. Every public method is collective (call it on every rank)."""

    def __init__(self, config: TrainConfig, family: TrainingFamily, accelerator: Accelerator, output_dir: Path):
        self.config, self.family, self.accelerator, self.output_dir = config, family, accelerator, output_dir
        self.checkpoints_root = output_dir / CHECKPOINTS_DIRNAME
        model, model_config, self.image_processor = build_model(family, config, accelerator, output_dir)
        weight_dtype = weight_dtype_for(accelerator.mixed_precision)
        self.autocast_dtype = None if weight_dtype == torch.float32 else weight_dtype
        training = config.training
        self.plan = plan_batches(
            training.global_batch_size,
            accelerator.num_processes,
            training.gradient_accumulation_steps,
            config.data.samples_per_epoch,
        )
        train_loader, self.loader_generator, val_loader, self.tracking_sequences = build_dataloaders(
            config, family, model_config, self.image_processor, self.plan, accelerator, output_dir
        )
        optimizer, self.lr_scheduler, self.schedule = build_optimization(model, config, self.plan)
        # The scheduler is stepped by hand once per optimizer step (accelerate would step it num_processes times).
        self.model, self.optimizer, self.train_loader = accelerator.prepare(model, optimizer, train_loader)
        self.val_loader = accelerator.prepare(val_loader) if val_loader is not None else None
        accelerator.register_for_checkpointing(self.lr_scheduler)
        self.progress = TrainingProgress()
        self.sharded_weights = accelerator.distributed_type == DistributedType.FSDP or (
            accelerator.distributed_type == DistributedType.DEEPSPEED
            and accelerator.state.deepspeed_plugin.zero_stage == 3
        )
        accelerator.register_save_state_pre_hook(self._save_model_hook)
        accelerator.register_load_state_pre_hook(self._load_model_hook)
        self.run_config = effective_config(config, accelerator, self.plan, self.schedule, self.unwrap(self.model))
        if accelerator.is_main_process:
            write_json_atomic(output_dir / TRAIN_CONFIG_NAME, self.run_config)
        accelerator.init_trackers(training.tracker_project_name, config=tracker_hparams(config))  # main process only

    @property
    def stop_step(self) -> int:
        return self.schedule["stop_step"]

    def unwrap(self, wrapped: torch.nn.Module) -> torch.nn.Module:
        """The PeftModel / tracker model inside DDP, FSDP and torch.compile wrappers."""
        return self.accelerator.unwrap_model(wrapped, keep_torch_compile=False)

    def _save_model_hook(self, models, weights, folder) -> None:
        # Called on every rank by save_state. Store the trainable weights only (not the frozen DINOv2); file I/O on
        # the main process. FSDP/DeepSpeed save their own (sharded) states and pass no weights here.
        if not weights:
            return
        if self.accelerator.is_main_process:
            for saved in models:
                save_trainable_weights(self.unwrap(saved), Path(folder) / TRAINABLE_WEIGHTS_NAME)
        weights.clear()

    def _load_model_hook(self, models, folder) -> None:
        while models:
            load_trainable_weights(self.unwrap(models.pop()), Path(folder) / TRAINABLE_WEIGHTS_NAME)

    def resume(self, resume_path: Path) -> None:
        """Continue from a checkpoint written with the same global batch and steps per epoch."""
        with open(resume_path / TRAINING_STATE_NAME, encoding="utf-8") as handle:
            saved = json.load(handle)
        plan = self.plan
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
        self.accelerator.load_state(str(resume_path))
        self.progress = TrainingProgress.from_dict(saved["progress"])
        logger.info(f"Resumed from {resume_path} at step {self.progress.global_step} (epoch {self.progress.epoch}).")
        if self.accelerator.is_main_process:
            truncate_metrics(self.output_dir, self.progress.global_step)

    def log(self, metrics: dict[str, Any]) -> None:
        self.accelerator.log(metrics, step=self.progress.global_step)
        if self.accelerator.is_main_process:
            append_metrics(self.output_dir, {"step": self.progress.global_step, **metrics})

    def export(self, folder: Path) -> None:
        """A loadable model folder. Collective: sharded weights are gathered on every rank first."""
        accelerator = self.accelerator
        state_dict = accelerator.get_state_dict(self.model) if self.sharded_weights else None
        if accelerator.is_main_process:
            self.family.export(self.unwrap(self.model), folder, self.image_processor, self.run_config, state_dict)
        accelerator.wait_for_everyone()

    def save_checkpoint(self) -> None:
        accelerator, step = self.accelerator, self.progress.global_step
        folder = checkpoint_dir(self.checkpoints_root, step)
        if accelerator.is_main_process:
            prepare_checkpoint_dir(folder)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(folder))  # every rank (DeepSpeed/FSDP need all of them)
        if accelerator.is_main_process:
            state = {"progress": self.progress.to_dict(), "batch_plan": self.plan.to_dict()}
            write_json_atomic(folder / TRAINING_STATE_NAME, state)
        self.export(folder / EXPORT_DIRNAME)
        if accelerator.is_main_process:
            mark_checkpoint_complete(folder, step)  # LAST: only now does the checkpoint count
            rotate_checkpoints(self.checkpoints_root, self.config.training.checkpoints_total_limit)
        accelerator.wait_for_everyone()

    def track_and_score(self) -> None:
        # Sharded weights (FSDP, ZeRO-3) need every rank in each forward: all ranks then track the same sequences.
        if self.accelerator.is_main_process or self.sharded_weights:
            metrics = evaluate_tracking(
                self.model if self.sharded_weights else self.unwrap(self.model),
                self.image_processor,
                self.tracking_sequences,
                autocast_dtype=self.autocast_dtype,
                max_batch_size=self.plan.per_device_batch_size * 4,
            )
            if self.accelerator.is_main_process:
                self.log(metrics)
        self.accelerator.wait_for_everyone()

    def train(self) -> None:
        """Train up to the stop step, epoch by epoch (a resumed epoch skips the batches already seen)."""
        training, plan, progress = self.config.training, self.plan, self.progress
        logger.info(
            f"Training {self.stop_step - progress.global_step} steps (of {self.schedule['total_steps']}): "
            f"{plan.steps_per_epoch} steps/epoch, global batch {plan.global_batch_size} = {plan.num_processes} "
            f"processes x {plan.gradient_accumulation_steps} accumulation x {plan.per_device_batch_size} pairs"
        )
        self.progress_bar = tqdm(
            total=self.stop_step,
            initial=progress.global_step,
            desc="Steps",
            disable=not self.accelerator.is_local_main_process,
        )
        self.sample_log = None
        if training.log_sample_ids:
            (self.output_dir / "sample_ids").mkdir(parents=True, exist_ok=True)
            path = self.output_dir / "sample_ids" / f"rank-{self.accelerator.process_index}.jsonl"
            self.sample_log = open(path, "a", encoding="utf-8")
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.window = torch.zeros(4, dtype=torch.float64, device=self.accelerator.device)  # loss, cls, reg, batches
        self.window_start, self.grad_norm = time.perf_counter(), None
        self.model.train()
        while progress.global_step < self.stop_step:
            if self._train_epoch():
                break
        self.progress_bar.close()
        if self.sample_log is not None:
            self._close_sample_log()

    def _train_epoch(self) -> bool:
        """One (possibly resumed) epoch; True when the stop step was reached."""
        training, plan, progress = self.config.training, self.plan, self.progress
        epoch = progress.epoch
        self.train_loader.set_epoch(epoch)
        self.loader_generator.manual_seed(training.seed * 1_000_003 + epoch)  # worker seeds of this epoch
        skip = progress.step_in_epoch * plan.gradient_accumulation_steps
        epoch_loader = self.accelerator.skip_first_batches(self.train_loader, skip) if skip else self.train_loader
        for batch in epoch_loader:
            if not self._micro_step(batch):
                continue
            step_lr = self.optimizer.param_groups[0]["lr"]  # the lr this step used
            self.lr_scheduler.step()
            progress.advance(plan.steps_per_epoch)
            self.progress_bar.update(1)
            self._after_optimizer_step(step_lr)
            if progress.global_step >= self.stop_step:
                return True
        return False

    def _micro_step(self, batch: dict[str, torch.Tensor]) -> bool:
        """Forward/backward one micro-batch (optimizer step at accumulation boundaries); True after a step."""
        accelerator, training = self.accelerator, self.config.training
        sample_index = batch.pop("sample_index", None)
        with accelerator.accumulate(self.model):
            output = self.family.forward(self.model, batch)
            accelerator.backward(output.loss)
            if accelerator.sync_gradients and training.max_grad_norm is not None:
                self.grad_norm = accelerator.clip_grad_norm_(self.trainable, training.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        terms = output.loss_dict
        self.window += torch.stack(
            [output.loss.detach(), terms["cls_loss"], terms["reg_loss"], torch.ones((), device=self.window.device)]
        ).to(self.window)
        if self.sample_log is not None:
            self.sample_log.write(
                json.dumps({"step": self.progress.global_step, "samples": sample_index.tolist()}) + "\n"
            )
        return accelerator.sync_gradients

    def _after_optimizer_step(self, step_lr: float) -> None:
        """Log, validate, track and checkpoint at their intervals."""
        training, step = self.config.training, self.progress.global_step
        if step % training.logging_steps == 0 or step == self.stop_step:
            self._log_window(step_lr)
        if self.val_loader is not None and step % training.validation_steps == 0:
            self.log(evaluate_loss(self.model, self.val_loader, self.accelerator, forward=self.family.forward))
        if self.tracking_sequences is not None and step % training.tracking_eval_steps == 0:
            self.track_and_score()
        if step % training.checkpointing_steps == 0 or step == self.stop_step:
            self.save_checkpoint()

    def _log_window(self, step_lr: float) -> None:
        """The mean losses since the last log line (over every rank), the lr, the epoch and the throughput."""
        plan, progress = self.plan, self.progress
        window = self.accelerator.reduce(self.window, reduction="sum")
        batches = float(window[3])
        elapsed = time.perf_counter() - self.window_start
        metrics = {
            "loss": float(window[0]) / batches,
            "cls_loss": float(window[1]) / batches,
            "reg_loss": float(window[2]) / batches,
            "lr": step_lr,
            "epoch": progress.epoch + progress.step_in_epoch / plan.steps_per_epoch,
            "pairs_per_second": batches * plan.per_device_batch_size / max(elapsed, 1e-9),
        }
        if self.grad_norm is not None:
            metrics["grad_norm"] = float(self.grad_norm)
        self.log(metrics)
        self.progress_bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
        self.window.zero_()
        self.window_start = time.perf_counter()

    def _close_sample_log(self) -> None:
        """End this rank's sample log with a digest of its trainable weights (DDP ranks must agree exactly)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(trainable_state_dict(self.unwrap(self.model)).items()):
            digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
        self.sample_log.write(
            json.dumps({"step": self.progress.global_step, "weights_sha256": digest.hexdigest()}) + "\n"
        )
        self.sample_log.close()

    def finish(self) -> None:
        """Export `final/`, push it when asked, and end the experiment trackers."""
        accelerator, hub = self.accelerator, self.config.hub
        accelerator.wait_for_everyone()
        final_dir = self.output_dir / FINAL_DIRNAME
        self.export(final_dir)
        if accelerator.is_main_process:
            logger.info(f"Saved the trained tracker to {final_dir} (load it with lorat_hf.load_tracker_model).")
            if hub.push_to_hub:
                from ..hub import push_tracker_to_hub

                pushed = push_tracker_to_hub(final_dir, hub.hub_model_id, private=hub.hub_private_repo)
                logger.info(f"Pushed {final_dir} to {hub.hub_model_id}: {pushed}")
        accelerator.wait_for_everyone()
        accelerator.end_training()


def train(config: TrainConfig) -> None:
    """Run the whole training a parsed recipe describes."""
    family = training_family(config.model.model_type)
    check_trackers(config.training.report_to)
    output_dir = Path(config.training.output_dir).resolve()
    accelerator = create_accelerator(config, output_dir)
    resume_path = prepare_run_folder(config, accelerator, output_dir)
    set_seed(config.training.seed)
    run = TrainingRun(config, family, accelerator, output_dir)
    if resume_path is not None:
        run.resume(resume_path)
    run.train()
    run.finish()


def main(argv: list[str] | None = None) -> None:
    """Parse the recipe and flags, then train. Raises `TrainingSetupError` for a run that cannot start as asked."""
    try:
        config = parse_train_args(argv)
        training_family(config.model.model_type)
    except (ValueError, FileNotFoundError) as error:  # a bad recipe or flag
        raise TrainingSetupError(str(error)) from None
    train(config)


def cli(argv: list[str] | None = None, prog: str = "lorat-train") -> int:
    """`lorat-train` / `examples/train.py`: run `main`; a run refused before it starts is one line on stderr and exit
    status 2."""
    try:
        main(argv)
    except TrainingSetupError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "create_accelerator",
    "prepare_run_folder",
    "build_model",
    "build_optimization",
    "TrainingRun",
    "train",
    "main",
    "cli",
]
