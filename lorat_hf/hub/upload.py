"""Publishing: assemble a fresh upload folder from an allow-list, then push it to the Hub as one commit."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError
from peft import PeftModel

from ..adapters import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, TRACKER_CONFIG_NAME, save_adapter_folder
from ..adapters_loratv2 import save_stream_adapters
from ..configuration_lora_tracker import LoraTrackerConfig
from ..configuration_loratv2 import Loratv2Config
from ..file_utils import staged_directory
from ..modeling_lora_tracker import LoraTrackerModel
from ..modeling_loratv2 import Loratv2Model
from .cards import DEFAULT_LICENSE, _flatten, build_model_card, count_tracker_parameters, validate_model_card
from .common import (
    CARD_NAME,
    EVAL_DIR,
    EVAL_RESULTS_NAME,
    MERGED_INDEX_NAME,
    MERGED_WEIGHTS_NAME,
    PREPROCESSOR_CONFIG_NAME,
    TRAIN_CONFIG_NAME,
    HubPublishError,
    ModelCardError,
    _is_hub_id,
    _read_json,
)
from .folders import TrackerFolder, inspect_tracker_folder, resolve_base_model
from .results import _as_results, benchmark_names

logger = logging.getLogger(__name__)

# What an assembled folder may hold (also passed to `upload_folder` as `allow_patterns`).
UPLOAD_PATTERNS = [
    CARD_NAME,
    TRACKER_CONFIG_NAME,
    PREPROCESSOR_CONFIG_NAME,
    TRAIN_CONFIG_NAME,
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    MERGED_WEIGHTS_NAME,
    MERGED_INDEX_NAME,
    "model-*-of-*.safetensors",
    EVAL_RESULTS_NAME,
    "*.png",
    f"{EVAL_DIR}/*.json",
    f"{EVAL_DIR}/*.png",
]
# Files a previous push may have left that this push replaces: removed from the branch when not re-uploaded, so that
# switching a repo between adapter and merged weights never leaves both. Other files in the repo are not touched.
MANAGED_REMOTE_PATTERNS = [
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    MERGED_WEIGHTS_NAME,
    MERGED_INDEX_NAME,
    "model-*-of-*.safetensors",
    PREPROCESSOR_CONFIG_NAME,
    TRAIN_CONFIG_NAME,
    EVAL_RESULTS_NAME,
    f"{EVAL_DIR}/*",
]


@dataclass
class AssembledFolder:
    """A folder ready to upload: `files` (relative POSIX paths), the card, and what was left out.

    `upload_patterns` is the allow-list of the upload and `managed_patterns` the files of an earlier push it
    replaces (`UPLOAD_PATTERNS` / `MANAGED_REMOTE_PATTERNS`, plus the stream adapter folders of a LoRATv2 tracker).
    """

    path: Path
    kind: str
    base_model: str
    files: list[str]
    card: ModelCard
    left_out: list[str]
    upload_patterns: list[str] = field(default_factory=lambda: list(UPLOAD_PATTERNS))
    managed_patterns: list[str] = field(default_factory=lambda: list(MANAGED_REMOTE_PATTERNS))


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link large read-only files when possible (same filesystem), otherwise copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _load_card(model_card: ModelCard | str | os.PathLike) -> ModelCard:
    if isinstance(model_card, ModelCard):
        return model_card
    if not os.path.isfile(model_card):
        raise FileNotFoundError(f"No model card at {str(model_card)!r}.")
    return ModelCard.load(model_card)


def assemble_upload_folder(
    folder: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    repo_id: str | None = None,
    base_model: str | None = None,
    model_card: ModelCard | str | os.PathLike | None = None,
    eval_reports: Sequence[str | os.PathLike] = (),
    plots: Sequence[str | os.PathLike] = (),
    license: str = DEFAULT_LICENSE,
    model_name: str | None = None,
) -> AssembledFolder:
    """Build a fresh, publishable copy of a tracker folder in `output_dir` (which must not exist or be empty).

    Only allow-listed files are copied (see `UPLOAD_PATTERNS`); `config.json` and `adapter_config.json` are rewritten
    to name the backbone's Hub id; `preprocessor_config.json` is generated from the tracker config when absent;
    `eval_reports` and `plots` go to `eval/`; the card (`model_card`, or one built with `build_model_card`) is
    validated and written last as `README.md`. The source folder is never modified.
    """
    info = inspect_tracker_folder(folder)
    hub_id = resolve_base_model(info, base_model)
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise FileExistsError(f"{output_dir} exists and is not an empty folder; choose a new output folder.")
    reports = _read_reports(info, eval_reports, plots)
    card = _load_card(model_card) if model_card is not None else None

    with staged_directory(output_dir) as staging:
        _stage_files(info, staging, [*eval_reports, *plots])
        config = _stage_configs(info, staging, hub_id)
        adapter = info.kind == "adapter"
        if card is None:
            card = build_model_card(
                config,
                model_name=model_name or (repo_id.split("/")[-1] if repo_id else info.path.resolve().name),
                base_model=hub_id,
                repo_id=repo_id,
                adapter=adapter,
                peft_config=info.adapter_config,
                num_parameters=count_tracker_parameters(config) if info.is_loratv2 else None,
                train_config=info.train_config,
                eval_results=reports,
                datasets=_hub_datasets(info.train_config),
                license=license,
                plots=[*info.plots, *(f"{EVAL_DIR}/{Path(p).name}" for p in plots)],
            )
            if (info.path / CARD_NAME).is_file():
                logger.info("Replacing %s (peft's or an older card) with a generated card.", info.path / CARD_NAME)
        validate_model_card(card, adapter=adapter, base_model=hub_id)
        card.save(str(staging / CARD_NAME))

    files = sorted(p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file())
    if info.left_out:
        logger.info("Not published from %s: %s", info.path, ", ".join(info.left_out))
    stream_files = [f"{s}/{name}" for s in _streams(config) for name in (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME)]
    return AssembledFolder(
        output_dir,
        info.kind,
        hub_id,
        files,
        card,
        info.left_out,
        upload_patterns=[*UPLOAD_PATTERNS, *stream_files],
        managed_patterns=[*MANAGED_REMOTE_PATTERNS, *stream_files],
    )


def _streams(config: LoraTrackerConfig | Loratv2Config) -> list[str]:
    """The streams of a LoRATv2 tracker, each published as a peft adapter in a folder of its name; none for LoRAT."""
    return list(config.stream_names) if isinstance(config, Loratv2Config) else []


def _read_reports(
    info: TrackerFolder, eval_reports: Sequence[str | os.PathLike], plots: Sequence[str | os.PathLike]
) -> list[Any]:
    """The folder's and the extra lorat-eval reports, checked (even under a given card), and the plots checked."""
    extra_names = [Path(p).name for p in [*eval_reports, *plots]]
    duplicates = sorted({n for n in extra_names if extra_names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Several evaluation files are named {duplicates}; rename them (they all go to {EVAL_DIR}/).")
    for plot in plots:
        if not str(plot).lower().endswith(".png") or not os.path.isfile(plot):
            raise FileNotFoundError(f"Plot {str(plot)!r} is not an existing .png file.")
    reports: list[Any] = []
    for source in ([info.eval_results] if info.eval_results is not None else []) + [
        _read_json(path, "evaluation report") for path in eval_reports
    ]:
        reports.extend(source if isinstance(source, list) else [source])
    _as_results(reports)
    return reports


def _stage_configs(info: TrackerFolder, staging: Path, hub_id: str) -> LoraTrackerConfig | Loratv2Config:
    """Write the tracker and adapter configs (one per LoRATv2 stream) naming the backbone `hub_id`, and the
    preprocessor config; return the tracker config as written."""
    raw_config = _read_json(info.path / TRACKER_CONFIG_NAME, "tracker config")
    if raw_config.get("backbone_name_or_path") != hub_id:
        logger.info("config.json: backbone_name_or_path %r -> %r", raw_config.get("backbone_name_or_path"), hub_id)
        raw_config["backbone_name_or_path"] = hub_id
    _write_json(staging / TRACKER_CONFIG_NAME, raw_config)
    config = type(info.config).from_json_file(str(staging / TRACKER_CONFIG_NAME))
    adapter_configs = {ADAPTER_CONFIG_NAME: info.adapter_config} if info.adapter_config is not None else {}
    adapter_configs.update({f"{s}/{ADAPTER_CONFIG_NAME}": c for s, c in info.stream_adapter_configs.items()})
    for name, values in adapter_configs.items():
        adapter_config = dict(values)
        if adapter_config.get("base_model_name_or_path") != hub_id:
            logger.info(
                "%s: base_model_name_or_path %r -> %r", name, adapter_config.get("base_model_name_or_path"), hub_id
            )
            adapter_config["base_model_name_or_path"] = hub_id
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        _write_json(staging / name, adapter_config)
    if info.has_preprocessor_config:
        shutil.copy2(info.path / PREPROCESSOR_CONFIG_NAME, staging / PREPROCESSOR_CONFIG_NAME)
    else:
        from ..image_processing_lora_tracker import LoraTrackerImageProcessor

        logger.info("No %s in %s: writing one from the tracker config.", PREPROCESSOR_CONFIG_NAME, info.path)
        LoraTrackerImageProcessor.from_tracker_config(config).save_pretrained(str(staging))
    return config


def _stage_files(info: TrackerFolder, staging: Path, eval_files: Sequence[str | os.PathLike]) -> None:
    """Link or copy the weights, training config, evaluation results and plots; `eval_files` go to `eval/`."""
    for name in info.weight_files:
        _link_or_copy(info.path / name, staging / name)
    for name in [TRAIN_CONFIG_NAME, EVAL_RESULTS_NAME, *info.plots]:
        if (info.path / name).is_file():
            shutil.copy2(info.path / name, staging / name)
    for extra in eval_files:
        (staging / EVAL_DIR).mkdir(exist_ok=True)
        shutil.copy2(extra, staging / EVAL_DIR / Path(extra).name)


def _hub_datasets(train_config: Mapping[str, Any] | None) -> list[str] | None:
    """Hub dataset ids of the known benchmarks named in a training config (only those hosted on the Hub)."""
    if not train_config:
        return None
    names: list[str] = []
    for key, value in _flatten(train_config).items():
        if key.split(".")[-1] in ("train_datasets", "datasets", "dataset_names", "dataset"):
            names.extend(value if isinstance(value, list) else [value])
    ids = [benchmark_names(n.split(":")[0])[1] for n in names if isinstance(n, str)]  # "lasot:train" -> lasot
    return sorted({i for i in ids if "/" in i}) or None


@dataclass
class PushResult:
    """What `push_tracker_to_hub` uploaded (or would upload, with `dry_run=True`)."""

    repo_id: str
    revision: str
    files: list[str]
    kind: str
    base_model: str
    card: ModelCard = field(repr=False)
    left_out: list[str] = field(repr=False)
    commit_url: str | None = None
    commit_oid: str | None = None
    dry_run: bool = False

    def __str__(self) -> str:
        action = "would upload" if self.dry_run else "uploaded"
        where = f" ({self.commit_url})" if self.commit_url else ""
        return f"{self.repo_id}@{self.revision}: {action} {len(self.files)} files{where}"


def _save_model(model: PeftModel | LoraTrackerModel | Loratv2Model, folder: Path) -> None:
    """Write a model object as an adapter folder (peft; one adapter per stream for LoRATv2) or a merged model
    folder, with its preprocessor config."""
    from ..image_processing_lora_tracker import LoraTrackerImageProcessor

    if isinstance(model, PeftModel) and isinstance(model.get_base_model(), Loratv2Model):
        save_stream_adapters(model, folder)
        config = model.get_base_model().config
    elif isinstance(model, PeftModel):
        if len(model.peft_config) != 1:
            raise ValueError(
                f"The model holds adapters {list(model.peft_config)}; publish one at a time (remove the others with "
                "model.delete_adapter(name), or push the folder each adapter was loaded from)."
            )
        save_adapter_folder(model, folder)
        (name,) = model.peft_config
        nested = folder / name  # peft saves an adapter not named "default" in a sub-folder of that name
        if name != "default" and nested.is_dir():
            for path in nested.iterdir():
                os.replace(path, folder / path.name)
            nested.rmdir()
        config = model.get_base_model().config
    elif isinstance(model, (LoraTrackerModel, Loratv2Model)):
        model.save_pretrained(folder)
        config = model.config
    else:
        raise TypeError(
            f"Expected a folder, a PeftModel, a LoraTrackerModel or a Loratv2Model, got {type(model).__name__}."
        )
    LoraTrackerImageProcessor.from_tracker_config(config).save_pretrained(str(folder))


def _is_transport_error(error: Exception) -> bool:
    """A network failure of the HTTP client huggingface_hub uses (httpx / httpx2 errors are not OSErrors)."""
    return type(error).__module__.split(".")[0] in ("httpx", "httpx2")


def _hub_error(error: Exception, repo_id: str) -> HubPublishError:
    status = getattr(getattr(error, "response", None), "status_code", None)
    namespace = repo_id.split("/")[0]
    if status == 401:
        message = (
            f"The Hub refused the upload to {repo_id}: you are not logged in (401). Run `hf auth login` or set "
            "HF_TOKEN to a token with write access."
        )
    elif status == 403:
        message = (
            f"Your token cannot write to {repo_id} (403 Forbidden): use a token with write access to the "
            f"'{namespace}' namespace."
        )
    elif status is not None:
        message = f"The Hub answered {status} while uploading to {repo_id}: {error}"
    else:
        message = f"Could not reach the Hub to upload {repo_id}: {error}"
    return HubPublishError(message)


def push_tracker_to_hub(
    folder: str | os.PathLike | PeftModel | LoraTrackerModel | Loratv2Model,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    *,
    base_model: str | None = None,
    model_card: ModelCard | str | os.PathLike | None = None,
    eval_reports: Sequence[str | os.PathLike] = (),
    plots: Sequence[str | os.PathLike] = (),
    license: str = DEFAULT_LICENSE,
    dry_run: bool = False,
) -> PushResult:
    """Publish a tracker: validate, assemble a fresh folder (allow-list + model card), upload it as one commit.

    Args:
        folder: an adapter folder (e.g. training's `final/` or a `lorat_hf.convert` output), a merged model folder,
            a LoRATv2 folder (one peft adapter per stream, or merged), or a `PeftModel` / merged `LoraTrackerModel` /
            merged `Loratv2Model` (saved to a temporary folder first).
        repo_id: `ORG/NAME`; created if missing (`private` applies only then).
        revision: branch to commit to (created from `main` if missing); default `main`.
        token: Hub token; by default the one from `hf auth login` or `HF_TOKEN`.
        commit_message: defaults to "Upload LoRAT tracker".
        base_model: Hub id of the DINOv2 backbone, needed when the folder names only a local path.
        model_card: a reviewed card (`ModelCard` or a README path) to publish instead of a generated one.
        eval_reports: lorat-eval report JSON files: uploaded to `eval/` and shown in the card.
        plots: PNG plots uploaded to `eval/` and embedded in the card.
        license: license id for a generated card.
        dry_run: validate and assemble only; nothing is sent to the Hub.

    Returns:
        A `PushResult` with the uploaded files and the commit URL.

    Raises:
        TrackerFolderError / ModelCardError (both `ValueError`) for a folder or card that cannot be published,
        `HubPublishError` when the Hub refuses or cannot be reached.
    """
    if not isinstance(repo_id, str) or not _is_hub_id(repo_id):
        raise ValueError(f"repo_id {repo_id!r} must be ORG/NAME (your user name or an organisation, then a name).")
    with tempfile.TemporaryDirectory(prefix="lorat-push-") as tmp:
        source = folder
        if not isinstance(folder, (str, os.PathLike)):
            source = Path(tmp) / "model"
            _save_model(folder, source)
        assembled = assemble_upload_folder(
            source,
            Path(tmp) / "upload",
            repo_id=repo_id,
            base_model=base_model,
            model_card=model_card,
            eval_reports=eval_reports,
            plots=plots,
            license=license,
        )
        result = PushResult(
            repo_id=repo_id,
            revision=revision or "main",
            files=assembled.files,
            kind=assembled.kind,
            base_model=assembled.base_model,
            card=assembled.card,
            left_out=assembled.left_out,
            dry_run=dry_run,
        )
        if dry_run:
            return result
        commit = _upload_folder(assembled, repo_id, revision, private, token, commit_message)
    result.commit_url, result.commit_oid = commit.commit_url, commit.oid
    return result


def _upload_folder(
    assembled: AssembledFolder,
    repo_id: str,
    revision: str | None,
    private: bool,
    token: str | bool | None,
    commit_message: str | None,
) -> CommitInfo:
    """Create the repo (and branch) if missing and upload `assembled` as one commit; Hub failures become
    `HubPublishError`, a card the Hub's own check refuses `ModelCardError`."""
    api = HfApi(token=token)
    try:
        try:
            assembled.card.validate()  # the Hub's own metadata check
        except ValueError as error:
            raise ModelCardError(f"The Hub rejected the model card metadata: {error}") from error
        api.create_repo(repo_id, private=private, exist_ok=True)
        if private and not api.repo_info(repo_id).private:
            logger.warning(
                "%s already exists and is public: `private` only applies to new repositories. Change the "
                "visibility in the repository settings if it must be private.",
                repo_id,
            )
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        logger.info("Uploading %d files to %s (%s)", len(assembled.files), repo_id, revision or "main")
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=str(assembled.path),
            commit_message=commit_message or "Upload LoRAT tracker",
            revision=revision,
            allow_patterns=assembled.upload_patterns,
            delete_patterns=assembled.managed_patterns,
        )
    except HfHubHTTPError as error:
        raise _hub_error(error, repo_id) from error
    except ModelCardError:
        raise
    except Exception as error:
        if isinstance(error, OSError) or _is_transport_error(error):
            raise _hub_error(error, repo_id) from error
        raise


__all__ = [
    "MANAGED_REMOTE_PATTERNS",
    "UPLOAD_PATTERNS",
    "AssembledFolder",
    "PushResult",
    "assemble_upload_folder",
    "push_tracker_to_hub",
]
