#!/usr/bin/env bash
# Create .venv if it is missing and install zoo with its test tools into it.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "Creating the virtual environment in .venv"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.zoo-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]] || ! .venv/bin/python -c "import zoo_core, zoo_keras" 2>/dev/null; then
  echo "Installing zoo and its dependencies into .venv (the first time takes a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  echo "$wanted" > "$stamp"
fi
