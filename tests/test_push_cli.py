"""`lorat-push`: dry runs and refusals in-process (nothing reaches a Hub), real pushes against the loopback fake Hub
(`tests/hub_server.py`) in a client subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hub_server import WRITE_TOKEN, FakeHub, make_adapter, make_backbone_folder, run_client
from huggingface_hub import ModelCard

from lorat_hf import hub
from lorat_hf.adapters import save_adapter_folder
from lorat_hf.commands.push import main

BACKBONE_ID = "tiny-models/dinov2-32"


@pytest.fixture(scope="module")
def backbone_folder(tmp_path_factory) -> Path:
    return make_backbone_folder(tmp_path_factory.mktemp("backbone") / "dinov2", seed=1)


@pytest.fixture
def adapter_folder(tmp_path, backbone_folder) -> Path:
    """An adapter folder as training leaves it: it names the local DINOv2 folder, and holds a checkpoint."""
    folder = save_adapter_folder(make_adapter(backbone_folder, seed=41), tmp_path / "final")
    (folder / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint-2" / "optimizer.bin").write_bytes(b"state")
    return folder


@pytest.fixture
def no_hub(monkeypatch):
    """Fail the test if anything tries to talk to a Hub."""

    class Unreachable:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a dry run or a refused push must not contact the Hub")

    monkeypatch.setattr(hub.upload, "HfApi", Unreachable)


def test_dry_run_lists_the_upload_and_sends_nothing(adapter_folder, capsys, no_hub):
    code = main([str(adapter_folder), "--repo-id", "org/tiny", "--base-model", BACKBONE_ID, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == "Dry run: would upload 5 files to org/tiny (branch main)"
    listed = [line.strip() for line in out.splitlines()[1:6]]
    assert listed == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "config.json",
        "preprocessor_config.json",
    ]
    assert f"Model card: tiny, adapter on {BACKBONE_ID}, library peft, 0 model-index metrics" in out
    assert "Never published from the folder: checkpoints/" in out


def test_dry_run_with_a_reviewed_card(tmp_path, adapter_folder, capsys, no_hub):
    assembled = hub.assemble_upload_folder(
        adapter_folder, tmp_path / "draft", repo_id="org/tiny", base_model=BACKBONE_ID
    )
    reviewed = assembled.card
    reviewed.text = reviewed.text.replace("## Limitations", "Reviewed by a maintainer.\n\n## Limitations")
    reviewed.save(tmp_path / "reviewed.md")
    code = main(
        [
            str(adapter_folder),
            "--repo-id",
            "org/tiny",
            "--base-model",
            BACKBONE_ID,
            "--dry-run",
            "--model-card",
            str(tmp_path / "reviewed.md"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    result = hub.push_tracker_to_hub(
        adapter_folder, "org/tiny", base_model=BACKBONE_ID, model_card=tmp_path / "reviewed.md", dry_run=True
    )
    assert "Reviewed by a maintainer." in result.card.text


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_folder", "is not a folder"),
        ("no_weights", "holds no weights"),
        ("no_hub_id", "has the shape of no official DINOv2: it was trained from a random initialisation"),
        ("bad_repo_id", "must be ORG/NAME"),
        ("card_for_other_backbone", "base_model is 'facebook/dinov2-base' but the uploaded weights are built on"),
        ("card_without_license", "fix its metadata: license"),
        ("missing_card", "No model card at"),
        ("plot_not_png", "is not an existing .png file"),
    ],
)
def test_refusals_exit_2_with_a_clear_message(tmp_path, adapter_folder, capsys, no_hub, case, message):
    argv = [str(adapter_folder), "--repo-id", "org/tiny", "--base-model", BACKBONE_ID]
    if case == "missing_folder":
        argv[0] = str(tmp_path / "nowhere")
    elif case == "no_weights":
        (adapter_folder / "adapter_model.safetensors").unlink()
        (adapter_folder / "adapter_config.json").unlink()
    elif case == "no_hub_id":
        argv = argv[:3]
    elif case == "bad_repo_id":
        argv[2] = "org/tiny/extra"
    elif case in ("card_for_other_backbone", "card_without_license"):
        card = hub.build_model_card(
            hub.inspect_tracker_folder(adapter_folder).config, model_name="tiny", base_model="facebook/dinov2-base"
        )
        if case == "card_without_license":
            card.data.base_model = BACKBONE_ID
            card.data.license = None
        card.save(tmp_path / "card.md")
        argv += ["--model-card", str(tmp_path / "card.md")]
    elif case == "missing_card":
        argv += ["--model-card", str(tmp_path / "README.md")]
    elif case == "plot_not_png":
        (tmp_path / "curve.svg").write_text("<svg/>")
        argv += ["--plot", str(tmp_path / "curve.svg")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


PUSH_CLIENT = r"""
import contextlib, io, json, os, runpy, sys

