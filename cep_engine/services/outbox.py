"""Use cases of the notification outbox: list and show messages, retry dead ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cep_engine.errors import InvalidInput, NotFound, TransitionRefused
from cep_engine.notify.outbox import Status
from cep_engine.services import _validate
from cep_engine.services._unit import attempt
from cep_engine.store.db import Store
from cep_engine.store.models import OutboxMessage, Project

_LIST_COLUMNS = ("id", "status", "kind", "project", "attempts", "next_attempt_at",
                 "sent_at", "idempotency_key", "last_error")


def _row(msg: OutboxMessage, key: str | None) -> dict[str, Any]:
    return {
        "id": msg.id, "status": msg.status, "kind": msg.kind, "project": key,
        "attempts": msg.attempts, "next_attempt_at": msg.next_attempt_at.isoformat(),
        "sent_at": msg.sent_at.isoformat() if msg.sent_at else None,
        "idempotency_key": msg.idempotency_key, "last_error": msg.last_error,
    }


def list_messages(
    session: Session, *, status: str | None = None, project: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Messages, newest first, optionally only one status or one project."""
    query = (select(OutboxMessage, Project.key)
             .outerjoin(Project, Project.id == OutboxMessage.project_id)
             .order_by(OutboxMessage.id.desc()).limit(limit))
    if status is not None:
        if status not in {s.value for s in Status}:
            raise InvalidInput(f"unknown status {status!r}; use pending, sent or dead")
        query = query.where(OutboxMessage.status == status)
    if project is not None:
        query = query.where(Project.key == _validate.project_key(project))
    return [_row(msg, key) for msg, key in session.execute(query)]


def messages_by_id(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The messages ``ids``, by id, as :func:`list_messages` shows them."""
    query = (select(OutboxMessage, Project.key)
             .outerjoin(Project, Project.id == OutboxMessage.project_id)
             .where(OutboxMessage.id.in_(list(ids))).order_by(OutboxMessage.id))
    return [_row(msg, key) for msg, key in session.execute(query)] if ids else []


def show_message(session: Session, message_id: int) -> dict[str, Any]:
    """One message with its roles, addresses, context and delivery record."""
    found = session.execute(
        select(OutboxMessage, Project.key)
        .outerjoin(Project, Project.id == OutboxMessage.project_id)
        .where(OutboxMessage.id == message_id)
    ).one_or_none()
    if found is None:
        raise NotFound(f"no outbox message #{message_id}; see `cep outbox list`")
    msg, key = found
    return {
        **_row(msg, key), "to_roles": msg.to_roles, "cc_roles": msg.cc_roles,
        "to_addresses": msg.to_addresses, "context": msg.context,
        "created_at": msg.created_at.isoformat(), "message_id": msg.message_id,
    }


def retry(store: Store, ids: Sequence[int], *, actor: str, now: datetime) -> list[int]:
    """Make dead (or waiting) messages due now with a fresh attempt count; audited.

    A message already sent is refused: sending it again would be a duplicate.
    """
    if not ids:
        raise InvalidInput("name at least one message id; see `cep outbox list --status dead`")
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        rows = {m.id: m for m in ctx.session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(ids)))}
        for message_id in ids:
            msg = rows.get(message_id)
            if msg is None:
                raise NotFound(f"no outbox message #{message_id}; nothing was changed")
            ctx.about("notification", msg.idempotency_key[:100], "retry",
                      from_state=msg.status, project_id=msg.project_id)
            if msg.status == Status.SENT.value:
                raise TransitionRefused(
                    f"outbox #{message_id} was already sent at {msg.sent_at}; retrying it would "
                    "send a duplicate, so nothing was changed",
                    entity=f"outbox #{message_id}", state=msg.status, trigger="retry",
                )
        for message_id in ids:
            msg = rows[message_id]
            ctx.about("notification", msg.idempotency_key[:100], "retry",
                      from_state=msg.status, project_id=msg.project_id)
            msg.status, msg.attempts, msg.next_attempt_at = Status.PENDING.value, 0, now
            ctx.record(to_state=Status.PENDING.value, reason=f"outbox #{message_id}")
    return list(ids)
