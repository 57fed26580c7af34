#!/usr/bin/env bash
# Set up .venv if needed, then run the main job: train and test the Keras MLP.
# Extra arguments go to `zoo run mlp`, e.g. `bash scripts/run.sh --seed 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/zoo run mlp "$@"
