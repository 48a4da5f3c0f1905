# The two commands of the README: `make demo` and `make test`. Both create (or reuse) .venv and install the
# package with its dev extras, with torch pinned to the local CPU build through constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lorat_hf-installed
# The VOT toolkit (the client of `lorat-vot`) lives in an environment of its own: it requires opencv-python, which
# would replace lorat_hf's contrib OpenCV. Its pins are setup.cfg's `vot-toolkit` extra.
VOT_TOOLKIT ?= $(VENV)/vot-toolkit
VOT_STAMP := $(VOT_TOOLKIT)/.installed
PIP := $(BIN)/python -m pip -q --disable-pip-version-check
PYTEST_WORKERS ?= 2

.PHONY: setup vot-toolkit demo app test train-demo benchmarks clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt "torch==2.13.0"
	$(PIP) install -c constraints.txt -e ".[dev,app,vot]"
	@touch $(STAMP)

setup: $(STAMP)

$(VOT_STAMP): setup.cfg | $(STAMP)
	@test -x $(VOT_TOOLKIT)/bin/python || $(PYTHON) -m venv $(VOT_TOOLKIT)
	$(VOT_TOOLKIT)/bin/python -m pip -q --disable-pip-version-check install \
		$$($(BIN)/python -c 'import configparser; c = configparser.ConfigParser(); c.read("setup.cfg"); \
		print(" ".join(c["options.extras_require"]["vot-toolkit"].split()))')
	@touch $(VOT_STAMP)

vot-toolkit: $(VOT_STAMP)

demo: setup
	$(BIN)/python examples/demo.py

# the web app on http://127.0.0.1:7860 (LORAT_APP_ARGS="--model path/or/hub-id --port 8000" to change)
app: setup
	$(BIN)/lorat-app $(LORAT_APP_ARGS)

test: setup vot-toolkit
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15

# re-train the embedded demo tracker (25 min on 2 CPU cores); an interrupted run continues where it stopped
train-demo: setup
	$(BIN)/accelerate launch --num_processes 1 --cpu examples/train.py --config examples/configs/demo-tracker.yaml \
		--resume_from_checkpoint latest
	$(BIN)/python benchmarks/compare_opencv.py --model outputs/demo-tracker/final --no-write

benchmarks: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
