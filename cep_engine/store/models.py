"""The ORM classes of the use cases that change things, mapped onto the Core tables of
:mod:`cep_engine.store.tables` (the schema is declared there, once).

Audit entries and checklist submissions are append-only: the ORM refuses to update or
delete them (see :func:`_refuse_change`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, relationship

from cep_engine.store import tables


class Base(DeclarativeBase):
    """Declarative base on the tables' metadata."""

    metadata = tables.metadata


class Person(Base):
    """Someone who holds a role on one or more projects."""

    __table__ = tables.people

    id: Mapped[int]
    email: Mapped[str]
    name: Mapped[str]
    created_at: Mapped[datetime]


class Project(Base):
    """One State Data Center implementation, identified by a key such as ``SDC-042``."""

    __table__ = tables.projects

    id: Mapped[int]
    key: Mapped[str]
    name: Mapped[str]
    agency: Mapped[str]
    phase: Mapped[str]
    held_from: Mapped[str | None]
    version: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    roles: Mapped[list[RoleAssignment]] = relationship(back_populates="project")
    guides: Mapped[list[ReadinessGuide]] = relationship(
        back_populates="project", order_by="ReadinessGuide.id"
    )

    __mapper_args__ = {"version_id_col": tables.projects.c.version}


class RoleAssignment(Base):
    """A person holding a role on a project."""

    __table__ = tables.role_assignments

    id: Mapped[int]
    project_id: Mapped[int]
    person_id: Mapped[int]
    role: Mapped[str]
    assigned_at: Mapped[datetime]

    project: Mapped[Project] = relationship(back_populates="roles")
    person: Mapped[Person] = relationship(lazy="joined")


class ReadinessGuide(Base):
    """The readiness guide of one cut-over stage, and the review state of its checklist."""

    __table__ = tables.readiness_guides

    id: Mapped[int]
    project_id: Mapped[int]
    stage: Mapped[str]
    title: Mapped[str]
    state: Mapped[str]
    version: Mapped[int]
    updated_at: Mapped[datetime]

    project: Mapped[Project] = relationship(back_populates="guides")
    tasks: Mapped[list[ReadinessTask]] = relationship(
        back_populates="guide", order_by="ReadinessTask.number"
    )
    submissions: Mapped[list[ChecklistSubmission]] = relationship(
        back_populates="guide", order_by="ChecklistSubmission.number"
    )

    __mapper_args__ = {"version_id_col": tables.readiness_guides.c.version}


class ReadinessTask(Base):
    """One checklist task: done by CTS, by the customer, or jointly."""

    __table__ = tables.readiness_tasks

    id: Mapped[int]
    guide_id: Mapped[int]
    number: Mapped[int]
    text: Mapped[str]
    party: Mapped[str]
    owner_id: Mapped[int | None]
    due_date: Mapped[date | None]
    done_by_id: Mapped[int | None]
    done_at: Mapped[datetime | None]

    guide: Mapped[ReadinessGuide] = relationship(back_populates="tasks")
    owner: Mapped[Person | None] = relationship(
        foreign_keys=[tables.readiness_tasks.c.owner_id], lazy="joined"
    )
    done_by: Mapped[Person | None] = relationship(
        foreign_keys=[tables.readiness_tasks.c.done_by_id], lazy="joined"
    )


class ChecklistSubmission(Base):
    """One signed submission of a checklist, kept forever with the tasks as they were."""

    __table__ = tables.checklist_submissions

    id: Mapped[int]
    guide_id: Mapped[int]
    number: Mapped[int]
    signer_name: Mapped[str]
    attestation: Mapped[str]
    submitted_by_id: Mapped[int]
    submitted_at: Mapped[datetime]
    tasks: Mapped[list[dict[str, Any]]]

    guide: Mapped[ReadinessGuide] = relationship(back_populates="submissions")
    submitted_by: Mapped[Person] = relationship(lazy="joined")
    review: Mapped[ChecklistReview | None] = relationship(lazy="joined")


class ChecklistReview(Base):
    """The assigned PM's decision on one submission: validated, or returned with a comment."""

    __table__ = tables.checklist_reviews

    id: Mapped[int]
    submission_id: Mapped[int]
    decision: Mapped[str]
    comment: Mapped[str]
    reviewer_id: Mapped[int]
    reviewed_at: Mapped[datetime]

    reviewer: Mapped[Person] = relationship(lazy="joined")


class CustomerSignoff(Base):
    """The agency's sign-off that the implementation is accepted."""

    __table__ = tables.customer_signoffs

    id: Mapped[int]
    project_id: Mapped[int]
    person_id: Mapped[int]
    signer_name: Mapped[str]
    statement: Mapped[str]
    signed_at: Mapped[datetime]


