# Two set-up commands: `make demo` and `make test`. Both create .venv if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is pinned to the CPU wheel available offline; any other version pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: demo test test-all bench venv clean

$(VENV)/.installed-base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-base
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	touch $@

$(VENV)/.installed-audit: $(VENV)/.installed-base
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[audit]"
	touch $@

venv: $(VENV)/.installed-base

demo: $(VENV)/.installed-audit
	$(VENV)/bin/scrutiny demo --output-dir scrutiny-demo

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

test-all: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m ""

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/zoo.py

clean:
	rm -rf $(VENV) scrutiny-demo .pytest_cache
