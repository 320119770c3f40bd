"""The unit of work every state-changing use case runs in.

An :class:`Attempt` is one database transaction, on one connection: prepared Core statements
run on it directly, and an ORM session bound to it is opened only when a use case asks for
one (a phase transition never does). Accepted changes, their audit rows and
(later) their notifications commit together. A refused attempt rolls the transaction back
and then records one audit row saying who tried what and which rule refused it, so the
trail holds refused attempts too while the data stays exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from cep_engine.errors import ConflictError, PermissionDenied, TransitionRefused
from cep_engine.states import Fired
from cep_engine.store.db import Store
from cep_engine.store.models import AuditEntry
from cep_engine.store.tables import audit_log

_AUDIT_INSERT = insert(audit_log)


@dataclass
class Attempt:
    """Context of one attempt: who acts on what, filled in as the use case learns it."""

    store: Store
    connection: Connection
    now: datetime
    actor: str
    entity_type: str = ""
    entity: str = ""
    trigger: str = ""
    project_id: int | None = None
    actor_roles: tuple[str, ...] = ()
    from_state: str | None = None
    reason: str = ""

    @cached_property
    def session(self) -> Session:
        """An ORM session in this attempt's transaction, opened on first use; what it holds
        is flushed before the transaction commits."""
        return self.store.session_on(self.connection)

    def _flush(self) -> None:
        if "session" in self.__dict__:
            self.session.flush()

    def _close(self) -> None:
        if "session" in self.__dict__:
            self.session.close()

    def about(self, entity_type: str, entity: str, trigger: str, **extra: Any) -> None:
        """Name what is being attempted, for the audit row of a refusal."""
        self.entity_type, self.entity, self.trigger = entity_type, entity, trigger
        for key, value in extra.items():
            setattr(self, key, value)

    def record(
        self, fired: Fired | None = None, *, to_state: str | None = None, **overrides: Any
    ) -> None:
        """Insert the audit row of an accepted change in this transaction.

        The row is written at once with a prepared Core INSERT, not through the ORM flush
        (a third of a phase transition's time).
        """
        values: dict[str, Any] = {
            "at": self.now,
            "actor": self.actor,
            "actor_roles": ",".join(self.actor_roles),
            "project_id": self.project_id,
            "entity_type": self.entity_type,
            "entity": self.entity,
            "trigger": fired.trigger if fired else self.trigger,
            "from_state": fired.source if fired else self.from_state,
            "to_state": fired.dest if fired else to_state,
            "accepted": True,
            "guards": [g.as_dict() for g in fired.guards] if fired else [],
            "reason": self.reason,
        }
        values.update(overrides)
        self.connection.execute(_AUDIT_INSERT, values)

    def refusal(self, exc: PermissionDenied | TransitionRefused) -> AuditEntry:
        """The audit row of a refused attempt (added by :func:`attempt` after rollback)."""
        guards = list(exc.guards) if isinstance(exc, TransitionRefused) else []
        rule = "permission" if isinstance(exc, PermissionDenied) else (exc.guard or "state")
        return AuditEntry(
            at=self.now,
            actor=self.actor,
            actor_roles=",".join(self.actor_roles),
            project_id=self.project_id,
            entity_type=self.entity_type,
            entity=self.entity,
            trigger=self.trigger,
            from_state=self.from_state,
            to_state=None,
            accepted=False,
            guards=guards,
            reason=f"refused ({rule}): {exc.message}",
        )


@contextmanager
def attempt(store: Store, *, actor: str, now: datetime, reason: str = "") -> Iterator[Attempt]:
    """Run one use case in one transaction; audit refusals; turn lost races into conflicts."""
    ctx: Attempt | None = None
    try:
        with store.begin() as conn:
            ctx = Attempt(store=store, connection=conn, now=now, actor=actor, reason=reason)
            try:
                yield ctx
                ctx._flush()
            finally:
                ctx._close()
    except (PermissionDenied, TransitionRefused) as exc:
        if ctx is not None and ctx.entity:
            with store.transaction() as session:
                session.add(ctx.refusal(exc))
        raise
    except StaleDataError:
        what = ctx.entity if ctx and ctx.entity else "the record"
        raise ConflictError(
            f"{what} was changed by someone else while you worked; nothing was saved. "
            "Look at it again and retry"
        ) from None
    except IntegrityError as exc:
        what = ctx.entity if ctx and ctx.entity else "the record"
        raise ConflictError(
            f"{what}: the change collides with one saved at the same time "
            f"({type(exc.orig).__name__}); nothing was saved. Retry"
        ) from None
