#!/usr/bin/env python
"""Train a LoRAT tracker with accelerate.

    accelerate launch examples/train.py --config examples/configs/B-224.yaml [--field value ...]

The loop lives in the package (`lorat_hf/training/loop.py`, whose docstring lists its steps) and is also installed as
the `lorat-train` command; this script is its `accelerate launch` entry point. The recipe (YAML) and every flag are
documented in `lorat_hf/training/arguments.py`; `examples/README.md` has the launch commands for each variant and
accelerate config. `--resume_from_checkpoint latest` continues exactly: same batches, same RNG, same losses as an
uninterrupted run.
"""

import sys

from lorat_hf.training.loop import cli

if __name__ == "__main__":
    sys.exit(cli(prog="train.py"))
