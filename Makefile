# Roadwork Ops. `make run`: the demo loop, then scheduler + dashboard. `make test`: the test suite.
# Both create .venv on first use (needs python3-venv on Debian/Ubuntu): torch is installed first and pinned,
# then the project with its dev extras. From PyPI, torch==2.13.0 on Linux is the CUDA build (gigabytes); for the
# CPU build pass TORCH_INDEX=https://download.pytorch.org/whl/cpu (the same index the Dockerfile uses).
# TORCH_SPEC=torch on a GPU box takes the newest CUDA build.

VENV       ?= .venv
PY         := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=

.PHONY: install run test test-all demo scheduler dashboard bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)") "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/roadwork demo
	@echo "starting the scheduler and the dashboard (Ctrl-C stops both)"
	@$(VENV)/bin/roadwork scheduler & sched=$$!; \
	trap 'kill $$sched 2>/dev/null; wait $$sched 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/roadwork dashboard

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-all: install
	$(VENV)/bin/pytest -m "" $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/roadwork demo

scheduler: install
	$(VENV)/bin/roadwork scheduler

dashboard: install
	$(VENV)/bin/roadwork dashboard

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
