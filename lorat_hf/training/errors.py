"""The one exception a training run refuses to start with (reported as one line, not a traceback)."""

from __future__ import annotations


class TrainingSetupError(ValueError):
    """A run that cannot start as asked: bad recipe or flag, an output folder holding another run, a checkpoint that
    cannot be resumed, a missing package. The message says what is wrong and what to do."""


__all__ = ["TrainingSetupError"]
