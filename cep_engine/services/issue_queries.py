"""Read side of the Issues Log: the list, and one issue with its history, its escalations
(who was told, when) and its place on the ladder. Core statements only (no ORM)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cep_engine.clock import BusinessCalendar
from cep_engine.errors import NotFound
from cep_engine.services._facts import project_row, role_holders
from cep_engine.states import ISSUE_MACHINE, LADDER_MACHINE
from cep_engine.states.issue import LADDER, Level
from cep_engine.store import tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

    from cep_engine.services._facts import Reader

JSON = dict[str, Any]

_issues, _people, _outbox = tables.issues, tables.people, tables.outbox
_ISSUE_ROWS = (
    select(_issues, _people.c.email.label("owner"),
           tables.escalation_policies.c.body.label("policy"))
    .outerjoin(_people, _people.c.id == _issues.c.owner_id)
    .join(tables.escalation_policies, tables.escalation_policies.c.id == _issues.c.policy_id)
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_issues(db: Reader, key: str, status: str | None = None) -> list[JSON]:
    """The project's issues by number; ``status`` filters (``open`` also lists in_progress
    when given as ``active``)."""
    project = project_row(db, key)
    query = _ISSUE_ROWS.where(_issues.c.project_id == project.id)
    if status:
        wanted = status.strip().lower()
        statuses = tables.OPEN_ISSUE_STATUSES if wanted == "active" else (wanted,)
        query = query.where(_issues.c.status.in_(statuses))
    return [issue_row(project.key, i) for i in db.execute(query.order_by(_issues.c.number))]


def issue_row(key: str, i: Row[Any]) -> JSON:
    """JSON form of one issue (without history)."""
    return {
        "project": key, "number": i.number, "title": i.title, "priority": i.priority,
        "status": i.status, "level": i.level, "owner": i.owner,
        "opened_at": _iso(i.opened_at), "last_activity_at": _iso(i.last_activity_at),
        "resolved_at": _iso(i.resolved_at),
    }


def show_issue(db: Reader, key: str, number: int, *,
               calendar: BusinessCalendar | None = None) -> JSON:
    """One issue with its activity, escalations and ladder position; with ``calendar``,
    also the instant the next rung is due."""
    project = project_row(db, key)
    issue = db.execute(
        _ISSUE_ROWS.where(_issues.c.project_id == project.id, _issues.c.number == number)
    ).one_or_none()
    if issue is None:
        raise NotFound(f"{project.key} has no issue #{number}; see `cep issue list {project.key}`")
    holders = role_holders(db, project.id)
    risk = db.execute(
        select(tables.risks.c.number).where(tables.risks.c.issue_id == issue.id)
    ).scalar()
    return {
        **issue_row(project.key, issue), "description": issue.description,
        "risk": f"R-{risk}" if risk is not None else None,
        "triggers": list(ISSUE_MACHINE.available(issue.status)),
        "ladder": _ladder(issue, holders, calendar),
        "escalations": _escalations(db, issue.id, holders),
        "activity": _activity(db, issue.id),
    }


def _activity(db: Reader, issue_id: int) -> list[JSON]:
    log = tables.issue_activity
    rows = db.execute(select(log).where(log.c.issue_id == issue_id).order_by(log.c.id))
    return [
        {"at": _iso(a.at), "actor": a.actor, "kind": a.kind, "text": a.text,
         "from": a.from_value, "to": a.to_value}
        for a in rows
    ]


def _holders_of(roles: list[str], holders: list[tuple[str, str]]) -> list[str]:
    return sorted({email for role, email in holders if role in roles})


def _ladder(issue: Row[Any], holders: list[tuple[str, str]],
            calendar: BusinessCalendar | None) -> JSON:
    steps = issue.policy.get(issue.priority, [])
    rung = LADDER.index(Level(issue.level)) if issue.level in LADDER else None
    step = steps[rung] if rung is not None and rung < len(steps) else None
    nxt: JSON | None = None
    if step is not None:
        due = calendar.add(issue.stale_since, step["after_seconds"]) if calendar else None
        if due is not None and issue.snoozed_until is not None:
            due = max(due, issue.snoozed_until)
        nxt = {"level": step["level"], "after": step["after"], "due_at": _iso(due),
               "to": _holders_of(step["to"], holders), "cc": _holders_of(step["cc"], holders)}
    return {
        "level": issue.level, "cycle": issue.cycle, "stale_since": _iso(issue.stale_since),
        "acked_at": _iso(issue.acked_at), "snoozed_until": _iso(issue.snoozed_until),
        "holder_actions": list(LADDER_MACHINE.available(issue.level)),
        "next": nxt,
        "ladder": [{"level": s["level"], "after": s["after"]} for s in steps],
    }


def _escalations(db: Reader, issue_id: int, holders: list[tuple[str, str]]) -> list[JSON]:
    esc = tables.escalations
    rows = db.execute(select(esc).where(esc.c.issue_id == issue_id)
                      .order_by(esc.c.escalated_at, esc.c.id)).all()
    keys = {f"escalation:{issue_id}:{e.level}:{e.cycle}": e for e in rows}
    sent = {m.idempotency_key: m for m in db.execute(
        select(_outbox.c.idempotency_key, _outbox.c.to_roles, _outbox.c.cc_roles,
               _outbox.c.status, _outbox.c.sent_at)
        .where(_outbox.c.idempotency_key.in_(list(keys))))}
    out = []
    for k, e in keys.items():
        msg = sent.get(k)
        out.append({
            "level": e.level, "cycle": e.cycle, "escalated_at": _iso(e.escalated_at),
            "idle_since": _iso(e.stale_since),
            "to": _holders_of(msg.to_roles, holders) if msg else [],
            "cc": _holders_of(msg.cc_roles, holders) if msg else [],
            "notice": msg.status if msg else None, "sent_at": _iso(msg.sent_at) if msg else None,
        })
    return out
