"""Render the model cards of the official LoRAT and LoRATv2 checkpoints, converted with `lorat_hf.convert`.

    python model_cards/generate.py                     # rewrite model_cards/lorat-*.md
    python model_cards/generate.py --check             # exit 1 when a committed card differs from its rendering
    python model_cards/generate.py --namespace my-org  # cards for repos my-org/lorat-*

Every card comes from `lorat_hf.hub.build_model_card`; this file only holds the facts about the official releases:
variants, release file names, the training recipe, and the reported results with their provenance (see
model_cards/README.md for how the numbers were sourced and how cards are reviewed). A test checks that the committed
cards equal this rendering.
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lorat_hf import LoraTrackerConfig
from lorat_hf.configuration_lora_tracker import BACKBONES
from lorat_hf.configuration_loratv2 import Loratv2Config
from lorat_hf.file_utils import write_text_atomic
from lorat_hf.hub import CODE_URL, PAPER_URL, TrackingResult, build_model_card, count_tracker_parameters

CARDS_DIR = Path(__file__).resolve().parent
REPORTS_DIR = (
    CARDS_DIR / "reports"
)  # reports/<card name>/*.json: lorat-eval reports measured on a converted checkpoint
HUB_NAMESPACE = "lorat-hf"
RELEASE_FOLDER_URL = "https://drive.google.com/drive/folders/1FvViP0MCSiAu2FSrNjg7XEORn74yOBdD"
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vit{size}14/dinov2_vit{size}14_pretrain.pth"

# Provenance of reported numbers: (source name, URL, confirmed).
PAPER = ("LoRAT paper (ECCV 2024), as restated in the authors' LoRATv2 paper", PAPER_URL, True)
QUOTED = ("LoRAT paper (ECCV 2024), as quoted in SAMURAI / DreamTrack / RELO comparison tables", PAPER_URL, True)
README = ("official LoRAT README (VastTrack update)", CODE_URL, True)
SECONDARY = ("secondary summaries of the paper", None, False)


@dataclass(frozen=True)
class Reported:
    benchmark: str
    metrics: dict[str, float]
    source: tuple[str, str | None, bool]

    def result(self) -> TrackingResult:
        name, url, confirmed = self.source
        return TrackingResult.for_benchmark(
            self.benchmark, self.metrics, source_name=name, source_url=url, confirmed=confirmed
        )


def suc_pn_p(benchmark: str, suc: float, p_norm: float | None, p: float | None, source) -> Reported:
    metrics = {"success_auc": suc, "normalized_precision": p_norm, "precision": p}
    return Reported(benchmark, {k: v for k, v in metrics.items() if v is not None}, source)


def got10k(ao: float, sr50: float | None, sr75: float | None, source) -> Reported:
    metrics = {"average_overlap": ao, "success_rate_50": sr50, "success_rate_75": sr75}
    return Reported("GOT-10k", {k: v for k, v in metrics.items() if v is not None}, source)


@dataclass(frozen=True)
class OfficialCheckpoint:
    variant: str
    release_file: str
    got10k_protocol: bool = False
    results: tuple[Reported, ...] = ()
    not_reported: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        size, resolution = self.variant.split("-")
        return f"lorat-{size.lower()}{resolution}" + ("-got10k" if self.got10k_protocol else "")

    @property
    def datasets(self) -> list[str] | None:
        return None if self.got10k_protocol else ["l-lt/LaSOT"]

    @property
    def tags(self) -> tuple[str, ...]:
        return ("got-10k-protocol",) if self.got10k_protocol else ()

    def config(self) -> LoraTrackerConfig:
        return LoraTrackerConfig.from_variant(self.variant)

    def parameter_counts(self) -> tuple[int, int]:
        return parameter_counts(self.variant)

    def measured_reports(self) -> list[Path]:
        """lorat-eval reports measured on this converted checkpoint (`reports/<card name>/*.json`), sorted by name."""
        return sorted((REPORTS_DIR / self.name).glob("*.json"))

    def eval_results(self) -> list[TrackingResult | Path]:
        return [reported.result() for reported in self.results] + self.measured_reports()

    def description(self, config: LoraTrackerConfig) -> str:
        protocol = "GOT-10k protocol (trained on GOT-10k train only)" if self.got10k_protocol else "main protocol"
        return (
            f"LoRAT-{self.variant}, {protocol}: the official checkpoint `{self.release_file}` of the ECCV 2024 "
            f"paper, converted to a peft adapter for `{config.backbone_name_or_path}` with `lorat_hf.convert`."
        )

    def result_notes(self) -> list[str]:
        measured = (
            " `lorat-eval` rows were measured on the converted weights."
            if self.measured_reports()
            else " They were not re-measured on the converted weights."
        )
        notes = [
            "Reported numbers are those published for the original checkpoint (GPU, fp16 autocast, LoRA merged)."
            + measured
            + " The conversion reproduces the official model's outputs on the official reference fixtures (fp32, CPU).",
        ]
        if self.got10k_protocol:
            notes.append(
                "GOT-10k test scores come from the evaluation server; the official evaluation runs it 3 times."
            )
        else:
            notes.append("LaSOT_ext is run 3 times and averaged in the official evaluation.")
        if self.not_reported:
            notes.append(
                f"{', '.join(self.not_reported)}: not reported in the sources checked; take them from the paper's "
                "tables when reviewing."
            )
        return [*notes, *self.notes]

    def training_rows(self, config: LoraTrackerConfig) -> list[tuple[str, str]]:
        """The official recipe (`config/LoRAT/run.yaml`, `_mixin/got10k.yaml`), identical for all variants but the
        backbone's stochastic depth, the crop sizes and, for the GOT-10k protocol, the data and the number of
        epochs."""
        if self.got10k_protocol:
            data = "GOT-10k train (full split only, as the GOT-10k one-shot protocol requires)"
            length = "100 epochs × 131,072 pairs = 102,400 iterations at global batch 128"
        else:
            data = (
                "LaSOT train, TrackingNet train (TRAIN_0–11), COCO 2017 train (images as one-frame sequences), GOT-10k "
                "train without the sequences that overlap VOT (7,086); the four datasets are sampled 1:1:1:1"
            )
            length = "170 epochs × 131,072 pairs = 174,080 iterations at global batch 128"
        pairs = (
            "template and search frames of one track at most 100 frames apart; template crop factor 2.0, search crop "
            f"factor {config.search_area_factor:.1f} with scale jitter 0.25 and translation jitter 3"
        )
        lora = (
            f"r = {config.lora_r}, alpha = {config.lora_alpha:g}, dropout 0, both A and B initialised trunc-normal "
            "(std 0.02)"
        )
        return recipe_rows(config, [("Training data", data), ("Pairs", pairs)], length, "1e-6", lora)

    def conversion_text(self, config: LoraTrackerConfig, repo_id: str) -> str:
        size_letter = self.variant.split("-")[0]
        size = size_letter.lower()
        backbone = BACKBONES[size_letter].checkpoint
        dinov2_file = f"dinov2_vit{size}14_pretrain.pth"
        release = f"`{self.release_file}`"
        if self.got10k_protocol:
            release += " (the GOT-10k-protocol models sit in the release's `GOT10k/` folder; the file name there is not confirmed)"
        return f"""1. Download {release} from the [official release folder]({RELEASE_FOLDER_URL}) (a safetensors file despite its
   suffix, holding only the trained tensors), and the DINOv2 weights `{dinov2_file}` from
   <{DINOV2_URL.format(size=size)}>.
