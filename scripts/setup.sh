#!/usr/bin/env bash
# Installs everything the project needs from nothing: a virtualenv with the package and its dev tools.
# Idempotent: a second run only checks. Used by demo.sh, test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> installing stream-anon and its dependencies into .venv (first run: a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet --progress-bar off -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
