"""`lorat-train`: train a tracker from a YAML recipe (the loop of `lorat_hf.training.loop`).

    lorat-train --config examples/configs/tiny-synthetic.yaml             # one process
    accelerate launch -m lorat_hf.commands.train --config recipe.yaml     # several processes / GPUs

Runs exactly what `accelerate launch examples/train.py` runs; every flag is a recipe field (`--help` lists them).
"""

from __future__ import annotations

import sys

from ..training.loop import cli


def main(argv: list[str] | None = None) -> int:
    """The `lorat-train` console script: train, or say in one line why the run cannot start (exit status 2)."""
    return cli(argv, prog="lorat-train")


__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
