"""On SQLite a read never holds the write lock: a long ``cep history`` or a delivery's
lookup does not make a sweep or a transition wait, and changes still queue for the lock."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from cep_engine.services import projects, queries
from cep_engine.store.db import Store
from tests.conftest import NOW, PM, staff_project


@pytest.fixture
def sqlite_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "cep.db"
    shutil.copy(sqlite_template, path)
    return path


@pytest.fixture
def sqlite_store(sqlite_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{sqlite_path}")
    yield store
    store.dispose()


def _writer_gets_the_lock(path: Path) -> bool:
    """Whether another process could begin a write transaction at once (no waiting)."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    else:
        other.execute("ROLLBACK")
        return True
    finally:
        other.close()


def test_a_read_connection_in_a_transaction_leaves_the_write_lock_free(
    sqlite_store: Store, sqlite_path: Path
) -> None:
    key = staff_project(sqlite_store, "SDC-301")
    with sqlite_store.connect() as conn:
        assert queries.history(conn, key)
        assert conn.in_transaction()
        assert _writer_gets_the_lock(sqlite_path)


def test_a_read_session_leaves_the_write_lock_free(sqlite_store: Store,
                                                   sqlite_path: Path) -> None:
    with sqlite_store.reading() as session:
        assert session.execute(text("SELECT count(*) FROM projects")).scalar_one() == 0
        assert session.in_transaction()
        assert _writer_gets_the_lock(sqlite_path)


def test_a_change_still_takes_the_write_lock_when_it_begins(
    sqlite_store: Store, sqlite_path: Path
) -> None:
    key = staff_project(sqlite_store, "SDC-302")
    with sqlite_store.begin() as conn:
        conn.execute(text("SELECT 1"))
        assert not _writer_gets_the_lock(sqlite_path)
    with sqlite_store.connect() as reading:
        reading.execute(text("SELECT 1"))
        fired = projects.fire_phase(sqlite_store, key, "advance", actor=PM, now=NOW)
    assert fired.dest == "planning"
