#!/usr/bin/env bash
# Create (or refresh) the Label Studio server's own virtual environment.
#
# Why a separate venv: label-studio 1.23.2 pins Django and many web dependencies (and
# label-studio-sdk 2.1.2) that clash with the project's own; the main venv only carries the
# SDK client. Idempotent: a stamp file records the installed version, so `make` re-runs cheaply.
#
#   scripts/label_studio_venv.sh [VENV_DIR]      (default: .wmstudio/label-studio-venv)
#   LABEL_STUDIO_VERSION=1.23.2 PYTHON=python3.11 scripts/label_studio_venv.sh
set -euo pipefail

# Offline: no error reporting or version checks phoning home from the server.
export SENTRY_DSN= FRONTEND_SENTRY_DSN= COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${ROOT}/.wmstudio/label-studio-venv}"
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
PYTHON="${PYTHON:-python3.11}"
STAMP="${VENV}/.label-studio-${VERSION}"

if [[ -f "${STAMP}" && -x "${VENV}/bin/label-studio" ]]; then
  echo "label-studio ${VERSION} already installed in ${VENV}"
  exit 0
fi

echo "installing label-studio ${VERSION} into ${VENV}"
test -x "${VENV}/bin/python" || "${PYTHON}" -m venv "${VENV}"
"${VENV}/bin/python" -m pip install -q --upgrade pip
"${VENV}/bin/python" -m pip install -q "label-studio==${VERSION}"
# A cheap check: `label-studio --version` boots Django and migrates a default data folder.
"${VENV}/bin/python" -c "import importlib.metadata as m; assert m.version('label-studio') == '${VERSION}'"
rm -f "${VENV}"/.label-studio-* "${VENV}/test-template.sqlite3"  # migrated DB snapshot of the tests
touch "${STAMP}"
echo "label-studio ${VERSION} ready: ${VENV}/bin/label-studio"
