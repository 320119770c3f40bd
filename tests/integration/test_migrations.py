"""Alembic migrations produce exactly the schema the models declare, on both backends."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text

from cep_engine.errors import CepError
from cep_engine.store.db import SCHEMA_REVISION, Store
from cep_engine.store.migrate import current_revision, head_revision, upgrade
from cep_engine.store.models import Base


def test_migrated_schema_matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(store: Store) -> None:
    assert current_revision(store) == head_revision(store)
    before, after = upgrade(store)
    assert before == after == head_revision(store)


def test_code_expects_the_newest_revision(store: Store) -> None:
    assert head_revision(store) == SCHEMA_REVISION
    store.require_schema()


def test_an_old_schema_asks_for_cep_init(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    try:
        with pytest.raises(CepError, match=r"revision 0001.*run `cep init` to upgrade"):
            store.require_schema()
    finally:  # the PostgreSQL database is shared by the session's later tests
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"),
                         {"v": SCHEMA_REVISION})


def _issues_due_definition(conn: Connection, schema: str) -> str:
    found = conn.execute(text(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = :s AND indexname = 'ix_issues_due'"
    ), {"s": schema}).scalar_one()
    return str(found).replace(f"{schema}.", "")


@pytest.mark.postgres
def test_create_all_makes_the_partial_index_of_the_migrations(pg_store: Store) -> None:
    schema = f"create_all_{uuid.uuid4().hex[:8]}"
    with pg_store.engine.begin() as conn:
        migrated = _issues_due_definition(conn, "public")
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
        Base.metadata.create_all(conn)
        created = _issues_due_definition(conn, schema)
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    assert "WHERE" in migrated
    assert created == migrated


def test_create_all_makes_the_partial_index_on_sqlite() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        sql = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_issues_due'").scalar_one()
    engine.dispose()
    assert "WHERE status IN ('open', 'in_progress')" in sql