2. Convert (the output folder is a peft adapter that names `{backbone}` as its backbone):

   ```bash
   python -m lorat_hf.convert --dinov2 {dinov2_file} --lorat {self.release_file.split("/")[-1]} --variant {self.variant} \\
       --backbone-id {backbone} --output {self.name}
   ```

3. Publish with this card: `lorat-push {self.name} --repo-id {repo_id} --model-card model_cards/{self.name}.md`.

At load time the adapter is applied to `{backbone}` from the Hub, while the official model uses the `.pth` file;
whether the two hold bit-identical tensors has not been checked (see the review checklist in `model_cards/README.md`)."""


MAIN_BENCHMARKS = ("LaSOT", "LaSOT_ext", "TrackingNet", "TNL2K", "VastTrack")
MAIN = [
    OfficialCheckpoint(
        "B-224",
        "base.bin",
        results=(
            suc_pn_p("LaSOT", 71.7, 80.9, 77.3, PAPER),
            suc_pn_p("LaSOT_ext", 50.3, 61.6, 57.1, QUOTED),
            suc_pn_p("TrackingNet", 83.5, 87.9, 82.1, QUOTED),
            suc_pn_p("TNL2K", 58.8, None, 61.3, PAPER),
            suc_pn_p("VastTrack", 38.7, 41.1, 37.8, README),
        ),
    ),
    OfficialCheckpoint(
        "B-378",
        "base-378.bin",
        results=(
            suc_pn_p("LaSOT", 72.9, None, None, SECONDARY),
            suc_pn_p("VastTrack", 40.4, 43.4, 40.7, README),
        ),
        not_reported=("LaSOT_ext", "TrackingNet", "TNL2K"),
    ),
    OfficialCheckpoint(
        "L-224",
        "large.bin",
        results=(
            suc_pn_p("LaSOT", 74.2, 83.6, 80.9, QUOTED),
            suc_pn_p("LaSOT_ext", 52.8, 64.7, 60.0, QUOTED),
            suc_pn_p("TrackingNet", 85.0, 89.5, 84.4, QUOTED),
            suc_pn_p("TNL2K", 61.1, None, None, QUOTED),
            suc_pn_p("VastTrack", 41.6, 45.0, 42.3, README),
        ),
        notes=("The paper's abstract gives the same LaSOT success (0.742) for this variant.",),
    ),
    OfficialCheckpoint(
        "L-378",
        "large-378.bin",
        results=(
            suc_pn_p("LaSOT", 75.1, 84.1, 82.0, PAPER),
            suc_pn_p("LaSOT_ext", 56.6, 69.0, 65.1, QUOTED),
            suc_pn_p("TrackingNet", 85.6, 89.7, 85.4, QUOTED),
            suc_pn_p("TNL2K", 62.3, None, 67.0, PAPER),
            suc_pn_p("VastTrack", 43.9, 47.7, 45.8, README),
        ),
    ),
    OfficialCheckpoint(
        "g-224",
        "giant.bin",
        results=(suc_pn_p("VastTrack", 43.0, 47.2, 44.7, README),),
        not_reported=("LaSOT", "LaSOT_ext", "TrackingNet", "TNL2K"),
    ),
    OfficialCheckpoint(
        "g-378",
        "giant-378.bin",
        results=(
            suc_pn_p("LaSOT", 76.2, None, None, SECONDARY),
            suc_pn_p("LaSOT_ext", 56.5, None, None, SECONDARY),
            suc_pn_p("TrackingNet", 86.0, None, None, SECONDARY),
            suc_pn_p("TNL2K", 62.7, None, None, SECONDARY),
            suc_pn_p("VastTrack", 46.0, 50.4, 48.8, README),
        ),
    ),
]
GOT10K = [
    OfficialCheckpoint("B-224", "GOT10k/base.bin", True, (got10k(72.1, 81.8, 70.7, PAPER),)),
    OfficialCheckpoint("B-378", "GOT10k/base-378.bin", True, not_reported=("GOT-10k",)),
    OfficialCheckpoint("L-224", "GOT10k/large.bin", True, (got10k(75.7, 84.9, 75.0, QUOTED),)),
    OfficialCheckpoint("L-378", "GOT10k/large-378.bin", True, (got10k(77.5, 86.2, 78.1, PAPER),)),
    OfficialCheckpoint("g-224", "GOT10k/giant.bin", True, not_reported=("GOT-10k",)),
    OfficialCheckpoint("g-378", "GOT10k/giant-378.bin", True, (got10k(78.9, None, None, SECONDARY),)),
]
CHECKPOINTS = MAIN + GOT10K


def recipe_rows(
    config: LoraTrackerConfig | Loratv2Config,
    first_rows: list[tuple[str, str]],
    length: str,
    final_learning_rate: str,
    lora: str,
) -> list[tuple[str, str]]:
    """The official training recipe's rows: `first_rows` (data, sampling), then what LoRAT and LoRATv2 share."""
    drop_path = config.dinov2_config.drop_path_rate
    return [
        *first_rows,
        ("Augmentation", "horizontal flip, colour jitter 0.4, and one of grayscale / solarize / Gaussian blur"),
        ("Length", length),
        (
            "Optimiser",
            "AdamW, learning rate 1e-4, weight decay 0.1 (none on norms, biases and embeddings), gradient clipping 1.0",
        ),
        (
            "Learning-rate schedule",
            f"2 warm-up epochs from 1e-7, then per-iteration cosine decay to {final_learning_rate}",
        ),
        ("Precision", "fp16 mixed precision"),
        ("LoRA", lora),
        ("Stochastic depth", f"{drop_path:g}" if drop_path else "none"),
        (
            "Loss",
            "IoU-aware binary cross-entropy on the score map + GIoU on the boxes of the positive cells (weights 1 and 1)",
        ),
    ]


