"""Read side of the notification outbox: list and show messages. Core statements only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cep_engine.errors import InvalidInput, NotFound
from cep_engine.notify.outbox import Status
from cep_engine.services import _validate
from cep_engine.store import tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

    from cep_engine.services._facts import Reader

_outbox, _projects = tables.outbox, tables.projects
_MESSAGES = (
    select(_outbox, _projects.c.key.label("project"))
    .outerjoin(_projects, _projects.c.id == _outbox.c.project_id)
)


def _row(msg: Row[Any]) -> dict[str, Any]:
    return {
        "id": msg.id, "status": msg.status, "kind": msg.kind, "project": msg.project,
        "attempts": msg.attempts, "next_attempt_at": msg.next_attempt_at.isoformat(),
        "sent_at": msg.sent_at.isoformat() if msg.sent_at else None,
        "idempotency_key": msg.idempotency_key, "last_error": msg.last_error,
    }


def list_messages(
    db: Reader, *, status: str | None = None, project: str | None = None, limit: int = 50,
) -> list[dict[str, Any]]:
    """Messages, newest first, optionally only one status or one project."""
    query = _MESSAGES.order_by(_outbox.c.id.desc()).limit(limit)
    if status is not None:
        if status not in {s.value for s in Status}:
            raise InvalidInput(f"unknown status {status!r}; use pending, sent or dead")
        query = query.where(_outbox.c.status == status)
    if project is not None:
        query = query.where(_projects.c.key == _validate.project_key(project))
    return [_row(msg) for msg in db.execute(query)]


def messages_by_id(db: Reader, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The messages ``ids``, by id, as :func:`list_messages` shows them."""
    if not ids:
        return []
    query = _MESSAGES.where(_outbox.c.id.in_(list(ids))).order_by(_outbox.c.id)
    return [_row(msg) for msg in db.execute(query)]


def show_message(db: Reader, message_id: int) -> dict[str, Any]:
    """One message with its roles, addresses, context and delivery record."""
    msg = db.execute(_MESSAGES.where(_outbox.c.id == message_id)).one_or_none()
    if msg is None:
        raise NotFound(f"no outbox message #{message_id}; see `cep outbox list`")
    return {
        **_row(msg), "to_roles": msg.to_roles, "cc_roles": msg.cc_roles,
        "to_addresses": msg.to_addresses, "context": msg.context,
        "created_at": msg.created_at.isoformat(), "message_id": msg.message_id,
    }
