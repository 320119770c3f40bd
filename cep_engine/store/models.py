"""The database schema as SQLAlchemy 2 typed ORM classes.

Audit entries and checklist submissions are append-only: the ORM refuses to update or
delete them (see :func:`_refuse_change`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship

from cep_engine.store.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with constraint names that Alembic can rely on."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Person(Base):
    """Someone who holds a role on one or more projects."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Project(Base):
    """One State Data Center implementation, identified by a key such as ``SDC-042``."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    agency: Mapped[str] = mapped_column(String(200))
    phase: Mapped[str] = mapped_column(String(20))
    held_from: Mapped[str | None] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    roles: Mapped[list[RoleAssignment]] = relationship(back_populates="project")
    guides: Mapped[list[ReadinessGuide]] = relationship(
        back_populates="project", order_by="ReadinessGuide.id"
    )

    __mapper_args__ = {"version_id_col": version}


class RoleAssignment(Base):
    """A person holding a role on a project."""

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("project_id", "person_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    role: Mapped[str] = mapped_column(String(40))
    assigned_at: Mapped[datetime]

    project: Mapped[Project] = relationship(back_populates="roles")
    person: Mapped[Person] = relationship(lazy="joined")


class ReadinessGuide(Base):
    """The readiness guide of one cut-over stage, and the review state of its checklist."""

    __tablename__ = "readiness_guides"
    __table_args__ = (UniqueConstraint("project_id", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime]

    project: Mapped[Project] = relationship(back_populates="guides")
    tasks: Mapped[list[ReadinessTask]] = relationship(
        back_populates="guide", order_by="ReadinessTask.number"
    )
    submissions: Mapped[list[ChecklistSubmission]] = relationship(
        back_populates="guide", order_by="ChecklistSubmission.number"
    )

    __mapper_args__ = {"version_id_col": version}


class ReadinessTask(Base):
    """One checklist task: done by CTS, by the customer, or jointly."""

    __tablename__ = "readiness_tasks"
    __table_args__ = (UniqueConstraint("guide_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    guide_id: Mapped[int] = mapped_column(ForeignKey("readiness_guides.id", ondelete="CASCADE"))
    number: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    party: Mapped[str] = mapped_column(String(10))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    due_date: Mapped[date | None] = mapped_column(Date)
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    done_at: Mapped[datetime | None]

    guide: Mapped[ReadinessGuide] = relationship(back_populates="tasks")
    owner: Mapped[Person | None] = relationship(foreign_keys=[owner_id], lazy="joined")
    done_by: Mapped[Person | None] = relationship(foreign_keys=[done_by_id], lazy="joined")


class ChecklistSubmission(Base):
    """One signed submission of a checklist, kept forever with the tasks as they were."""

    __tablename__ = "checklist_submissions"
    __table_args__ = (UniqueConstraint("guide_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    guide_id: Mapped[int] = mapped_column(ForeignKey("readiness_guides.id", ondelete="CASCADE"))
    number: Mapped[int]
    signer_name: Mapped[str] = mapped_column(String(200))
    attestation: Mapped[str] = mapped_column(Text)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    submitted_at: Mapped[datetime]
    tasks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)

    guide: Mapped[ReadinessGuide] = relationship(back_populates="submissions")
    submitted_by: Mapped[Person] = relationship(lazy="joined")
    review: Mapped[ChecklistReview | None] = relationship(lazy="joined")


class ChecklistReview(Base):
    """The assigned PM's decision on one submission: validated, or returned with a comment."""

    __tablename__ = "checklist_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("checklist_submissions.id", ondelete="CASCADE"), unique=True
    )
    decision: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text, default="")
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    reviewed_at: Mapped[datetime]

    reviewer: Mapped[Person] = relationship(lazy="joined")


class CustomerSignoff(Base):
    """The agency's sign-off that the implementation is accepted."""

    __tablename__ = "customer_signoffs"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    signer_name: Mapped[str] = mapped_column(String(200))
    statement: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime]