class AuditEntry(Base):
    """One accepted or refused attempt to change something. Append-only."""

    __table__ = tables.audit_log

    id: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str]
    actor_roles: Mapped[str]
    project_id: Mapped[int | None]
    entity_type: Mapped[str]
    entity: Mapped[str]
    trigger: Mapped[str]
    from_state: Mapped[str | None]
    to_state: Mapped[str | None]
    accepted: Mapped[bool]
    guards: Mapped[list[dict[str, Any]]]
    reason: Mapped[str]


def _refuse_change(mapper: Mapper[Any], connection: Any, target: Any) -> None:
    raise RuntimeError(f"{type(target).__name__} rows are append-only")


for _model in (AuditEntry, ChecklistSubmission):
    event.listen(_model, "before_update", _refuse_change)
    event.listen(_model, "before_delete", _refuse_change)


class EscalationPolicySnapshot(Base):
    """An escalation ladder as it was when an issue opened; shared by content digest."""

    __table__ = tables.escalation_policies

    id: Mapped[int]
    digest: Mapped[str]
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Issue(Base):
    """An entry of a project's Issues Log, with its place on the escalation ladder.

    ``stale_since`` is the later of the last activity and the last acknowledgement: the
    sweep compares it with one cutoff instant per (policy, priority, level).
    """

    __table__ = tables.issues

    id: Mapped[int]
    project_id: Mapped[int]
    number: Mapped[int]
    title: Mapped[str]
    description: Mapped[str]
    priority: Mapped[str]
    owner_id: Mapped[int | None]
    status: Mapped[str]
    level: Mapped[str]
    policy_id: Mapped[int]
    opened_at: Mapped[datetime]
    last_activity_at: Mapped[datetime]
    acked_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    stale_since: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    cycle: Mapped[int]
    version: Mapped[int]

    owner: Mapped[Person | None] = relationship(lazy="joined")
    policy: Mapped[EscalationPolicySnapshot] = relationship()

    __mapper_args__ = {"version_id_col": tables.issues.c.version}


class IssueActivity(Base):
    """One line of an issue's history: a note, a status or owner change, an ack, a snooze."""

    __table__ = tables.issue_activity

    id: Mapped[int]
    issue_id: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str]
    kind: Mapped[str]
    text: Mapped[str]
    from_value: Mapped[str | None]
    to_value: Mapped[str | None]


class Escalation(Base):
    """One (issue, level) escalation. The unique constraint makes each fire exactly once.

    ``cycle`` counts the issue's de-escalations and reopenings: after one of those, climbing
    to the same rung again is a new escalation, not a duplicate.
    """

    __table__ = tables.escalations

    id: Mapped[int]
    issue_id: Mapped[int]
    level: Mapped[str]
    cycle: Mapped[int]
    escalated_at: Mapped[datetime]
    stale_since: Mapped[datetime]


class Risk(Base):
    """An entry of the Risk Log, rated for probability and impact (1-5 each)."""

    __table__ = tables.risks

    id: Mapped[int]
    project_id: Mapped[int]
    number: Mapped[int]
    title: Mapped[str]
    probability: Mapped[int]
    impact: Mapped[int]
    score: Mapped[int]
    trigger_text: Mapped[str]
    trigger_date: Mapped[date | None]
    owner_id: Mapped[int | None]
    mitigation: Mapped[str]
    status: Mapped[str]
    issue_id: Mapped[int | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int]

    owner: Mapped[Person | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": tables.risks.c.version}


class ActionItem(Base):
    """An entry of the Action Items Log kept by the client liaison."""

    __table__ = tables.action_items

    id: Mapped[int]
    project_id: Mapped[int]
    number: Mapped[int]
    title: Mapped[str]
    owner_id: Mapped[int | None]
    due_date: Mapped[date | None]
    source: Mapped[str]
    source_ref: Mapped[str | None]
    status: Mapped[str]
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    version: Mapped[int]

    owner: Mapped[Person | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": tables.action_items.c.version}


class OutboxMessage(Base):
    """A notification written in the same transaction as the change that causes it.

    ``idempotency_key`` is unique: the same event can never queue two messages.
    Recipients are named by role and resolved from the project's assignments at send time.
    """

    __table__ = tables.outbox

    id: Mapped[int]
    idempotency_key: Mapped[str]
    kind: Mapped[str]
    project_id: Mapped[int | None]
    to_roles: Mapped[list[str]]
    cc_roles: Mapped[list[str]]
    to_addresses: Mapped[list[str]]
    context: Mapped[dict[str, Any]]
    status: Mapped[str]
    attempts: Mapped[int]
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[str | None]
