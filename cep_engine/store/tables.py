"""The database schema as SQLAlchemy Core tables.

The ORM classes in :mod:`cep_engine.store.models` are mapped onto these tables. Read paths
query the tables directly: the CLI's ``show``, ``list`` and ``history`` then never import
the ORM nor map its classes (~0.15 s of every start-up).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy import (
    text as sql_text,
)

from cep_engine.store.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)
"""Every table, with constraint names that Alembic can rely on."""

OPEN_ISSUE_STATUSES = ("open", "in_progress")
"""Issue statuses in which the escalation clock runs."""

OPEN_ISSUE_SQL = "status IN ('open', 'in_progress')"
"""The same, as the predicate of the partial index ``ix_issues_due``. Queries that want that
index must repeat this literal text: SQLite cannot match a bound parameter against it."""


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True)


def _at(name: str, *, nullable: bool = False) -> Column[Any]:
    return Column(name, UTCDateTime(), nullable=nullable)


def _fk(name: str, target: str, *, nullable: bool = False, cascade: bool = False,
        **kwargs: Any) -> Column[int]:
    key = ForeignKey(target, ondelete="CASCADE") if cascade else ForeignKey(target)
    return Column(name, Integer, key, nullable=nullable, **kwargs)


def _str(name: str, length: int, *, nullable: bool = False, **kwargs: Any) -> Column[str]:
    return Column(name, String(length), nullable=nullable, **kwargs)


def _text(name: str, *, default: str | None = None) -> Column[str]:
    return Column(name, Text, nullable=False, default=default)


def _int(name: str, **kwargs: Any) -> Column[int]:
    return Column(name, Integer, nullable=False, **kwargs)


people = Table(
    "people", metadata,
    _id(),
    _str("email", 254, unique=True),
    _str("name", 200),
    _at("created_at"),
)

projects = Table(
    "projects", metadata,
    _id(),
    _str("key", 32, unique=True),
    _str("name", 200),
    _str("agency", 200),
    _str("phase", 20),
    _str("held_from", 20, nullable=True),
    _int("version"),
    _at("created_at"),
    _at("updated_at"),
)

role_assignments = Table(
    "role_assignments", metadata,
    _id(),
    _fk("project_id", "projects.id", cascade=True),
    _fk("person_id", "people.id"),
    _str("role", 40),
    _at("assigned_at"),
    UniqueConstraint("project_id", "person_id", "role"),
)

readiness_guides = Table(
    "readiness_guides", metadata,
    _id(),
    _fk("project_id", "projects.id", cascade=True),
    _str("stage", 20),
    _str("title", 200),
    _str("state", 20),
    _int("version"),
    _at("updated_at"),
    UniqueConstraint("project_id", "stage"),
)

readiness_tasks = Table(
    "readiness_tasks", metadata,
    _id(),
    _fk("guide_id", "readiness_guides.id", cascade=True),
    _int("number"),
    _text("text"),
    _str("party", 10),
    _fk("owner_id", "people.id", nullable=True),
    Column("due_date", Date, nullable=True),
    _fk("done_by_id", "people.id", nullable=True),
    _at("done_at", nullable=True),
    UniqueConstraint("guide_id", "number"),
)

checklist_submissions = Table(
    "checklist_submissions", metadata,
    _id(),
    _fk("guide_id", "readiness_guides.id", cascade=True),
    _int("number"),
    _str("signer_name", 200),
    _text("attestation"),
    _fk("submitted_by_id", "people.id"),
    _at("submitted_at"),
    Column("tasks", JSON, nullable=False),
    UniqueConstraint("guide_id", "number"),
)

checklist_reviews = Table(
    "checklist_reviews", metadata,
    _id(),
    _fk("submission_id", "checklist_submissions.id", cascade=True, unique=True),
    _str("decision", 20),
    _text("comment", default=""),
    _fk("reviewer_id", "people.id"),
    _at("reviewed_at"),
)

customer_signoffs = Table(
    "customer_signoffs", metadata,
    _id(),
    _fk("project_id", "projects.id", cascade=True, index=True),
    _fk("person_id", "people.id"),
    _str("signer_name", 200),
    _text("statement"),
    _at("signed_at"),
)

audit_log = Table(
    "audit_log", metadata,
    _id(),
    _at("at"),
    _str("actor", 254),
    _str("actor_roles", 400),
    _fk("project_id", "projects.id", cascade=True, nullable=True),
    _str("entity_type", 20),
    _str("entity", 100),
    _str("trigger", 40),
    _str("from_state", 40, nullable=True),
    _str("to_state", 40, nullable=True),
    Column("accepted", Boolean, nullable=False),
    Column("guards", JSON, nullable=False),
    _text("reason", default=""),
    Index("ix_audit_log_project_id_id", "project_id", "id"),
)

escalation_policies = Table(
    "escalation_policies", metadata,
    _id(),
    _str("digest", 64, unique=True),
    Column("body", JSON, nullable=False),
    _at("created_at"),
)

issues = Table(
    "issues", metadata,
    _id(),
    _fk("project_id", "projects.id", cascade=True),
    _int("number"),
    _str("title", 200),
    _text("description", default=""),
    _str("priority", 10),
    _fk("owner_id", "people.id", nullable=True),
    _str("status", 12),
    _str("level", 20),
    _fk("policy_id", "escalation_policies.id"),
    _at("opened_at"),
    _at("last_activity_at"),
    _at("acked_at", nullable=True),
    _at("snoozed_until", nullable=True),
    _at("stale_since"),
    _at("resolved_at", nullable=True),
    _int("cycle", default=0),
    _int("version"),
    UniqueConstraint("project_id", "number"),
    Index("ix_issues_due", "policy_id", "priority", "level", "stale_since",
          sqlite_where=sql_text(OPEN_ISSUE_SQL)),
)


@event.listens_for(issues, "before_create")
def _issues_due_partial_on_postgresql(table: Any, connection: Any, **_: Any) -> None:
    """``ix_issues_due`` is partial on PostgreSQL too (migration 0002 creates it so).

    The option is attached when a PostgreSQL connection creates the table: naming
    ``postgresql_where`` in the table would import the whole PostgreSQL dialect (its asyncpg,
    pg8000 and psycopg2 modules too), ~0.1 s of every start-up, also on SQLite.
    """
    if connection.dialect.name == "postgresql":
        index = next(i for i in table.indexes if i.name == "ix_issues_due")
        index.dialect_kwargs["postgresql_where"] = sql_text(OPEN_ISSUE_SQL)


issue_activity = Table(
    "issue_activity", metadata,
    _id(),
    _fk("issue_id", "issues.id", cascade=True),
    _at("at"),
    _str("actor", 254),
    _str("kind", 20),
    _text("text", default=""),
    _str("from_value", 254, nullable=True),
    _str("to_value", 254, nullable=True),
    Index("ix_issue_activity_issue_id_id", "issue_id", "id"),
)

escalations = Table(
    "escalations", metadata,
    _id(),
    _fk("issue_id", "issues.id", cascade=True),
    _str("level", 20),
    _int("cycle"),
    _at("escalated_at"),
    _at("stale_since"),
    UniqueConstraint("issue_id", "level", "cycle"),
)

risks = Table(
    "risks", metadata,
    _id(),
    _fk("project_id", "projects.id", cascade=True),
    _int("number"),
    _str("title", 200),
    _int("probability"),
    _int("impact"),
    _int("score"),
    _text("trigger_text", default=""),
    Column("trigger_date", Date, nullable=True),
    _fk("owner_id", "people.id", nullable=True),
    _text("mitigation", default=""),
    _str("status", 12),
    _fk("issue_id", "issues.id", nullable=True),
    _at("created_at"),
    _at("updated_at"),
    _int("version"),
    UniqueConstraint("project_id", "number"),
    Index("ix_risks_trigger_date", "status", "trigger_date"),
)

action_items = Table(
    "action_items", metadata,
    _id(),
    _fk("project_id", "projects.id", cascade=True),
    _int("number"),
    _str("title", 200),
    _fk("owner_id", "people.id", nullable=True),
    Column("due_date", Date, nullable=True),
    _str("source", 10),
    _str("source_ref", 100, nullable=True),
    _str("status", 12),
    _at("created_at"),
    _at("done_at", nullable=True),
    _int("version"),
    UniqueConstraint("project_id", "number"),
    Index("ix_action_items_status_due_date", "status", "due_date"),
)

outbox = Table(
    "outbox", metadata,
    _id(),
    _str("idempotency_key", 200, unique=True),
    _str("kind", 40),
    _fk("project_id", "projects.id", cascade=True, nullable=True),
    Column("to_roles", JSON, nullable=False),
    Column("cc_roles", JSON, nullable=False),
    Column("to_addresses", JSON, nullable=False),
    Column("context", JSON, nullable=False),
    _str("status", 12),
    _int("attempts", default=0),
    _at("next_attempt_at"),
    Column("last_error", Text, nullable=True),
    _at("created_at"),
    _at("sent_at", nullable=True),
    _str("message_id", 250, nullable=True),
    Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)
