# Roadwork Ops. `make run`: the demo loop, then scheduler + dashboard. `make test`: the test suite.
# Both create .venv on first use (needs python3-venv on Debian/Ubuntu): torch is installed first and pinned,
# then the project with its dev extras. From PyPI, torch==2.13.0 on Linux is the CUDA build (gigabytes); for the
# CPU build pass TORCH_INDEX=https://download.pytorch.org/whl/cpu (the same index the Dockerfile uses).
# TORCH_SPEC=torch on a GPU box takes the newest CUDA build.
# `make test` also makes .venv-miner: the stock miner's environment (its transformers pin, this torch), where
# tests/test_stock_miner.py loads what deploy publishes with the miner's own calls.

VENV       ?= .venv
PY         := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
MINER_VENV ?= .venv-miner
# The stock miner (release 2.0.4) pins transformers 4.45.2, torch 2.6.0 and torchvision 0.21. Only CUDA builds of
# that torch are on PyPI (with about 2.5 GB of nvidia packages; the CPU build is on the PyTorch index), so the
# miner's environment takes this project's CPU torch and no torchvision; the test falls back to the slow image
# processor only where torchvision is missing. The exact pins: make miner-env MINER_TORCH="torch==2.6.0 torchvision==0.21.0"
MINER_TORCH ?= $(TORCH_SPEC)
MINER_SPEC ?= transformers==4.45.2 pillow numpy safetensors
PYTEST_ARGS ?=

.PHONY: install miner-env run test test-all demo scheduler dashboard bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)") "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

$(MINER_VENV)/.installed:
	test -x $(MINER_VENV)/bin/python || python3 -m venv $(MINER_VENV)
	$(MINER_VENV)/bin/python -m pip install -q $(MINER_TORCH) $(MINER_SPEC)
	touch $@

miner-env: $(MINER_VENV)/.installed

run: install
	$(VENV)/bin/roadwork demo
	@echo "starting the scheduler and the dashboard (Ctrl-C stops both)"
	@$(VENV)/bin/roadwork scheduler & sched=$$!; \
	trap 'kill $$sched 2>/dev/null; wait $$sched 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/roadwork dashboard

# A miner environment that cannot be made fails tests/test_stock_miner.py under CI=true (it skips elsewhere).
test: install
	$(MAKE) miner-env || echo "warning: could not make $(MINER_VENV) (see above)"
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-all: install
	$(MAKE) miner-env || echo "warning: could not make $(MINER_VENV) (see above)"
	$(VENV)/bin/pytest -m "" $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/roadwork demo

scheduler: install
	$(VENV)/bin/roadwork scheduler

dashboard: install
	$(VENV)/bin/roadwork dashboard

clean:
	rm -rf $(VENV) $(MINER_VENV) build *.egg-info .pytest_cache
