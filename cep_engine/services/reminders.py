"""Due-soon and overdue reminders for readiness tasks and action items.

An item with a due date gets a ``reminder_due_soon`` notification once ``days_before``
business days before its due date have been reached (or at the first run after that, up to
the due date itself), and a ``reminder_overdue`` notification once its due date has passed
(dates are read in the calendar's time zone). Each fires once per item and due date: the
outbox key names both (``reminder:action:12:2026-11-10:due_soon``), so moving the due date
re-arms the reminders. Two indexed queries per kind find what is due; nothing walks every
item in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, exists, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cep_engine.clock import BusinessCalendar
from cep_engine.errors import InvalidInput
from cep_engine.notify.outbox import Kind, enqueue, outbox_row
from cep_engine.roles import Role
from cep_engine.services import _validate
from cep_engine.store.db import Store
from cep_engine.store.models import (
    ActionItem,
    OutboxMessage,
    Person,
    Project,
    ReadinessGuide,
    ReadinessTask,
)

MAX_HORIZON_DAYS = 366
WHEN = {Kind.REMINDER_DUE_SOON: "due_soon", Kind.REMINDER_OVERDUE: "overdue"}


@dataclass
class ReminderReport:
    """What one run queued."""

    as_of: datetime
    today: date
    horizon: date
    queued: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        count = {w: sum(1 for q in self.queued if q["when"] == w) for w in WHEN.values()}
        return {"as_of": self.as_of.isoformat(), "today": self.today.isoformat(),
                "due_soon_until": self.horizon.isoformat(), **count, "queued": self.queued}


def due_soon_horizon(calendar: BusinessCalendar, today: date, days_before: int) -> date:
    """The latest due date whose reminder day (``days_before`` business days before it)
    is ``today`` or earlier: items due from today up to this date are due soon."""
    if not 0 <= days_before <= 60:
        raise InvalidInput(f"days before {days_before} is out of range; use 0 to 60")
    horizon = today
    for _ in range(MAX_HORIZON_DAYS):
        following = horizon + timedelta(days=1)
        if calendar.business_days_before(following, days_before) > today:
            break
        horizon = following
    return horizon


def reminder_key(item_type: str, item_id: int, due: date, kind: Kind) -> str:
    """The idempotency key of one reminder: per item, due date and kind."""
    return f"reminder:{item_type}:{item_id}:{due.isoformat()}:{WHEN[kind]}"


def _sql_key(item_type: str, id_col: Any, due_col: Any, kind: Kind) -> ColumnElement[str]:
    return (literal(f"reminder:{item_type}:") + cast(id_col, String) + literal(":")
            + cast(due_col, String) + literal(f":{WHEN[kind]}"))


def _not_queued(item_type: str, id_col: Any, due_col: Any, kind: Kind) -> ColumnElement[bool]:
    key = _sql_key(item_type, id_col, due_col, kind)
    return ~exists().where(OutboxMessage.idempotency_key == key)


def _window(due_col: Any, kind: Kind, today: date, horizon: date) -> ColumnElement[bool]:
    if kind is Kind.REMINDER_OVERDUE:
        return and_(due_col.is_not(None), due_col < today)
    return and_(due_col.is_not(None), due_col >= today, due_col <= horizon)


def _tasks(session: Session, kind: Kind, today: date, horizon: date) -> list[dict[str, Any]]:
    t = ReadinessTask
    rows = session.execute(
        select(t.id, t.number, t.text, t.due_date, Person.email, ReadinessGuide.stage,
               Project.id, Project.key)
        .join(ReadinessGuide, ReadinessGuide.id == t.guide_id)
        .join(Project, Project.id == ReadinessGuide.project_id)
        .outerjoin(Person, Person.id == t.owner_id)
        .where(t.done_at.is_(None), _window(t.due_date, kind, today, horizon),
               _not_queued("task", t.id, t.due_date, kind))
        .order_by(t.id)
    )
    return [{"item_type": "task", "label": "readiness task", "id": i,
             "ref": f"{stage} #{n}", "title": text, "due": due, "owner": owner,
             "project_id": pid, "project": key}
            for i, n, text, due, owner, stage, pid, key in rows]


def _actions(session: Session, kind: Kind, today: date, horizon: date) -> list[dict[str, Any]]:
    a = ActionItem
    rows = session.execute(
        select(a.id, a.number, a.title, a.due_date, Person.email, Project.id, Project.key)
        .join(Project, Project.id == a.project_id)
        .outerjoin(Person, Person.id == a.owner_id)
        .where(a.status == "open", _window(a.due_date, kind, today, horizon),
               _not_queued("action", a.id, a.due_date, kind))
        .order_by(a.id)
    )
    return [{"item_type": "action", "label": "action item", "id": i, "ref": f"A-{n}",
             "title": title, "due": due, "owner": owner, "project_id": pid, "project": key}
            for i, n, title, due, owner, pid, key in rows]


def _message(item: dict[str, Any], kind: Kind, now: datetime) -> dict[str, Any]:
    owner = item["owner"]
    liaison = [Role.CLIENT_LIAISON.value]
    return outbox_row(
        key=reminder_key(item["item_type"], item["id"], item["due"], kind), kind=kind,
        project_id=item["project_id"], now=now,
        to_addresses=[owner] if owner else [], to_roles=[] if owner else liaison,
        cc_roles=liaison if owner else [],
        context={"item_type": item["label"], "item_ref": item["ref"],
                 "item_title": item["title"], "due_date": item["due"].isoformat(),
                 "owner": owner or "", "item_id": item["id"]},
    )


def run_reminders(store: Store, *, as_of: datetime, calendar: BusinessCalendar,
                  days_before: int) -> ReminderReport:
    """Queue every due-soon and overdue reminder not queued yet, in one transaction."""
    today = _validate.aware(as_of).astimezone(calendar.tz).date()
    report = ReminderReport(as_of=as_of, today=today,
                            horizon=due_soon_horizon(calendar, today, days_before))
    with store.transaction() as session:
        rows: list[dict[str, Any]] = []
        for kind in WHEN:
            for item in [*_tasks(session, kind, today, report.horizon),
                         *_actions(session, kind, today, report.horizon)]:
                rows.append(_message(item, kind, as_of))
                report.queued.append(
                    {"when": WHEN[kind], "project": item["project"], "item": item["label"],
                     "ref": item["ref"], "title": item["title"],
                     "due_date": item["due"].isoformat(), "owner": item["owner"]})
        enqueue(session, rows)
    return report
