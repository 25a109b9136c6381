# Quick start:  make demo   (set up + pretrain the tiny model on the bundled corpus)
#               make test   (set up + run every test, notebooks included)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lab reset notebooks export lint bench

setup: $(STAMP)

# Re-install only when the pinned requirements change; a second run reuses the environment.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash code/pretrain.sh

test: setup
	$(PY) -m pytest

lab: setup
	$(VENV)/bin/jupyter lab chapters/

# Teachers: restore the committed notebooks and delete checkpoints, caches and logs of past runs.
reset: setup
	$(PY) tools/reset.py

# The CPU benchmarks of BENCHMARKS.md, one after the other (about 40 minutes on 2 cores).
bench: setup
	$(PY) bench/data_prep.py
	$(PY) bench/trainer_overhead.py
	$(PY) bench/memory_scale.py
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