@functools.cache
def parameter_counts(variant: str) -> tuple[int, int]:
    """`(total, trainable)` of a variant with the official LoRA (the main and GOT-10k models share them)."""
    return count_tracker_parameters(LoraTrackerConfig.from_variant(variant))


def render(checkpoint: OfficialCheckpoint | Loratv2Checkpoint, namespace: str = HUB_NAMESPACE) -> str:
    """The card of an official checkpoint converted to a peft adapter, for the repo `<namespace>/<name>`."""
    config = checkpoint.config()
    repo_id = f"{namespace}/{checkpoint.name}"
    card = build_model_card(
        config,
        model_name=checkpoint.name,
        base_model=config.backbone_name_or_path,
        repo_id=repo_id,
        adapter=True,
        num_parameters=checkpoint.parameter_counts(),
        training=checkpoint.training_rows(config),
        eval_results=checkpoint.eval_results(),
        result_notes=checkpoint.result_notes(),
        datasets=checkpoint.datasets,
        description=checkpoint.description(config),
        conversion=checkpoint.conversion_text(config, repo_id),
        tags=checkpoint.tags,
    )
    return str(card)


# ----- LoRATv2 (NeurIPS 2025) -----
# The spec's reported figures come from a search of the paper text and were not checked against its tables: they are
# shown marked unconfirmed and kept out of model-index until a reviewer checks them (model_cards/README.md).
LORATV2_FOUND = (
    "LoRATv2 paper (NeurIPS 2025), figures found in a search of its text, not checked against its tables",
    None,
    False,
)