class AuditEntry(Base):
    """One accepted or refused attempt to change something. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(254))
    actor_roles: Mapped[str] = mapped_column(String(400))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE")
    )
    entity_type: Mapped[str] = mapped_column(String(20))
    entity: Mapped[str] = mapped_column(String(100))
    trigger: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[str | None] = mapped_column(String(40))
    to_state: Mapped[str | None] = mapped_column(String(40))
    accepted: Mapped[bool] = mapped_column(Boolean)
    guards: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")


def _refuse_change(mapper: Mapper[Any], connection: Any, target: Any) -> None:
    raise RuntimeError(f"{type(target).__name__} rows are append-only")


for _model in (AuditEntry, ChecklistSubmission):
    event.listen(_model, "before_update", _refuse_change)
    event.listen(_model, "before_delete", _refuse_change)


OPEN_ISSUE_STATUSES = ("open", "in_progress")
"""Issue statuses in which the escalation clock runs."""

OPEN_ISSUE_SQL = "status IN ('open', 'in_progress')"
"""The same, as the predicate of the partial index ``ix_issues_due``. Queries that want that
index must repeat this literal text: SQLite cannot match a bound parameter against it."""


class EscalationPolicySnapshot(Base):
    """An escalation ladder as it was when an issue opened; shared by content digest."""

    __tablename__ = "escalation_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class Issue(Base):
    """An entry of a project's Issues Log, with its place on the escalation ladder.

    ``stale_since`` is the later of the last activity and the last acknowledgement: the
    sweep compares it with one cutoff instant per (policy, priority, level).
    """

    __tablename__ = "issues"
    __table_args__ = (
        UniqueConstraint("project_id", "number"),
        Index(
            "ix_issues_due",
            "policy_id",
            "priority",
            "level",
            "stale_since",
            sqlite_where=sql_text(OPEN_ISSUE_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[str] = mapped_column(String(10))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    status: Mapped[str] = mapped_column(String(12))
    level: Mapped[str] = mapped_column(String(20))
    policy_id: Mapped[int] = mapped_column(ForeignKey("escalation_policies.id"))
    opened_at: Mapped[datetime]
    last_activity_at: Mapped[datetime]
    acked_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    stale_since: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    owner: Mapped[Person | None] = relationship(lazy="joined")
    policy: Mapped[EscalationPolicySnapshot] = relationship()

    __mapper_args__ = {"version_id_col": version}


@event.listens_for(Issue.__table__, "before_create")
def _issues_due_partial_on_postgresql(table: Any, connection: Any, **_: Any) -> None:
    """``ix_issues_due`` is partial on PostgreSQL too (migration 0002 creates it so).

    The option is attached when a PostgreSQL connection creates the table: naming
    ``postgresql_where`` in the class would import the whole PostgreSQL dialect (its asyncpg,
    pg8000 and psycopg2 modules too), ~0.1 s of every start-up, also on SQLite.
    """
    if connection.dialect.name == "postgresql":
        index = next(i for i in table.indexes if i.name == "ix_issues_due")
        index.dialect_kwargs["postgresql_where"] = sql_text(OPEN_ISSUE_SQL)


class IssueActivity(Base):
    """One line of an issue's history: a note, a status or owner change, an ack, a snooze."""

    __tablename__ = "issue_activity"
    __table_args__ = (Index("ix_issue_activity_issue_id_id", "issue_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text, default="")
    from_value: Mapped[str | None] = mapped_column(String(254))
    to_value: Mapped[str | None] = mapped_column(String(254))


class Escalation(Base):
    """One (issue, level) escalation. The unique constraint makes each fire exactly once.

    ``cycle`` counts the issue's de-escalations and reopenings: after one of those, climbing
    to the same rung again is a new escalation, not a duplicate.
    """

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("issue_id", "level", "cycle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(20))
    cycle: Mapped[int] = mapped_column(Integer)
    escalated_at: Mapped[datetime]
    stale_since: Mapped[datetime]


class Risk(Base):
    """An entry of the Risk Log, rated for probability and impact (1-5 each)."""

    __tablename__ = "risks"
    __table_args__ = (
        UniqueConstraint("project_id", "number"),
        Index("ix_risks_trigger_date", "status", "trigger_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    probability: Mapped[int]
    impact: Mapped[int]
    score: Mapped[int]
    trigger_text: Mapped[str] = mapped_column(Text, default="")
    trigger_date: Mapped[date | None] = mapped_column(Date)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    mitigation: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    owner: Mapped[Person | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}


class ActionItem(Base):
    """An entry of the Action Items Log kept by the client liaison."""

    __tablename__ = "action_items"
    __table_args__ = (
        UniqueConstraint("project_id", "number"),
        Index("ix_action_items_status_due_date", "status", "due_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    due_date: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(10))
    source_ref: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    owner: Mapped[Person | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}


class OutboxMessage(Base):
    """A notification written in the same transaction as the change that causes it.

    ``idempotency_key`` is unique: the same event can never queue two messages.
    Recipients are named by role and resolved from the project's assignments at send time.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    to_roles: Mapped[list[str]] = mapped_column(JSON)
    cc_roles: Mapped[list[str]] = mapped_column(JSON)
    to_addresses: Mapped[list[str]] = mapped_column(JSON)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(250))
