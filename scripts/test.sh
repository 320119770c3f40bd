#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite: lint, types, then pytest on SQLite and
# PostgreSQL. PostgreSQL is required: the run fails, not skips, when it cannot be reached
# (set CEP_TEST_POSTGRES_URL to point elsewhere; default postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CEP_REQUIRE_POSTGRES="${CEP_REQUIRE_POSTGRES:-1}"
.venv/bin/ruff check cep_engine workflows tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
