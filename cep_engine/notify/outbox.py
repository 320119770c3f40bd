"""The transactional outbox: notifications are queued in the transaction of their cause.

A use case calls :func:`enqueue` with the session it is changing data in, so the message
commits or rolls back with the change. The idempotency key is unique: queueing the same
event twice (a re-run sweep, a retried flow) leaves exactly one message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cep_engine.store.models import OutboxMessage


class Kind(StrEnum):
    """What a notification is about; each kind has its own template."""

    ESCALATION = "escalation"
    CHECKLIST_SUBMITTED = "checklist_submitted"
    CHECKLIST_RETURNED = "checklist_returned"
    CHECKLIST_VALIDATED = "checklist_validated"
    PHASE_CHANGED = "phase_changed"
    REMINDER_DUE_SOON = "reminder_due_soon"
    REMINDER_OVERDUE = "reminder_overdue"
    RISK_TRIGGERED = "risk_triggered"


class Status(StrEnum):
    """Delivery state of an outbox message."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


def outbox_row(
    *,
    key: str,
    kind: Kind,
    project_id: int | None,
    context: dict[str, Any],
    now: datetime,
    to_roles: Sequence[str] = (),
    cc_roles: Sequence[str] = (),
    to_addresses: Sequence[str] = (),
) -> dict[str, Any]:
    """Column values of one pending message, for :func:`enqueue` or a bulk insert."""
    return {
        "idempotency_key": key,
        "kind": kind.value,
        "project_id": project_id,
        "to_roles": list(to_roles),
        "cc_roles": list(cc_roles),
        "to_addresses": list(to_addresses),
        "context": context,
        "status": Status.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def enqueue(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Queue ``rows`` (from :func:`outbox_row`) in ``session``'s transaction.

    A row whose idempotency key is already queued is skipped, never duplicated.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = pg_insert(OutboxMessage).on_conflict_do_nothing(index_elements=["idempotency_key"])
    elif dialect == "sqlite":
        stmt = sqlite_insert(OutboxMessage).on_conflict_do_nothing(
            index_elements=["idempotency_key"]
        )
    else:
        stmt = insert(OutboxMessage)
    session.execute(stmt, list(rows))
