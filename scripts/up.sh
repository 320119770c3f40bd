#!/usr/bin/env bash
# Set up .venv (if needed), create or upgrade the database, and run the engine's main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/cep init
exec .venv/bin/cep demo "$@"
