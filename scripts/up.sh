#!/usr/bin/env bash
# Set up .venv (if needed), then run the engine: `cep up` migrates the database, starts a local
# Prefect server (UI at http://127.0.0.1:4200) and serves every deployment; Ctrl-C stops it.
# Arguments go to `cep up` (e.g. --port 4300). `bash scripts/up.sh demo` runs `cep demo` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "demo" ]; then
  shift
  .venv/bin/cep init
  exec .venv/bin/cep demo "$@"
fi
exec .venv/bin/cep up "$@"
