"""`lorat-push`: publish a trained or converted tracker folder on the Hugging Face Hub with a model card.

    lorat-push outputs/run/final --repo-id my-org/lorat-b224-custom
    lorat-push lorat-b224 --repo-id my-org/lorat-b224 --base-model facebook/dinov2-base --dry-run

Only a freshly assembled copy of the folder is uploaded (weights, configs, preprocessor and training configs,
evaluation reports and plots, and a generated or given model card); checkpoints, optimizer states, logs and backbone
copies never are. Log in first with `hf auth login` (or set HF_TOKEN): tokens are never taken on the command line.
Also runs as `python -m lorat_hf.commands.push`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..hub import DEFAULT_LICENSE, HubPublishError, PushResult, push_tracker_to_hub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lorat-push",
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 when the folder, the card or the upload is refused.",
    )
    parser.add_argument(
        "folder",
        help="adapter folder (training's final/ or a lorat_hf.convert output; LoRATv2: one adapter per stream) or "
        "merged model folder",
    )
    parser.add_argument("--repo-id", required=True, help="Hub repository ORG/NAME (created if missing)")
    parser.add_argument(
        "--private", action="store_true", help="create the repository as private (new repositories only)"
    )
    parser.add_argument("--revision", help="branch to commit to (created from main if missing; default main)")
    parser.add_argument("--commit-message", help='commit title (default "Upload LoRAT tracker")')
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and list what would be uploaded; send nothing"
    )
    parser.add_argument(
        "--base-model",
        help="Hub id of the DINOv2 backbone (e.g. facebook/dinov2-base) when the folder names a local path",
    )
    parser.add_argument("--model-card", help="publish this reviewed README.md instead of a generated card")
    parser.add_argument(
        "--eval-report",
        action="append",
        default=[],
        metavar="JSON",
        help="lorat-eval report to upload and show (repeatable)",
    )
    parser.add_argument(
        "--plot", action="append", default=[], metavar="PNG", help="plot to upload and embed (repeatable)"
    )
    parser.add_argument(
        "--license", default=DEFAULT_LICENSE, help=f"license id of a generated card (default {DEFAULT_LICENSE})"
    )
    return parser


def _describe(result: PushResult) -> str:
    where = f"{result.repo_id} (branch {result.revision})"
    head = (
        f"Dry run: would upload {len(result.files)} files to {where}"
        if result.dry_run
        else (f"Uploaded {len(result.files)} files to {where}: {result.commit_url}")
    )
    lines = [head, *(f"  {name}" for name in result.files)]
    data = result.card.data
    lines.append(
        f"Model card: {data.model_name}, {result.kind} on {result.base_model}, library {data.library_name}, "
        f"{len(data.eval_results or [])} model-index metrics"
    )
    if result.left_out:
        lines.append("Never published from the folder: " + ", ".join(result.left_out))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = push_tracker_to_hub(
            args.folder,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            base_model=args.base_model,
            model_card=args.model_card,
            eval_reports=args.eval_report,
            plots=args.plot,
            license=args.license,
            dry_run=args.dry_run,
        )
    except (ValueError, OSError, HubPublishError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(_describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
