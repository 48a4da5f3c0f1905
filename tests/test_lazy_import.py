"""`import lorat_hf` defers the heavy data stack until a name that needs it is used."""

import subprocess
import sys

import lorat_hf


def test_import_does_not_load_datasets_until_a_data_name_is_used():
    code = (
        "import sys, lorat_hf\n"
        "assert 'datasets' not in sys.modules, 'datasets imported eagerly'\n"
        "from lorat_hf import LoraTracker, load_sequences, run_evaluation, push_tracker_to_hub\n"
        "assert callable(load_sequences) and callable(run_evaluation)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_public_name_resolves():
    for name in lorat_hf.__all__:
        assert getattr(lorat_hf, name) is not None
    assert set(lorat_hf.__all__) <= set(dir(lorat_hf))
