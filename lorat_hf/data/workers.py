"""DataLoader worker processes: how they start and what they may call when they do.

Workers are never forked from the training process. By the time the first batch is requested, that process has
used OpenCV (generating synthetic videos, decoding frames) and torch, whose thread pools do not survive `fork`: a
forked worker that touches them (`cv2.setNumThreads`, the first parallel resize) deadlocks or crashes. Workers are
forked instead from a clean *forkserver* process (started with `exec`, it has imported the heavy modules but never
run a parallel operation), or spawned where forkserver does not exist. In such a fresh worker `init_worker` may
safely pin OpenCV to one thread (the workers are the parallelism; torch already uses one thread per worker).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

# Imported once by the forkserver so that each worker starts in milliseconds instead of re-importing torch/OpenCV.
FORKSERVER_PRELOAD = ("__main__", "torch", "cv2", "lorat_hf.data.pairs")


def worker_start_method() -> str:
    """`forkserver` where the platform has it (Linux, macOS), else `spawn` (Windows): never `fork`."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def worker_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context DataLoader workers start from (see the module docstring)."""
    context = multiprocessing.get_context(worker_start_method())
    if worker_start_method() == "forkserver":
        context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
    return context


def init_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: one OpenCV thread per worker (safe: the worker did not inherit a thread pool)."""
    import cv2

    cv2.setNumThreads(1)


def dataloader_worker_options(num_workers: int, persistent_workers: bool = True) -> dict[str, Any]:
    """The DataLoader keyword arguments for `num_workers` worker processes (none for in-process loading).

    Returns:
        `num_workers`, `persistent_workers` and, when `num_workers > 0`, `multiprocessing_context` and
        `worker_init_fn`.
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}.")
    if num_workers == 0:
        return {"num_workers": 0, "persistent_workers": False}
    return {
        "num_workers": num_workers,
        "persistent_workers": persistent_workers,
        "multiprocessing_context": worker_context(),
        "worker_init_fn": init_worker,
    }


__all__ = ["FORKSERVER_PRELOAD", "dataloader_worker_options", "init_worker", "worker_context", "worker_start_method"]
