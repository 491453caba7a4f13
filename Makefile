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

# pip, setuptools and ipykernel write to $(LOG); the terminal gets one line per step, or the log's tail and
# a failure. $(call step,LABEL,COMMAND)
LOG = $(VENV)/install.log
define step
	@printf '%-50s ' '$(1)'; \
	if { echo "===== $(1): $(2)"; $(2); } >>$(LOG) 2>&1; then echo ok; \
	else rc=$$?; echo FAILED; echo "----- last 40 lines of $(LOG):"; tail -n 40 $(LOG); \
	echo "----- (full log: $(LOG))"; exit $$rc; fi
endef

$(VENV)/.installed: pyproject.toml
	@mkdir -p $(VENV) && : > $(LOG) && echo "installing into $(VENV) (pip output: $(LOG))"
	$(call step,python -m venv $(VENV),test -x $(BIN)/python || $(PYTHON) -m venv $(VENV))
	$(call step,pip install -U pip wheel setuptools,$(BIN)/python -m pip install --progress-bar off --upgrade pip wheel setuptools)
	$(call step,pip install $(TORCH_PINS),$(BIN)/python -m pip install --progress-bar off $(TORCH_PINS))
	$(call step,pip install -e .[dev],$(BIN)/python -m pip install --progress-bar off -e '.[dev]')
	$(call step,ipykernel install (python3),$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3)
	@touch $@

report: venv
	@$(BIN)/sbirlab report --preset $(PRESET)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

student: venv
	$(BIN)/sbirlab student

clean-venv:
	rm -rf $(VENV)