def cli(*argv, token=None):
    if token is None:
        os.environ.pop("HF_TOKEN", None)
    else:
        os.environ["HF_TOKEN"] = token
    sys.argv = ["lorat-push", *argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module("lorat_hf.commands.push", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit:
            code = exit.code
    return {"code": code, "out": out.getvalue(), "err": err.getvalue()}

folder, report, plot, token = sys.argv[1:5]
common = [folder, "--repo-id", "org/cli", "--base-model", "tiny-models/dinov2-32"]
runs = {
    "no_token": cli(*common, "--dry-run"),
    "no_token_push": cli(*common),
    "push": cli(*common, "--revision", "dev", "--commit-message", "cli push", "--private",
                "--eval-report", report, "--plot", plot, token=token),
}
print(json.dumps(runs))
"""


def test_cli_push_to_the_fake_hub(tmp_path, adapter_folder):
    report = tmp_path / "lasot.json"
    report.write_text(
        json.dumps(
            {
                "protocol": "lasot",
                "dataset": "lasot",
                "num_sequences": 2,
                "metrics": {"success_auc": 55.5, "precision": 44.4},
            }
        )
    )
    plot = tmp_path / "success.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    with FakeHub(idle_timeout=300, max_lifetime=900) as fake_hub:
        result = run_client(fake_hub, tmp_path, PUSH_CLIENT, str(adapter_folder), str(report), str(plot), WRITE_TOKEN)
        assert result.returncode == 0, result.stderr[-4000:]
        runs = json.loads(result.stdout.strip().splitlines()[-1])

        assert runs["no_token"]["code"] == 0 and runs["no_token"]["out"].startswith("Dry run:")
        assert runs["no_token_push"]["code"] == 2
        assert (
            "not logged in (401)" in runs["no_token_push"]["err"] and "hf auth login" in runs["no_token_push"]["err"]
        )
        assert runs["push"]["code"] == 0, runs["push"]["err"]
        assert runs["push"]["out"].startswith("Uploaded 7 files to org/cli (branch dev): ")

        files = fake_hub.files("org/cli", "dev")
        assert set(files) == {
            ".gitattributes",
            "README.md",
            "adapter_config.json",
            "adapter_model.safetensors",
            "config.json",
            "preprocessor_config.json",
            "eval/lasot.json",
            "eval/success.png",
        }
        assert set(fake_hub.files("org/cli", "main")) == {".gitattributes"}
        assert fake_hub.repos["org/cli"].private
        assert "cli push" in fake_hub.commit_messages("org/cli")
        card = ModelCard(files["README.md"].decode())
        assert [(r.dataset_name, r.metric_type, r.metric_value) for r in card.data.eval_results] == [
            ("LaSOT", "success_auc", 55.5),
            ("LaSOT", "precision", 44.4),
        ]
        assert "![eval/success.png](eval/success.png)" in card.text
        assert 'LoraTracker.from_pretrained("org/cli")' in card.text
        assert json.loads(files["config.json"])["backbone_name_or_path"] == "tiny-models/dinov2-32"
