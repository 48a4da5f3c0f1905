"""Command-line entry points (`lorat-track`, `lorat-eval`, `lorat-push` here; `lorat-app` and `lorat-vot` in
`lorat_hf.app` and `lorat_hf.vot`) and the tracker options that several of them share."""

import argparse
import sys


def add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    """`--model`, `--revision`, `--device`, `--dtype`: which tracker to load and how to run it."""
    parser.add_argument("--model", help="tracker folder or Hub repo id (default: the embedded demo tracker)")
    parser.add_argument("--revision", help="Hub revision of --model")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32", help="compute dtype")


def load_tracker_from_arguments(args: argparse.Namespace, prog: str):
    """The `LoraTracker` named by `add_tracker_arguments`' options, or None after printing why it cannot be loaded."""
    from ..tracking import LoraTracker

    hub_kwargs = {"revision": args.revision} if args.revision else {}
    try:
        return LoraTracker.from_pretrained(args.model, device=args.device, dtype=args.dtype, **hub_kwargs)
    except (OSError, ValueError) as error:
        print(f"{prog}: error: cannot load the tracker from {args.model or 'the package'}: {error}", file=sys.stderr)
        return None
