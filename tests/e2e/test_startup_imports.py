"""Read commands import what they need and nothing more (start-up time is import time).

Checked on the real ``cep`` process with ``python -X importtime``: no PostgreSQL dialect on
SQLite, no YAML, Jinja2 or Prefect for a read, and no rich with ``--json``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import TIMEOUT, cep_env

NEVER_ON_SQLITE_READS = ("sqlalchemy.dialects.postgresql", "yaml", "jinja2", "prefect")


def imported(tmp_path: Path, db: Path, *args: str) -> set[str]:
    """Every module the command imported, from its ``-X importtime`` report."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cep_engine.cli",
         "--database-url", f"sqlite:///{db}", *args],
        env=cep_env(tmp_path / "data"), capture_output=True, text=True, timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", proc.stderr, re.MULTILINE)
    assert "cep_engine.services.queries" in found
    return set(found)


@pytest.mark.parametrize("args", [("project", "list"), ("project", "list", "--json")])
def test_a_read_on_sqlite_imports_no_postgresql_yaml_jinja_or_prefect(
    tmp_path: Path, sqlite_template: Path, args: tuple[str, ...]
) -> None:
    db = tmp_path / "cep.db"
    shutil.copy(sqlite_template, db)
    modules = imported(tmp_path, db, *args)
    assert sorted(m for m in modules if m.split(".")[0] in ("yaml", "jinja2", "prefect")
                  or m.startswith(NEVER_ON_SQLITE_READS[0])) == []
    assert ("rich.console" in modules) == ("--json" not in args)
