# sbirlab: the two commands of the README.
#   make report   create .venv, install sbirlab, execute every notebook with papermill into reports/
#   make test     create .venv if needed, run the test suite
# Works on a fresh machine with Python 3.11 and nothing else installed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
ARCH   := $(shell uname -m)
# torch/torchvision pairs known to install and import on these machines (see README).
ifeq ($(ARCH),aarch64)
TORCH_PINS = torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS = torch==2.14.1 torchvision==0.29.1
endif
PRESET ?= default
PYTEST_ARGS ?=

.PHONY: report test venv student clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel setuptools
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $@

report: venv
	$(BIN)/sbirlab report --preset $(PRESET)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

student: venv
	$(BIN)/sbirlab student

clean-venv:
	rm -rf $(VENV)
