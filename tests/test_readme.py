"""Every command of README.md, run as written: the project rule "every command in the README is run by a test or by
`make demo`".

The README's fenced blocks are parsed here (nothing is copied), so editing a command changes what runs:

* `make ...` lines are checked against the Makefile, not run (`make test` runs this very suite, and what `make demo`
  runs, examples/demo.py, is tested by tests/test_demo.py);
* every other ```bash block runs through `bash -e` and every ```python block through the venv's python, in README
  order, in ONE temporary working directory (later blocks use what earlier ones wrote: the converted `lorat-b224` is
  loaded, evaluated and pushed), with the venv's bin/ first on PATH and `HF_HUB_OFFLINE=1` - except the blocks that
  need a Hub, which talk to the loopback fake Hub of tests/hub_server.py instead;
* what the machine cannot have (official weights, benchmark datasets, GPUs, the real Hub) is replaced through the
  documented SUBSTITUTIONS table below, applied to the block text before it runs.

A README block this file does not know how to run (another language, a command with no rule in COMMANDS, a section
with no test here) fails `test_readme_blocks_are_all_known_to_this_test`: README and test stay in sync.

Each section's test runs the sections it depends on first (REQUIRES), so any subset of the tests, on any pytest-xdist
worker, runs correctly.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
from conftest import FIXTURES, OFFICIAL, run_in_process_group
from hub_server import FakeHub, User

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAKEFILE = REPO / "Makefile"
VENV_BIN = Path(sys.executable).parent  # the venv the tests run in (.venv/bin under `make test`)
OFFICIAL_CASE = OFFICIAL / "model_a_224_gelu"
LORATV2_CASE = (
    FIXTURES / "loratv2-official" / "model_p1"
)  # a GELU ViT with the B-224 geometry: width 64, 2 layers, 2 heads

pytestmark = pytest.mark.slow

# --------------------------------------------------------------------------------------------------------------------
# Documented substitutions: README string -> offline stand-in. `@name@` is a path the harness prepares (Workspace).
# --------------------------------------------------------------------------------------------------------------------

HUB_BACKBONE = "tiny-models/dinov2-lorat-fixture"  # served by the fake Hub: the fixture's DINOv2, converted
PUSH_TOKEN = "hf_readme_writer"  # what `hf auth login` stores; may write to the README's `my-org`
HUB_USERS = {PUSH_TOKEN: User("readme-user", orgs=("my-org",))}

# The official B-224 recipe stays what runs; these flags, appended after it (the command line wins over the recipe),
# make it tiny: a random 1-layer width-32 DINOv2 instead of the downloaded ViT-B, 28/56 px crops (2x2 / 4x4 tokens),
# 2 steps of 2 pairs, no torch.compile / validation / tracking eval / TensorBoard, and a first run that stops after
# step 1 (an interruption; its checkpoint-1 is what `--resume_from_checkpoint latest` continues from).
# GOT-10k's `vot_train` split is defined on the full 9,335-sequence train split (the reader refuses a partial one),
# so the tiny GOT-10k folder trains on `got10k:train`; the other three datasets keep the recipe's splits.
TINY_TRAINING = " ".join(
    [
        "--random_backbone true",
        """--dinov2_overrides '{"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 56}'""",
        "--template_size 28 --search_size 56",
        "--train_datasets lasot:train trackingnet:train coco:train got10k:train",
        "--samples_per_epoch 4 --global_batch_size 2 --num_train_epochs 1 --warmup_epochs 0.5",
        "--max_train_steps 1 --checkpointing_steps 1",
        "--validation_steps 0 --tracking_eval_steps 0 --tracking_eval_sequences 0",
        "--torch_compile false --dataloader_num_workers 0 --report_to none --logging_steps 1",
        "--sequence_cache_dir sequence_cache",
    ]
)

SUBSTITUTIONS = {
    # The official DINOv2 ViT-B/14 weights cannot be downloaded: the official-format DINOv2 of the converter fixture
    # (made by running the official code on tiny random weights), saved as a torch .pth like the official file.
    "dinov2_vitb14_pretrain.pth": "@official_dinov2_pth@",
    # The official release file cannot be downloaded: the fixture's release-format LoRAT tensors (safetensors inside,
    # as in the official .bin files).
    "base.bin": "@official_lorat_release@",
    # The fixture is a 2-head width-64 ViT, which `--variant B-224` rightly refuses: its heads and the B-224 crop sizes.
    "--variant B-224": "--num-heads 2 --template-size 112 --search-size 224",
    # facebook/dinov2-base is a ViT-B (lorat-push refuses to name it for a width-64 model) and the real Hub is out of
    # reach: a Hub id the fake Hub serves, holding the fixture's DINOv2, so `from_pretrained("lorat-b224")` downloads
    # the adapter's backbone by Hub id as it would from the real Hub.
    "facebook/dinov2-base": HUB_BACKBONE,
    # No GPUs: the multi-GPU accelerate config becomes one CPU process.
    "--config_file examples/accelerate_configs/multi_gpu.yaml": "--cpu --num_processes 1",
    # The B-224 recipe, made tiny (see TINY_TRAINING).
    "--config examples/configs/B-224.yaml": "--config examples/configs/B-224.yaml " + TINY_TRAINING,
    # The resumed run continues to the end of the 2-step schedule (the last --max_train_steps wins).
    "--resume_from_checkpoint latest": "--resume_from_checkpoint latest --max_train_steps 2",
    # No benchmark datasets here: tiny folders in each real layout (tests/data_factories.py).
    "/data/LaSOT": "@lasot@",
    "/data/TrackingNet": "@trackingnet@",
    "/data/COCO": "@coco@",
    "/data/GOT-10k": "@got10k@",
    # LoRATv2: the official timm DINOv2-reg4 ViT-B and the phase-1 checkpoint cannot be downloaded: the tiny
    # official-format files of tests/fixtures/loratv2-official/model_p1 (width 64, 2 heads, LoRA r 8, alpha 16).
    "vit_base_patch14_reg4_dinov2.safetensors": "@loratv2_backbone@",
    "loratv2-p1-b224.safetensors": "@loratv2_checkpoint@",
    "--variant p1-B-224": "--num-heads 2 --template-size 224 --search-size 224 --lora-alpha 16",
}

# How each command of a ```bash block is handled; a command with no entry here fails the sync test.
COMMANDS = {
    ("make",): "checked against the Makefile, not run",
    ("python", "-m", "lorat_hf.convert"): "run",
    ("lorat-track",): "run",
    ("accelerate", "launch"): "run",
    ("lorat-eval",): "run",
    ("lorat-push",): "run against the fake Hub",
}
IGNORED_LANGUAGES = {"bibtex", "ini"}  # not commands (the `trackers.ini` block is used by tests/test_vot.py)

# README sections with code blocks -> the sections whose outputs they use (run first, in README order).
REQUIRES = {
    "Two commands": (),
    "Quickstart in Python": (),
    "Official LoRAT weights": (),
    "LoRATv2": (),
    "Training": (),
    "Evaluation": ("Official LoRAT weights",),
    "Publishing on the Hub": ("Official LoRAT weights",),
}

BLOCK_TIMEOUT = 300


# --------------------------------------------------------------------------------------------------------------------
# Parsing README.md and the Makefile
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    section: str
    language: str
    text: str
    line: int  # 1-based line of the opening fence

    @property
    def where(self) -> str:
        return f"README.md:{self.line} (section {self.section!r}, ```{self.language})"

    def commands(self) -> list[list[str]]:
        """The argv of every command of a bash block (continuations joined, comments dropped)."""
        return [
            shlex.split(line, comments=True)
            for line in join_continuations(self.text).splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]


def join_continuations(text: str) -> str:
    return re.sub(r"\\\n\s*", " ", text)


def readme_blocks() -> list[Block]:
    blocks, section, fence = [], "", None
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1):
        if fence is None and line.startswith("## "):
            section = line[3:].strip()
        elif fence is None and line.startswith("```"):
            fence, body = (line[3:].strip(), number), []
        elif fence is not None and line.startswith("```"):
            blocks.append(Block(section, fence[0], "\n".join(body) + "\n", fence[1]))
            fence = None
        elif fence is not None:
            body.append(line)
    assert fence is None, f"README.md:{fence[1]}: unclosed code fence"
    return [block for block in blocks if block.language not in IGNORED_LANGUAGES]


def command_rule(argv: list[str]) -> tuple[str, ...] | None:
    return next((prefix for prefix in COMMANDS if tuple(argv[: len(prefix)]) == prefix), None)


def makefile_targets() -> dict[str, list[str]]:
    """`{target: recipe lines}` of the Makefile's plain targets."""
    targets, current = {}, []
    for line in MAKEFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("\t"):
            for name in current:
                targets[name].append(line.strip())
            continue
        match = re.match(r"^([A-Za-z0-9_][A-Za-z0-9_ .-]*):(?!=)", line)
        current = match.group(1).split() if match else []
        for name in current:
            targets.setdefault(name, [])
    return targets


