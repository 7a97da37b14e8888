# Watermark Studio — two commands do everything:
#   make run   create/refresh .venv, install, start API + dashboard + demo on the bundled model
#   make test  create/refresh .venv, install, run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STATE := $(CURDIR)/.wmstudio

# Offline: no phone-home from any library (also applied in code by wmstudio.offline).
export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(STATE)/yolo
export NO_ALBUMENTATIONS_UPDATE := 1
export SENTRY_OPT_OUT := 1
export FASTDUP_PRODUCTION := 1
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export STREAMLIT_BROWSER_GATHER_USAGE_STATS := false
export SENTRY_DSN :=
export FRONTEND_SENTRY_DSN :=
export COLLECT_ANALYTICS := false
export LATEST_VERSION_CHECK := false
export PYTHONUNBUFFERED := 1

.PHONY: run test install system-deps lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[train,app,curation,dev]'
	@touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the browser tests (never `playwright install`); skipped when present
# or when not root (the browser tests then skip with a message).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

run: install
	$(BIN)/python -m wmstudio.launch

test: install system-deps
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: install
	$(BIN)/python benchmarks/bench_runtime.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