@dataclass(frozen=True)
class Loratv2Checkpoint:
    variant: str
    results: tuple[Reported, ...] = ()
    not_reported: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        phase, size, resolution = self.variant.split("-")
        return f"loratv2-{phase}-{size.lower()}{resolution}"

    @property
    def phase_2(self) -> bool:
        return self.variant.startswith("p2-")

    datasets = ("l-lt/LaSOT",)
    tags = ("loratv2",)

    def config(self) -> Loratv2Config:
        return Loratv2Config.from_variant(self.variant)

    def parameter_counts(self) -> tuple[int, int]:
        return loratv2_parameter_counts(self.variant)

    def eval_results(self) -> list[TrackingResult]:
        return [reported.result() for reported in self.results]

    def description(self, config: Loratv2Config) -> str:
        return (
            f"LoRATv2-{self.variant} (NeurIPS 2025), {'phase 2' if self.phase_2 else 'phase 1'}: the "
            f"official model converted to peft stream adapters for `{config.backbone_name_or_path}` with "
            "`lorat_hf.convert --model-type loratv2`."
        )

    def result_notes(self) -> list[str]:
        notes = [
            "Reported numbers are those published for the original models (GPU); they were not re-measured on "
            "converted weights.",
            f"{', '.join(self.not_reported)}: not found in the sources checked; take them from the paper's tables "
            "when reviewing.",
            *self.notes,
        ]
        if self.variant == "p1-B-224":
            notes.append("Speed reported for B-224: 713 fps on an RTX 5090 (LoRAT B-224 on LaSOT: 71.7).")
        if self.variant == "p2-L-378":
            notes.append("Speed reported for L-378: 202 fps on an RTX 5090, 268 G MACs (LoRAT L-378 on LaSOT: 75.1).")
        return notes

    def training_rows(self, config: Loratv2Config) -> list[tuple[str, str]]:
        """The official LoRATv2 recipe (`config/LoRATv2/p1-B-224/run.yaml`, `_mixin/phase_2.yaml`,
        `_mixin/large.yaml`)."""
        if self.phase_2:
            phase = (
                "phase 2: starts from the phase-1 model of the same size and adds the second search region; only its "
                "LoRA expert, token type and head train. Tuplets: the sampled pair's template frame becomes the "
                "reference region, its search frame the tracked region, and the template is drawn anywhere in the track"
            )
        else:
            phase = "phase 1: the template and search streams each train their LoRA expert, token type and head"
        first_rows = [
            (
                "Training data",
                "LaSOT train, TrackingNet train (TRAIN_0–11), COCO 2017 train (images as one-frame sequences), GOT-10k "
                "train without the sequences that overlap VOT; the four datasets are sampled 1:1:1:1",
            ),
            ("Phase", phase),
            (
                "Samples",
                "template and search frames of one track at most 100 frames apart (either order); template crop "
                "factor 2.0, search crops with scale jitter 0.25 and translation jitter 3; labels of the last region "
                "only",
            ),
        ]
        length = "170 epochs × 131,072 samples = 174,080 iterations at global batch 128"
        lora = f"r = {config.lora_r}, alpha = {config.lora_alpha:g} per stream, dropout 0, A and B trunc-normal (std 0.02)"
        rows = recipe_rows(config, first_rows, length, "5e-6", lora)
        return [*rows, ("Recipe in this repository", f"`examples/configs/loratv2/{self.variant}.yaml`")]

    def conversion_text(self, config: Loratv2Config, repo_id: str) -> str:
        size = self.variant.split("-")[1].lower()
        timm_name = f"vit_{'base' if size == 'b' else 'large'}_patch14_reg4_dinov2.lvd142m"
        phase1 = ""
        if self.phase_2:
            phase1_name = f"loratv2-p1-{size}224"
            phase1 = f" \\\n       --phase1-lorat {phase1_name}.safetensors"
        return f"""1. Get the official trainable-only `model.safetensors` of the run (trackit saves it at the end of training; no
   public download location for LoRATv2 weights was confirmed){", and the phase-1 run's one: a phase-2 checkpoint holds only its own stream" if self.phase_2 else ""}.
2. Get the backbone: the timm weights `{timm_name}` or the Hugging Face folder `{config.backbone_name_or_path}`.
3. Convert (the output folder holds one peft adapter per stream and names `{config.backbone_name_or_path}`):

   ```bash
   python -m lorat_hf.convert --model-type loratv2 --variant {self.variant} --dinov2 {config.backbone_name_or_path} \\
       --lorat model.safetensors{phase1} --output {self.name}
   ```

4. Publish with this card: `lorat-push {self.name} --repo-id {repo_id} --model-card model_cards/{self.name}.md`."""