def apply_substitutions(text: str, resolve) -> str:
    """One pass over `text` (longest README strings first; replacements are not substituted again)."""
    keys = sorted(SUBSTITUTIONS, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(key) for key in keys))
    replaced = pattern.sub(lambda match: SUBSTITUTIONS[match.group(0)], text)
    return re.sub(r"@(\w+)@", lambda match: str(resolve(match.group(1))), replaced)


# --------------------------------------------------------------------------------------------------------------------
# The working directory, its stand-ins, and running blocks
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class BlockRun:
    block: Block
    script: str  # what ran, after substitution
    stdout: str
    stderr: str
    used_hub: bool


class Workspace:
    """One temporary working directory where the README's blocks run in order, plus the stand-ins they need."""

    def __init__(self, root: Path):
        self.root = root
        self.cwd = root / "work"
        self.stand_ins = root / "stand-ins"
        self.scripts = root / "scripts"
        for folder in (self.cwd, self.stand_ins, self.scripts):
            folder.mkdir()
        # The README's commands are run from a checkout: examples/ is there.
        (self.cwd / "examples").symlink_to(REPO / "examples", target_is_directory=True)
        self.blocks = readme_blocks()
        self.done: dict[str, list[BlockRun]] = {}
        self.failed: dict[str, str] = {}
        self.hub: FakeHub | None = None
        self._prepared_demo = False

    # ----- stand-ins (built when a substitution first needs them) -----
    def resolve(self, name: str) -> Path:
        return getattr(self, name)

    @cached_property
    def official_dinov2_pth(self) -> Path:
        import torch
        from safetensors.torch import load_file

        path = self.stand_ins / "dinov2_vitb14_pretrain.pth"
        torch.save(load_file(OFFICIAL_CASE / "dinov2.safetensors"), path)
        return path

    @cached_property
    def official_lorat_release(self) -> Path:
        return OFFICIAL_CASE / "lorat_release.safetensors"

    @cached_property
    def loratv2_backbone(self) -> Path:
        return LORATV2_CASE / "backbone.safetensors"

    @cached_property
    def loratv2_checkpoint(self) -> Path:
        return LORATV2_CASE / "loratv2_checkpoint.safetensors"

    @cached_property
    def lasot(self) -> Path:
        from data_factories import make_lasot

        root = self.stand_ins / "LaSOT"
        make_lasot(
            root,
            names=("airplane-1", "bear-1", "cat-2", "dog-3"),
            num_frames=6,
            size_wh=(96, 72),
            testing_set=("airplane-1", "bear-1"),
            training_set=("cat-2", "dog-3"),
        )
        return root

    @cached_property
    def trackingnet(self) -> Path:
        from data_factories import make_trackingnet

        root = self.stand_ins / "TrackingNet"
        make_trackingnet(root, chunks={"TRAIN_0": ["tn-train-0", "tn-train-1"]}, num_frames=6, size_wh=(96, 72))
        return root

    @cached_property
    def coco(self) -> Path:
        from data_factories import make_coco

        root = self.stand_ins / "COCO"
        make_coco(root, split="train")
        return root

    @cached_property
    def got10k(self) -> Path:
        from data_factories import make_got10k

        root = self.stand_ins / "GOT-10k"
        for split in ("train", "val"):
            make_got10k(root, split, num_frames=6, size_wh=(96, 72))
        return root

    def prepare_demo_outputs(self) -> None:
        """What `make demo` leaves: demo_outputs/clip.mp4 and demo_outputs/clip/<seq>/ (a short clip)."""
        if self._prepared_demo:
            return
        command = [str(VENV_BIN / "python"), str(REPO / "examples" / "demo.py"), "--output-dir", "demo_outputs"]
        stdout, stderr, code = self._run([*command, "--frames", "24"], self.env(hub=False))
        assert code == 0, f"examples/demo.py failed:\n{stderr[-6000:]}"
        self._prepared_demo = True

    # ----- the fake Hub -----
    def start_hub(self) -> FakeHub:
        if self.hub is None:
            from lorat_hf.convert import convert

            # The backbone repo: the fixture's DINOv2 exactly as the converter saves it as a Transformers folder.
            reference = convert(
                self.official_dinov2_pth, self.official_lorat_release, self.stand_ins / "reference", num_heads=2
            )
            self.hub = FakeHub(tokens=HUB_USERS, idle_timeout=900, max_lifetime=3600).start()
            self.hub.add_folder(HUB_BACKBONE, reference / "backbone")
        return self.hub

    def needs_hub(self, script: str, commands: list[list[str]]) -> bool:
        """lorat-push, or a working-directory folder that names a fake-Hub backbone (loading it downloads that)."""
        if any(command_rule(argv) == ("lorat-push",) for argv in commands):
            return True
        for folder in self.cwd.iterdir():
            config = folder / "config.json"
            if folder.is_dir() and config.is_file():
                named = json.loads(config.read_text()).get("backbone_name_or_path")
                if named == HUB_BACKBONE and re.search(rf"(?<![\w./-]){re.escape(folder.name)}(?![\w-])", script):
                    return True
        return False

    def env(self, hub: bool) -> dict[str, str]:
        """The venv first on PATH, private caches; offline, or pointed at the fake Hub and logged in to it."""
        home = self.root / "home"
        inherited = ("HF_", "HUGGING_FACE_", "HUGGINGFACE_", "TRANSFORMERS_OFFLINE", "ACCELERATE_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
        if hub:
            env.update(self.start_hub().client_env(home))
            (home / "hf_home").mkdir(parents=True, exist_ok=True)
            (home / "hf_home" / "token").write_text(PUSH_TOKEN)  # what `hf auth login` stores
        else:
            env.update(HF_HOME=str(home / "hf_home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_DATASETS_OFFLINE="1",
            LORAT_HF_CACHE=str(home / "lorat_hf_cache"),
            XDG_CACHE_HOME=str(home / "cache"),
            MPLBACKEND="Agg",
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        return env

    def _run(self, command: list[str], env: dict[str, str]) -> tuple[str, str, int]:
        result = run_in_process_group(command, cwd=self.cwd, env=env, timeout=BLOCK_TIMEOUT)
        return result.stdout, result.stderr, result.returncode

    def run_block(self, block: Block, index: int) -> BlockRun:
        if block.language == "bash":
            commands = block.commands()
            unknown = [argv for argv in commands if command_rule(argv) is None]
            assert not unknown, f"{block.where}: no rule in tests/test_readme.py COMMANDS for {unknown}"
            assert not any(command_rule(argv) == ("make",) for argv in commands), (
                f"{block.where}: `make` lines belong in the 'Two commands' block, which is checked, not run"
            )
            script = apply_substitutions(join_continuations(block.text), self.resolve)
            path = self.scripts / f"block-{index:02d}.sh"
            interpreter = ["bash", "-e"]
        elif block.language == "python":
            commands = []
            script = apply_substitutions(block.text, self.resolve)
            path = self.scripts / f"block-{index:02d}.py"
            interpreter = [str(VENV_BIN / "python")]
        else:
            raise AssertionError(f"{block.where}: tests/test_readme.py does not know how to run ```{block.language}")
        if "demo_outputs/" in script:
            self.prepare_demo_outputs()
        path.write_text(script, encoding="utf-8")
        hub = self.needs_hub(script, commands)
        stdout, stderr, code = self._run([*interpreter, str(path)], self.env(hub))
        path.with_suffix(".stdout").write_text(stdout, encoding="utf-8")  # kept for debugging, next to the script
        path.with_suffix(".stderr").write_text(stderr, encoding="utf-8")
        assert code == 0, (
            f"{block.where} failed (exit {code}); what ran ({path}):\n{script}\n--- stdout ---\n{stdout[-4000:]}"
            f"\n--- stderr ---\n{stderr[-8000:]}"
        )
        return BlockRun(block, script, stdout, stderr, hub)

    def run_section(self, section: str) -> list[BlockRun]:
        """Run `section`'s blocks (after the sections it requires), once; returns their runs."""
        assert section in REQUIRES, f"tests/test_readme.py has no entry for section {section!r} in REQUIRES"
        if section in self.failed:
            pytest.fail(f"section {section!r} failed earlier: {self.failed[section]}")
        for required in REQUIRES[section]:
            self.run_section(required)
        if section not in self.done:
            blocks = [(i, b) for i, b in enumerate(self.blocks) if b.section == section]
            assert blocks, f"README.md has no code blocks in a section {section!r}"
            try:
                self.done[section] = [self.run_block(block, index) for index, block in blocks]
            except BaseException as error:
                self.failed[section] = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise
        return self.done[section]

    def close(self) -> None:
        if self.hub is not None:
            self.hub.stop()


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    workspace = Workspace(tmp_path_factory.mktemp("readme"))
    yield workspace
    workspace.close()


# --------------------------------------------------------------------------------------------------------------------
# README and this file in sync
# --------------------------------------------------------------------------------------------------------------------


def test_readme_blocks_are_all_known_to_this_test():
    blocks = readme_blocks()
    problems = []
    for block in blocks:
        if block.language not in ("bash", "python"):
            problems.append(f"{block.where}: this test does not know how to run ```{block.language} blocks")
        if block.language == "bash":
            for argv in block.commands():
                if command_rule(argv) is None:
                    problems.append(f"{block.where}: no rule in COMMANDS for the command {shlex.join(argv)!r}")
        if block.section not in REQUIRES:
            problems.append(f"{block.where}: no test covers section {block.section!r} (add it to REQUIRES)")
    sections = {block.section for block in blocks}
    problems += [
        f"REQUIRES names section {name!r}, which has no code block in README.md"
        for name in REQUIRES
        if name not in sections
    ]
    source = Path(__file__).read_text(encoding="utf-8")
    problems += [
        f"section {name!r} is in REQUIRES but no test runs it (readme.run_section({name!r}))"
        for name in REQUIRES
        if name != "Two commands" and f'run_section("{name}")' not in source
    ]
    text = "".join(block.text for block in blocks)
    joined = join_continuations(text)
    problems += [
        f"SUBSTITUTIONS[{key!r}] matches nothing in README.md's code blocks (stale)"
        for key in SUBSTITUTIONS
        if key not in joined
    ]
    assert not problems, "README.md and tests/test_readme.py are out of sync:\n" + "\n".join(problems)


# --------------------------------------------------------------------------------------------------------------------
# One test per README section
# --------------------------------------------------------------------------------------------------------------------


def test_section_two_commands_name_real_makefile_targets():
    """`make demo` / `make test`: real targets (not run here: `make test` is this suite; examples/demo.py, what
    `make demo` runs, is tested by tests/test_demo.py)."""
    targets = makefile_targets()
    (block,) = [block for block in readme_blocks() if block.section == "Two commands"]
    commands = block.commands()
    assert commands, f"{block.where} is empty"
    for argv in commands:
        assert argv[0] == "make" and len(argv) == 2, f"{block.where}: expected `make <target>`, got {shlex.join(argv)}"
        assert argv[1] in targets, f"{block.where}: `make {argv[1]}` is not a Makefile target ({sorted(targets)})"
    named = {argv[1] for argv in commands}
    if "demo" in named:
        assert any("examples/demo.py" in line for line in targets["demo"]), "make demo does not run examples/demo.py"
        assert "examples/demo.py" in (REPO / "tests" / "test_demo.py").read_text(), "no test runs examples/demo.py"
    if "test" in named:
        assert any("pytest" in line for line in targets["test"]), "make test does not run pytest"
    # the other targets the README's prose names exist too
    for target in re.findall(r"`make ([\w-]+)`", README.read_text(encoding="utf-8")):
        assert target in targets, f"README.md names `make {target}`, which is not a Makefile target"


def test_section_quickstart_in_python(readme):
    python_run, track_run = readme.run_section("Quickstart in Python")
    assert python_run.block.language == "python" and track_run.block.language == "bash"
    assert not python_run.used_hub and not track_run.used_hub  # the embedded tracker needs no Hub
    frames = len((next((readme.cwd / "demo_outputs" / "clip").glob("*/groundtruth.txt"))).read_text().splitlines())
    lines = python_run.stdout.splitlines()
    # the whole-video loop printed one box per frame: "<index> [x y w h] <score>"
    boxes = [line for line in lines if re.fullmatch(r"\d+ \[[-\d. e+]+\] [\d.]+", line.strip())]
    assert [int(line.split()[0]) for line in boxes] == list(range(frames)), python_run.stdout[-3000:]
    # several objects: {"target": (box, score), "corner": (box, score)}; the pipeline: the 20th frame's result
    assert any("'target'" in line and "'corner'" in line for line in lines), python_run.stdout[-3000:]
    assert re.search(r"'frame_index': 19\b", lines[-1]) and "'box'" in lines[-1] and "'score'" in lines[-1], lines[-1]
    # lorat-track (its --box is used as the README writes it) wrote the annotated video and one box per frame
    assert (readme.cwd / "tracked.mp4").stat().st_size > 0
    rows = (readme.cwd / "boxes.csv").read_text().splitlines()
    assert len(rows) == 1 + frames, rows[:3]


def test_section_official_lorat_weights(readme):
    runs = readme.run_section("Official LoRAT weights")
    assert [run.block.language for run in runs] == ["bash", "python"]
    adapter, merged = readme.cwd / "lorat-b224", readme.cwd / "lorat-b224-merged"
    assert (adapter / "adapter_model.safetensors").is_file() and (merged / "model.safetensors").is_file()
    # --backbone-id: the adapter names its DINOv2 by Hub id (no backbone copy), which the python block downloaded
    assert json.loads((adapter / "config.json").read_text())["backbone_name_or_path"] == HUB_BACKBONE
    assert not (adapter / "backbone").exists()
    assert runs[1].used_hub and readme.hub is not None
    assert any(HUB_BACKBONE in path for _, path in readme.hub.requests), "the backbone was not fetched from the Hub"


def test_section_loratv2(readme):
    convert_run, python_run = readme.run_section("LoRATv2")
    assert not convert_run.used_hub and not python_run.used_hub
    folder = readme.cwd / "loratv2-p1-b224"
    assert json.loads((folder / "config.json").read_text())["model_type"] == "loratv2"
    for stream in ("template", "search_0"):  # one peft adapter per stream
        assert (folder / stream / "adapter_model.safetensors").is_file()
    printed = [line for line in python_run.stdout.splitlines() if line.startswith("[")]
    assert len(printed) == 3, python_run.stdout[-2000:]


def test_section_training_runs_the_b224_recipe_and_resumes(readme):
    (run,) = readme.run_section("Training")
    output = readme.cwd / "outputs" / "lorat-B-224"  # the recipe's output_dir, in the working directory
    log = run.stderr
    assert "Training 1 steps (of 2)" in log  # the first command stopped after step 1 ...
    assert re.search(r"Resumed from \S*checkpoints/checkpoint-1 at step 1\b", log), log[-4000:]  # ... and resumed
    state = json.loads((output / "checkpoints" / "checkpoint-2" / "training_state.json").read_text())
    assert state["progress"]["global_step"] == 2
    steps = [json.loads(line)["step"] for line in (output / "logs" / "train_metrics.jsonl").read_text().splitlines()]
    assert sorted(set(steps)) == [1, 2]
    arguments = json.loads((output / "train_config.json").read_text())["arguments"]
    assert arguments["config_file"] == "examples/configs/B-224.yaml" and arguments["model"]["variant"] == "B-224"
    assert arguments["peft"]["lora_r"] == 64 and arguments["training"]["learning_rate"] == 1e-4  # the recipe's
    assert sorted(arguments["data"]["dataset_roots"]) == ["coco", "got10k", "lasot", "trackingnet"]
    assert (output / "final" / "adapter_model.safetensors").is_file()


def test_section_evaluation(readme):
    (run,) = readme.run_section("Evaluation")
    assert run.used_hub  # lorat-b224 loads its backbone by Hub id
    folder = readme.cwd / "runs" / "lasot-b224"
    for name in ("airplane-1", "bear-1"):  # the tiny LaSOT's testing_set.txt, in LaSOT's 1-based coordinates
        assert len((folder / "results" / f"{name}.txt").read_text().splitlines()) == 6
    report = json.loads((folder / "report.json").read_text())
    assert report["dataset"].startswith("lasot") and report["num_sequences"] == 2
    assert 0 <= report["metrics"]["success_auc"] <= 100
    assert all((folder / f"{kind}.png").stat().st_size > 0 for kind in ("success", "precision"))
    matlab = json.loads((folder / "report-matlab.json").read_text())
    assert matlab["protocol"] == "lasot-toolkit" and 0 <= matlab["metrics"]["success_auc"] <= 100


def test_section_publishing_on_the_hub(readme):
    (run,) = readme.run_section("Publishing on the Hub")
    assert run.used_hub
    assert "Dry run: would upload" in run.stdout and "Uploaded" in run.stdout, run.stdout
    files = readme.hub.files("my-org/lorat-b224")
    for name in (
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "config.json",
        "preprocessor_config.json",
    ):
        assert name in files, sorted(files)
    # the dry run sent nothing; the push is one commit of a freshly assembled copy naming the backbone's Hub id
    assert readme.hub.commit_messages("my-org/lorat-b224") == ["initial commit", "Upload LoRAT tracker"]
    adapter = readme.cwd / "lorat-b224"
    assert files["adapter_model.safetensors"] == (adapter / "adapter_model.safetensors").read_bytes()
    assert json.loads(files["config.json"])["backbone_name_or_path"] == HUB_BACKBONE
    assert f"base_model: {HUB_BACKBONE}" in files["README.md"].decode()
