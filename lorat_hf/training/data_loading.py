"""The training loop's data: sequence tables (the `synthetic` recipe data included), the epoch-ordered training
loader, the fixed validation loader and the tracking-evaluation sequences."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..data.pairs import EpochIndexSampler, collate_pairs
from ..data.workers import dataloader_worker_options
from .arguments import DataArguments, TrainConfig, parse_dataset_entry
from .errors import TrainingSetupError
from .families import TrainingFamily


class WithSampleIndex(torch.utils.data.Dataset):
    """Adds `sample_index = (epoch, index)` to every item (for `--log_sample_ids`); forwards the epoch API."""

    def __init__(self, dataset: torch.utils.data.Dataset):
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
    from ..data.sequences import load_sequences
    from ..data.synthetic import SyntheticVideoConfig, write_generic_layout

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
    from ..data.sequences import load_sequences

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
    config: TrainConfig,
    family: TrainingFamily,
    model_config,
    image_processor,
    plan,
    accelerator: Accelerator,
    output_dir: Path,
):
    """The training loader (epoch-ordered samples of `family.training_dataset`), its generator, the fixed validation
    loader (or None) and the tracking-evaluation sequences (or None)."""
    data, training = config.data, config.training
    train_tables = [load_sequence_table(e, data, output_dir, accelerator) for e in data.train_datasets]
    train_dataset = family.training_dataset(
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
        val_dataset = family.training_dataset(
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


__all__ = ["WithSampleIndex", "synthetic_sequences", "load_sequence_table", "build_dataloaders"]
