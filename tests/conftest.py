"""Shared test fixtures: tiny tracker configs and the official reference fixtures' location."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
OFFICIAL = FIXTURES / "lorat-official"
MODEL_CASES = ("model_a_224_gelu", "model_b_378_gelu", "model_c_224_swiglu", "model_d_224_gelu_alpha_eq_r")


def tiny_config(**overrides):
    """A tiny tracker: width 32, 2 layers, 2 heads, template 56 px (4x4 tokens), search 112 px (8x8 tokens)."""
    from lorat_hf import LoraTrackerConfig

    dinov2 = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=224, use_mask_token=False)
    dinov2.update(overrides.pop("dinov2", {}))
    values = dict(dinov2_config=dinov2, template_size=56, search_size=112, lora_r=4, lora_alpha=8)
    values.update(overrides)
    return LoraTrackerConfig(**values)


@pytest.fixture
def tiny_tracker_config():
    return tiny_config()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A saved tiny random tracker (seed 0), shared by the tests of a module."""
    import torch

    from lorat_hf import LoraTrackerModel

    path = tmp_path_factory.mktemp("model") / "tiny"
    torch.manual_seed(0)
    LoraTrackerModel(tiny_config()).save_pretrained(path)
    return path


def run_in_process_group(
    command: list[str], cwd: str | os.PathLike, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """Run `command` in its own process group and capture its output; on timeout the whole group is killed (no
    orphaned workers or ranks) and the test fails with the end of stderr."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(map(str, command))} did not finish in {timeout} s:\n{stderr[-6000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
