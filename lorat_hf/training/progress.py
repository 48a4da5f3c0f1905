"""Where a run is, and how to continue it exactly: batch plan, epoch-seeded data order, progress, RNG isolation.

Exact resume rests on three facts:

* the data order of epoch `e` depends on `(seed, e)` only (the pair dataset is deterministic per
  `(seed, epoch, index)` and its sampler yields `(epoch, index)` in order), so after `accelerate.skip_first_batches` a
  resumed run sees the very batches the uninterrupted run would have seen;
* model randomness (drop path, dropout) uses the global RNGs, which accelerate's `save_state` stores per rank;
* work that is not training (validation, tracking evaluation) runs inside `isolated_rng()`, so whether and when it
  runs never shifts the training RNG stream.

With a constant global batch the global sample order also does not depend on the number of processes: step `k` of an
epoch consumes the samples at positions `[k * G, (k + 1) * G)` of that epoch however they are split over ranks and
micro-batches (accelerate hands out per-process batches round-robin).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is split, and the epoch length in optimizer steps."""

    global_batch_size: int
    num_processes: int
    gradient_accumulation_steps: int
    per_device_batch_size: int
    steps_per_epoch: int
    samples_per_epoch: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def plan_batches(
    global_batch_size: int, num_processes: int, gradient_accumulation_steps: int, samples_per_epoch: int
) -> BatchPlan:
    """Split `global_batch_size` over processes and accumulation steps; `steps_per_epoch = samples // global`.

    Raises `ValueError` when the split is not exact (the official recipe needs the global batch to stay 128) or an
    epoch is shorter than one global batch.
    """
    per_step = num_processes * gradient_accumulation_steps
    if global_batch_size % per_step:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by num_processes ({num_processes}) x "
            f"gradient_accumulation_steps ({gradient_accumulation_steps}) = {per_step}. Change "
            "--gradient_accumulation_steps or the number of processes so that every process gets the same micro-batch."
        )
    steps_per_epoch = samples_per_epoch // global_batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"samples_per_epoch={samples_per_epoch} is smaller than one global batch ({global_batch_size})."
        )
    if samples_per_epoch % global_batch_size:
        logger.warning(
            "samples_per_epoch=%d is not a multiple of the global batch %d: each epoch uses the first %d samples.",
            samples_per_epoch,
            global_batch_size,
            steps_per_epoch * global_batch_size,
        )
    return BatchPlan(
        global_batch_size=global_batch_size,
        num_processes=num_processes,
        gradient_accumulation_steps=gradient_accumulation_steps,
        per_device_batch_size=global_batch_size // per_step,
        steps_per_epoch=steps_per_epoch,
        samples_per_epoch=steps_per_epoch * global_batch_size,
    )


@dataclass
class TrainingProgress:
    """Position of a run: optimizer steps done in total and inside the current epoch."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0

    def advance(self, steps_per_epoch: int) -> None:
        """Count one optimizer step; roll over to the next epoch after `steps_per_epoch` steps."""
        self.global_step += 1
        self.step_in_epoch += 1
        if self.step_in_epoch == steps_per_epoch:
            self.epoch += 1
            self.step_in_epoch = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainingProgress:
        return cls(int(values["global_step"]), int(values["epoch"]), int(values["step_in_epoch"]))


@contextlib.contextmanager
def isolated_rng() -> Iterator[None]:
    """Run a block without consuming the python, numpy, torch CPU and CUDA RNG streams of the caller."""
    python_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


__all__ = ["BatchPlan", "plan_batches", "TrainingProgress", "isolated_rng"]
