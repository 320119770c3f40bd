"""Read commands import what they need and nothing more (start-up time is import time).

Checked on the real ``cep`` process with ``python -X importtime``: no ORM (reads run Core
statements on the tables), no PostgreSQL dialect on SQLite, no YAML, Jinja2 or Prefect for a
read, and no rich with ``--json``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cep_engine.escalation.policy import load_policy
from cep_engine.guides import load_guides
from cep_engine.services import issues, projects
from cep_engine.settings import REPO_CONFIG_DIR
from cep_engine.store.db import Store
from tests.e2e.test_cli import TIMEOUT, cep_env

NEVER_ON_SQLITE_READS = ("sqlalchemy.orm", "sqlalchemy.dialects.postgresql", "yaml", "jinja2",
                         "prefect")
READS_POLICY = ("issue", "show")
"""``issue show`` says when the next rung is due: it reads the escalation policy (YAML)."""
KEY, PM, NOW = "SDC-001", "pat.pm@cts.wa.gov", datetime(2026, 11, 2, 17, 0, tzinfo=UTC)
READS = [
    ("project", "list"), ("project", "list", "--json"), ("project", "show", KEY),
    ("history", KEY), ("history", KEY, "--json"), ("role", "list", KEY),
    ("phase", "show", KEY), ("checklist", "show", KEY, "cutover"),
    ("issue", "list", KEY), ("issue", "show", KEY, "1"), ("risk", "list", KEY),
    ("action", "list", KEY), ("outbox", "list"),
]


@pytest.fixture(scope="module")
def seeded(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with one staffed project and one open issue."""
    db = tmp_path_factory.mktemp("reads") / "cep.db"
    shutil.copy(sqlite_template, db)
    store = Store.from_url(f"sqlite:///{db}")
    projects.add_person(store, PM, "Pat Morgan", now=NOW)
    projects.create_project(store, KEY, "Move", "Department of Licensing", actor=PM,
                            guides=load_guides(REPO_CONFIG_DIR), now=NOW)
    projects.assign_role(store, KEY, "assigned_pm", PM, actor=PM, now=NOW)
    issues.open_issue(store, KEY, "Firewall rules missing", priority_name="critical",
                      actor=PM, now=NOW,
                      policy=load_policy(REPO_CONFIG_DIR / "escalation.yaml"))
    store.dispose()
    return db


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
    assert "cep_engine.store.tables" in found
    return set(found)


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_a_read_on_sqlite_imports_no_orm_postgresql_yaml_jinja_or_prefect(
    tmp_path: Path, seeded: Path, args: tuple[str, ...]
) -> None:
    never = set(NEVER_ON_SQLITE_READS) - ({"yaml"} if args[:2] == READS_POLICY else set())
    modules = imported(tmp_path, seeded, *args)
    assert sorted(m for m in modules if m in never or m.startswith(tuple(f"{n}." for n in never))
                  ) == []
    assert ("rich.console" in modules) == ("--json" not in args)