LORATV2_CHECKPOINTS = [
    Loratv2Checkpoint(
        "p1-B-224", (suc_pn_p("LaSOT", 72.0, None, None, LORATV2_FOUND),), ("LaSOT_ext", "TrackingNet", "TNL2K")
    ),
    Loratv2Checkpoint(
        "p1-L-224", (suc_pn_p("LaSOT", 74.4, None, None, LORATV2_FOUND),), ("LaSOT_ext", "TrackingNet", "TNL2K")
    ),
    Loratv2Checkpoint(
        "p2-B-378", (suc_pn_p("LaSOT", 74.3, None, None, LORATV2_FOUND),), ("LaSOT_ext", "TrackingNet", "TNL2K")
    ),
    Loratv2Checkpoint(
        "p2-L-378",
        (
            suc_pn_p("LaSOT", 76.1, None, None, LORATV2_FOUND),
            suc_pn_p("TNL2K", 62.4, None, None, LORATV2_FOUND),
            suc_pn_p("VastTrack", 44.2, None, None, LORATV2_FOUND),
            got10k(78.2, None, None, LORATV2_FOUND),
        ),
        ("LaSOT_ext", "TrackingNet"),
        (
            "GOT-10k: the protocol behind the 78.2 AO (GOT-10k-only training or the main data) is not stated where "
            "the figure was found.",
        ),
    ),
]


@functools.cache
def loratv2_parameter_counts(variant: str) -> tuple[int, int]:
    """`(total, trainable)` of the training model (frozen backbone + stream adapters), on the meta device."""
    return count_tracker_parameters(Loratv2Config.from_variant(variant))


def render_all(namespace: str = HUB_NAMESPACE) -> dict[str, str]:
    """`{file name: card text}` for every official checkpoint."""
    return {f"{c.name}.md": render(c, namespace) for c in [*CHECKPOINTS, *LORATV2_CHECKPOINTS]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare the committed cards with their rendering")
    parser.add_argument(
        "--namespace", default=HUB_NAMESPACE, help=f"Hub namespace of the repos (default {HUB_NAMESPACE})"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_all(args.namespace).items():
        path = CARDS_DIR / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            write_text_atomic(path, text)
    if args.check and stale:
        print(f"Stale model cards (run python model_cards/generate.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    print(("Would update: " if args.check else "Updated: ") + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
