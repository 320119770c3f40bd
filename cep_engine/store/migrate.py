"""Create or upgrade the schema with Alembic (``cep init``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cep_engine.store.db import Store

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(store: Store) -> Config:
    """An Alembic config pointing at the packaged migrations and at ``store``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option(
        "sqlalchemy.url", store.engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def upgrade(store: Store) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; return (revision before, revision after)."""
    cfg = alembic_config(store)
    before = current_revision(store)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return before, head_revision(store)


def current_revision(store: Store) -> str | None:
    """The revision the database is at, or ``None`` before the first ``cep init``."""
    with store.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(store: Store) -> str:
    """The newest revision shipped with this version of cep-engine."""
    head = ScriptDirectory.from_config(alembic_config(store)).get_current_head()
    assert head is not None
    return head
