"""benchmarks/results_md.py: the one writer of benchmarks/RESULTS.md sections."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

RESULTS_MD = Path(__file__).resolve().parents[1] / "benchmarks" / "results_md.py"
spec = importlib.util.spec_from_file_location("benchmarks_results_md", RESULTS_MD)
results_md = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_md)
update_results_section = results_md.update_results_section

BEFORE = "<!-- BEGIN alpha -->\n## Alpha\n\n| a | b |\n|---|---|\n| 1 | 2 |\n<!-- END alpha -->\n"
TARGET = "<!-- BEGIN beta -->\n## Beta\n\nold figures: 1.0 s\n<!-- END beta -->\n"
AFTER = "<!-- BEGIN gamma -->\n## Gamma\n\nthe last section\n<!-- END gamma -->\n"
# Uneven spacing on purpose: whatever surrounds a section must survive its update unchanged.
DOCUMENT = f"# Benchmark results\n\n{BEFORE}\n{TARGET}\n\n{AFTER}"


def test_replaces_a_section_in_place_and_leaves_the_others_byte_identical(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(DOCUMENT, encoding="utf-8")
    update_results_section("beta", "## Beta\n\nnew figures: 2.0 s\n\n", path)
    text = path.read_text(encoding="utf-8")
    new_target = "<!-- BEGIN beta -->\n## Beta\n\nnew figures: 2.0 s\n<!-- END beta -->\n"
    assert text == DOCUMENT.replace(TARGET, new_target)
    head, tail = text.split(new_target)
    assert head == f"# Benchmark results\n\n{BEFORE}\n" and tail == f"\n\n{AFTER}"
    assert text.count("<!-- BEGIN beta -->") == 1 and text.count("<!-- END beta -->") == 1


def test_rewriting_the_same_content_changes_nothing(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(DOCUMENT, encoding="utf-8")
    for name in ("alpha", "beta", "gamma"):
        body = re.search(f"<!-- BEGIN {name} -->\n(.*?)\n<!-- END {name} -->", DOCUMENT, re.S).group(1)
        update_results_section(name, body, path)
    assert path.read_bytes() == DOCUMENT.encode("utf-8")


def test_appends_a_missing_section_after_the_others(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(DOCUMENT, encoding="utf-8")
    update_results_section("delta", "## Delta\n\n42 frames/s", path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(DOCUMENT)
    assert text == DOCUMENT + "\n<!-- BEGIN delta -->\n## Delta\n\n42 frames/s\n<!-- END delta -->\n"
    update_results_section("delta", "## Delta\n\n43 frames/s", path)  # the next run replaces, not duplicates
    assert path.read_text(encoding="utf-8") == text.replace("42 frames/s", "43 frames/s")


def test_creates_a_missing_file(tmp_path):
    path = tmp_path / "RESULTS.md"
    update_results_section("alpha", "## Alpha\n\nfirst run", path)
    assert path.read_text(encoding="utf-8") == (
        "# Benchmark results\n\n<!-- BEGIN alpha -->\n## Alpha\n\nfirst run\n<!-- END alpha -->\n"
    )
    assert (tmp_path / "RESULTS.md.lock").exists()  # the shared lock sits next to the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS.md", "RESULTS.md.lock"]  # no temporary left


def test_refuses_a_begin_marker_without_its_end(tmp_path):
    path = tmp_path / "RESULTS.md"
    broken = "# Benchmark results\n\n<!-- BEGIN alpha -->\n## Alpha\n"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ValueError, match="END alpha"):
        update_results_section("alpha", "## Alpha\n\nnew", path)
    assert path.read_text(encoding="utf-8") == broken


def test_the_committed_results_file_uses_one_marker_style():
    text = results_md.RESULTS_FILE.read_text(encoding="utf-8")
    begins = re.findall(r"^<!-- BEGIN (.+?) -->$", text, re.M)
    ends = re.findall(r"^<!-- END (.+?) -->$", text, re.M)
    assert begins == ends and len(set(begins)) == len(begins)
    assert len(re.findall(r"<!--", text)) == 2 * len(begins)  # no other marker style left
