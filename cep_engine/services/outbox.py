"""Use cases of the notification outbox: list and show messages, retry dead ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from cep_engine.errors import InvalidInput, NotFound, TransitionRefused
from cep_engine.notify.outbox import Status
from cep_engine.services import _validate
from cep_engine.services._unit import attempt
from cep_engine.store.db import Store
from cep_engine.store.models import OutboxMessage


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
