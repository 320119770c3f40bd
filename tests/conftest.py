"""Fixtures: a migrated store on SQLite and on PostgreSQL, people and a staffed project.

PostgreSQL is the server at ``CEP_TEST_POSTGRES_URL`` (default: postgres@127.0.0.1:5432/test).
Each test session works in a database of its own, created and dropped here. When the server
cannot be reached the PostgreSQL tests fail if ``CEP_REQUIRE_POSTGRES=1`` (as in
``scripts/test.sh`` and CI), and are skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cep_engine.guides import load_guides
from cep_engine.services import _validate, projects
from cep_engine.settings import REPO_CONFIG_DIR
from cep_engine.store.db import Store
from cep_engine.store.migrate import upgrade
from cep_engine.store.models import Base

PG_URL = os.environ.get(
    "CEP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)

PM = "pat.pm@cts.wa.gov"
SENIOR = "sam.senior@cts.wa.gov"
LIAISON = "lee.liaison@cts.wa.gov"
COORD = "casey.coord@dol.wa.gov"
SPONSOR = "cto@cts.wa.gov"
EXEC = "deputy@cts.wa.gov"
TEAM = "tess.team@cts.wa.gov"
STAFF = {
    PM: "assigned_pm",
    SENIOR: "senior_pm",
    LIAISON: "client_liaison",
    COORD: "implementation_coordinator",
    SPONSOR: "project_sponsor",
    EXEC: "executive_sponsor",
    TEAM: "cts_team_member",
}

OFFLINE_NOISE = ("Failed to send telemetry", "Name or service not known", "ConnectError",
                 "All connection attempts failed", "amplitude")
"""What Prefect logs when it tries to reach the network from an offline machine (with
analytics on, the server logs "Failed to send telemetry: [Errno -2] Name or service not known"
as soon as it starts)."""


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CEP_") and name not in ("CEP_REQUIRE_POSTGRES",
                                                     "CEP_TEST_POSTGRES_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(_validate, "_max_text", _validate.DEFAULT_MAX_TEXT)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once by Alembic; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "cep.db"
    store = Store.from_url(f"sqlite:///{path}")
    upgrade(store)
    store.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated by Alembic."""
    name = f"cep_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        message = f"PostgreSQL at {PG_URL} is not reachable: {exc.__class__.__name__}"
        if os.environ.get("CEP_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " (CEP_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    store = Store.from_url(url)
    upgrade(store)
    store.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(store: Store) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with store.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "cep.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        st = Store.from_url(f"sqlite:///{path}")
    else:
        st = Store.from_url(request.getfixturevalue("pg_database"))
        _truncate(st)
    yield st
    st.dispose()


@pytest.fixture
def pg_store(pg_database: str) -> Iterator[Store]:
    """A migrated, empty store on PostgreSQL only."""
    st = Store.from_url(pg_database)
    _truncate(st)
    yield st
    st.dispose()


def staff_project(st: Store, key: str = "SDC-042", *, now: datetime = NOW) -> str:
    """Create ``key`` with every test person in their role; return the key."""
    for email in STAFF:
        if not _exists(st, email):
            projects.add_person(st, email, email.split("@")[0].replace(".", " ").title(), now=now)
    projects.create_project(st, key, "Move agency servers", "Department of Licensing",
                            actor=PM, guides=load_guides(REPO_CONFIG_DIR), now=now)
    for email, role in STAFF.items():
        projects.assign_role(st, key, role, email, actor=PM, now=now)
    return key


def _exists(st: Store, email: str) -> bool:
    with st.reading() as s:
        return bool(s.execute(text("SELECT 1 FROM people WHERE email = :e"), {"e": email}).first())


@pytest.fixture
def project(store: Store) -> str:
    """A staffed project SDC-042 on ``store``."""
    return staff_project(store)


def snapshot(st: Store, *, skip: tuple[str, ...] = ("audit_log",)) -> dict[str, Any]:
    """Every row of every table except ``skip``, for before/after comparisons."""
    out: dict[str, Any] = {}
    with st.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in skip:
                continue
            rows = conn.execute(table.select()).all()
            out[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return out


def audit_count(st: Store, *, accepted: bool | None = None) -> int:
    """Rows in the audit trail, optionally only accepted or refused ones."""
    where = "" if accepted is None else f" WHERE accepted = {'true' if accepted else 'false'}"
    with st.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM audit_log{where}")).scalar_one())
