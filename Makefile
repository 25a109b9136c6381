# Quick start:  make demo   (set up + pretrain the tiny model on the bundled corpus)
#               make test   (set up + run every test, notebooks included)
# Day to day:   make check  (the fast tier: every test not marked slow, about 3 minutes)
PYTHON ?= $(or $(shell command -v python3.11 || command -v python3),python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CPU-only torch on Linux x86_64 (PyPI's build there is the CUDA one, several GB):
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
# JupyterLab refuses to run as root without --allow-root (containers, CI, a teacher's VM);
# LAB_ARGS adds options, e.g. make lab LAB_ARGS="--no-browser --port 8890".
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_ARGS ?=

.PHONY: setup demo test check lab reset notebooks export lint bench

setup: $(STAMP)

# Re-install only when the pinned requirements change; a second run reuses the environment.
# pip byte-compiles what it installs (about half of the 88 s on 2 cores). Keep it: with
# PYTHONDONTWRITEBYTECODE=1, set on these machines, nothing is compiled later, and every
# process would compile torch and transformers from source again at each import.
$(STAMP): requirements.txt pyproject.toml tools/course_kernel.py
	@test -x $(PY) || { $(PYTHON) tools/check_python.py && $(PYTHON) -m venv $(VENV); }
	@$(PY) tools/check_python.py
	$(if $(TORCH_INDEX),$(PY) -m pip install --disable-pip-version-check -q \
	    "$$(grep '^torch==' requirements.txt)" --index-url $(TORCH_INDEX))
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	$(PY) tools/course_kernel.py
	touch $(STAMP)

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash code/pretrain.sh

test: setup
	$(PY) -m pytest

check: setup
	$(PY) -m pytest -m "not slow"

lab: setup
	$(VENV)/bin/jupyter lab chapters/ $(ROOT_ARGS) $(LAB_ARGS)

# Teachers: restore the committed notebooks and delete checkpoints, caches and logs of past runs.
reset: setup
	$(PY) tools/reset.py

# The CPU benchmarks of BENCHMARKS.md, one after the other (about 55 minutes on 2 cores).
bench: setup
	$(PY) bench/data_prep.py
	$(PY) bench/trainer_overhead.py
	$(PY) bench/memory_scale.py
	$(PY) bench/data_scale.py
	$(PY) bench/course_time.py

# Maintainers: regenerate the script, then re-run every chapter from scratch to refresh outputs.
notebooks: setup
	$(PY) tools/export.py
	rm -rf chapters/runs
	$(PY) tools/execute.py

export: setup
	$(PY) tools/export.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check code/
