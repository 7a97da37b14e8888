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
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export PYTHONUNBUFFERED := 1

.PHONY: run test install system-deps lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[train,app,curation,dev]'
	@touch $(STAMP)

install: $(STAMP)

# The real components `make test` requires (WMSTUDIO_REQUIRE_COMPONENTS=1): Debian's Chromium for
# the browser tests (never `playwright install`) and PostgreSQL for the store tests, installed with
# apt when missing (as root or with passwordless sudo). Label Studio comes from label-studio-venv.
system-deps:
	@missing=""; \
	{ command -v chromium || test -x /usr/bin/chromium; } >/dev/null 2>&1 || missing="$$missing chromium"; \
	{ ls /usr/lib/postgresql/*/bin/initdb || command -v initdb; } >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "system-deps: cannot install$$missing (not root, no sudo)"; exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "system-deps: no apt-get; install$$missing by hand"; exit 0; fi; \
	echo "installing Debian packages for the real-component tests:$$missing"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null

run: install
	$(BIN)/python -m cli.launch

# A missing real component (Label Studio, PostgreSQL, Chromium) fails here instead of skipping:
# these targets provide them. `make test WMSTUDIO_REQUIRE_COMPONENTS=0` lets them skip.
WMSTUDIO_REQUIRE_COMPONENTS ?= 1
test: install system-deps label-studio-venv
	WMSTUDIO_REQUIRE_COMPONENTS=$(WMSTUDIO_REQUIRE_COMPONENTS) $(BIN)/pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: install
	$(BIN)/python benchmarks/bench_runtime.py

# The MLflow UI over the embedded store (every `wmstudio train`, release and evaluation; the model
# registry with the champion alias). With a shared server (MLFLOW_TRACKING_URI) open its URL instead.
.PHONY: mlflow-ui
mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(STATE)/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache

# fastdup is CC BY-NC-ND (non-commercial) and pins numpy<2, so it never enters .venv: it gets its
# own venv, used only by the optional duplicates backend (WMSTUDIO_DUPLICATES_BACKEND=fastdup).
FASTDUP_VENV := $(STATE)/fastdup-venv
.PHONY: fastdup-venv bench-curation
fastdup-venv: $(FASTDUP_VENV)/.installed

$(FASTDUP_VENV)/.installed:
	@test -x $(FASTDUP_VENV)/bin/python || $(PYTHON) -m venv $(FASTDUP_VENV)
	$(FASTDUP_VENV)/bin/python -m pip install -q --upgrade pip
	$(FASTDUP_VENV)/bin/python -m pip install -q fastdup
	@touch $@

bench-curation: install
	$(BIN)/python benchmarks/bench_curation.py

# Airflow pins clash with ours, so it gets its own venv (the DAG test loads the DAG with it).
AIRFLOW_VENV := $(STATE)/airflow-venv
AIRFLOW_PACKAGES := apache-airflow==3.3.2 apache-airflow-providers-standard==1.21.0 apache-airflow-providers-cncf-kubernetes==10.25.0
.PHONY: airflow-venv
airflow-venv: $(AIRFLOW_VENV)/.installed

$(AIRFLOW_VENV)/.installed:
	@test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install -q $(AIRFLOW_PACKAGES)
	@touch $@

# Label Studio server in its own venv (its Django pins clash with ours); `make run` starts it
# when this venv exists, and its tests need it.
.PHONY: label-studio-venv label-studio
label-studio-venv:
	PYTHON=$(PYTHON) scripts/label_studio_venv.sh

label-studio: install label-studio-venv
	$(BIN)/python -m curation.ls_server
