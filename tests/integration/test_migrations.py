"""Alembic migrations produce exactly the schema the models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cep_engine.store.db import Store
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
