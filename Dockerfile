# syntax=docker/dockerfile:1
# Watermark Studio images. Targets:
#   serve (default)  API + CLI + bundled model; onnxruntime, no torch      docker build -t wmstudio .
#   apps             serve + Streamlit dashboard + Gradio demo             docker build --target apps -t wmstudio-apps .
#   train            torch + ultralytics + curation: training and the loop docker build --target train -t wmstudio-train .
#   airflow          train + Airflow (own venv) running the watermark_loop DAG (docker compose --profile airflow)
#   mlflow           the team's MLflow tracking server (PostgreSQL backend, proxied artifact store)
# Every image reads its configuration from WMSTUDIO_* variables (see .env.example).

ARG PYTHON_IMAGE=python:3.11-slim

# --- base: the interpreter and the environment every stage shares --------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# --- build: the core dependencies (read from pyproject.toml) and the package -----------------
FROM base AS build
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
# Dependencies first, from pyproject.toml itself, so code changes do not reinstall them.
# (-P below: import the installed package, not the sources in the working directory.)
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY wmstudio wmstudio
COPY api api
COPY app app
COPY training training
COPY curation curation
COPY pipelines pipelines
COPY cli cli
RUN pip install --no-deps . \
    && python -P -c "import cli.main, api.main" \
    && ! python -c "import torch" 2>/dev/null

# --- bundle: the champion only (ONNX file, card, evaluation summaries; never the .pt weights) ---
# Whatever else lies in the checkout's models/ (older versions, weights) stays out of the image.
FROM build AS bundle
COPY models models
RUN python -P -c "from wmstudio.registry import copy_champion; print(copy_champion('models', '/bundle/models'))" \
    && test -z "$(find /bundle/models -name '*.pt')"

# --- build-apps: the core venv plus the app extra (Gradio, Streamlit) -----------------------
FROM build AS build-apps
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['app']))" \
        > /tmp/app-requirements.txt \
    && pip install -r /tmp/app-requirements.txt

# --- runtime: non-root user and writable folders shared by serve and apps -------------------
FROM base AS runtime
RUN groupadd --system --gid 10001 wmstudio \
    && useradd --system --uid 10001 --gid wmstudio --create-home --home-dir /home/wmstudio wmstudio \
    && mkdir -p /var/lib/wmstudio /data \
    && chown wmstudio:wmstudio /var/lib/wmstudio /data
# The package is installed (not run from a checkout), so the folders are set explicitly.
# MPLCONFIGDIR under /tmp: the Kubernetes pods run with a read-only root filesystem.
ENV WMSTUDIO_REGISTRY_DIR=/app/models \
    WMSTUDIO_STATE_DIR=/var/lib/wmstudio \
    WMSTUDIO_DATA_DIR=/data \
    WMSTUDIO_API_HOST=0.0.0.0 \
    WMSTUDIO_API_PORT=8000 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/home/wmstudio
WORKDIR /app
# The bundled champion, owned by the app user: a compose named volume copies it with its owner,
# so the loop (same uid) can register and promote versions there. Kubernetes copies it into a PVC.
COPY --from=bundle --chown=10001:10001 /bundle/models /app/models

# --- train: torch, torchvision, ultralytics and curation ------------------------------------
FROM base AS train
# OpenCV (pulled in by ultralytics) needs libGL and GLib at import time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
# torch first, in its own layer: it is most of the image and changes least.
RUN python -m venv /opt/venv \
    && pip install torch==2.14.1 torchvision==0.29.1
WORKDIR /src
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['train'] + p['optional-dependencies']['curation']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY wmstudio wmstudio
COPY api api
COPY app app
COPY training training
COPY curation curation
COPY pipelines pipelines
COPY cli cli
RUN pip install --no-deps . \
    && python -P -c "import torch, ultralytics, cli.main"
RUN groupadd --system --gid 10001 wmstudio \
    && useradd --system --uid 10001 --gid wmstudio --create-home --home-dir /home/wmstudio wmstudio \
    && mkdir -p /var/lib/wmstudio /data /models \
    && chown wmstudio:wmstudio /var/lib/wmstudio /data /models
ENV WMSTUDIO_REGISTRY_DIR=/models \
    WMSTUDIO_STATE_DIR=/var/lib/wmstudio \
    WMSTUDIO_DATA_DIR=/data \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/home/wmstudio
WORKDIR /var/lib/wmstudio
USER 10001
CMD ["wmstudio", "--help"]

# --- airflow: the training image plus Airflow in its own venv (its pins clash with ours) ---------
FROM train AS airflow
USER 0
RUN python -m venv /opt/airflow-venv \
    && /opt/airflow-venv/bin/pip install apache-airflow==3.3.2 apache-airflow-providers-standard==1.21.0 \
        apache-airflow-providers-cncf-kubernetes==10.25.0
COPY airflow/dags /opt/wmstudio/dags
# `wmstudio` (BashOperator tasks) comes from /opt/venv on the PATH; `airflow` from its own venv.
ENV AIRFLOW_HOME=/var/lib/wmstudio/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/wmstudio/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    WMSTUDIO_AIRFLOW_MODE=local
USER 10001
EXPOSE 8080
CMD ["/opt/airflow-venv/bin/airflow", "standalone"]

# --- mlflow: the shared tracking server and model registry (docker compose, k8s/base/mlflow.yaml) ---
# mlflow is pinned by the train extra; psycopg (core) is the PostgreSQL driver of the backend store.
FROM base AS mlflow
WORKDIR /src
COPY pyproject.toml README.md ./
RUN python -m venv /opt/venv \
    && python -c "import re, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(d for d in p['dependencies'] + p['optional-dependencies']['train'] if re.match(r'(mlflow|psycopg)\b', d)))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --create-home --home-dir /home/mlflow mlflow \
    && mkdir -p /mlflow \
    && chown mlflow:mlflow /mlflow
# The stores come from the environment: compose and Kubernetes set MLFLOW_BACKEND_STORE_URI to
# PostgreSQL (a secret) and MLFLOW_SERVER_ALLOWED_HOSTS to the service's own name.
ENV MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    MLFLOW_BACKEND_STORE_URI=sqlite:////mlflow/mlflow.db \
    MLFLOW_ARTIFACTS_DESTINATION=/mlflow/artifacts \
    HOME=/home/mlflow
WORKDIR /mlflow
USER 10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "2"]

# --- apps: the dashboard and the demo (clients of the API) ----------------------------------
FROM runtime AS apps
COPY --from=build-apps /opt/venv /opt/venv
ENV WMSTUDIO_API_URL=http://api:8000
USER 10001
EXPOSE 7860 8501
# The demo by default; the dashboard runs the same image with:
#   streamlit run /opt/venv/lib/python3.11/site-packages/app/dashboard.py --server.address 0.0.0.0
CMD ["python", "-m", "app.demo"]

# --- serve (default): the detection API ------------------------------------------------------
FROM runtime AS serve
COPY --from=build /opt/venv /opt/venv
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WMSTUDIO_API_PORT', '8000'), timeout=4)"]
CMD ["wmstudio", "serve", "--host", "0.0.0.0"]
