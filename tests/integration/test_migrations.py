"""Alembic migrations produce exactly the schema the models declare, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

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
    with pytest.raises(CepError, match=r"revision 0001.*run `cep init` to upgrade"):
        store.require_schema()
