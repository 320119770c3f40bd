"""Read side of the Issues Log: the list, and one issue with its history, its escalations
(who was told, when) and its place on the ladder."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cep_engine.clock import BusinessCalendar
from cep_engine.errors import NotFound
from cep_engine.services import _load
from cep_engine.states import ISSUE_MACHINE, LADDER_MACHINE
from cep_engine.states.issue import LADDER, Level
from cep_engine.store.models import Escalation, Issue, IssueActivity, OutboxMessage, Risk

JSON = dict[str, Any]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_issues(session: Session, key: str, status: str | None = None) -> list[JSON]:
    """The project's issues by number; ``status`` filters (``open`` also lists in_progress
    when given as ``active``)."""
    project = _load.project(session, key)
    query = select(Issue).where(Issue.project_id == project.id)
    if status:
        wanted = status.strip().lower()
        statuses = ("open", "in_progress") if wanted == "active" else (wanted,)
        query = query.where(Issue.status.in_(statuses))
    return [issue_row(project.key, i) for i in session.scalars(query.order_by(Issue.number))]


def issue_row(key: str, i: Issue) -> JSON:
    """JSON form of one issue (without history)."""
    return {
        "project": key, "number": i.number, "title": i.title, "priority": i.priority,
        "status": i.status, "level": i.level, "owner": i.owner.email if i.owner else None,
        "opened_at": _iso(i.opened_at), "last_activity_at": _iso(i.last_activity_at),
        "resolved_at": _iso(i.resolved_at),
    }


def show_issue(session: Session, key: str, number: int, *,
               calendar: BusinessCalendar | None = None) -> JSON:
    """One issue with its activity, escalations and ladder position; with ``calendar``,
    also the instant the next rung is due."""
    project = _load.project(session, key)
    issue = session.scalars(
        select(Issue).where(Issue.project_id == project.id, Issue.number == number)
    ).one_or_none()
    if issue is None:
        raise NotFound(f"{project.key} has no issue #{number}; see `cep issue list {project.key}`")
    holders = _load.role_holders(session, project.id)
    risk = session.scalars(select(Risk.number).where(Risk.issue_id == issue.id)).first()
    return {
        **issue_row(project.key, issue), "description": issue.description,
        "risk": f"R-{risk}" if risk is not None else None,
        "triggers": list(ISSUE_MACHINE.available(issue.status)),
        "ladder": _ladder(issue, holders, calendar),
        "escalations": _escalations(session, issue, holders),
        "activity": [
            {"at": _iso(a.at), "actor": a.actor, "kind": a.kind, "text": a.text,
             "from": a.from_value, "to": a.to_value}
            for a in session.scalars(select(IssueActivity).where(IssueActivity.issue_id == issue.id)
                                     .order_by(IssueActivity.id))
        ],
    }


def _people(roles: list[str], holders: list[tuple[str, str]]) -> list[str]:
    return sorted({email for role, email in holders if role in roles})


def _ladder(issue: Issue, holders: list[tuple[str, str]],
            calendar: BusinessCalendar | None) -> JSON:
    steps = issue.policy.body.get(issue.priority, [])
    rung = LADDER.index(Level(issue.level)) if issue.level in LADDER else None
    step = steps[rung] if rung is not None and rung < len(steps) else None
    nxt: JSON | None = None
    if step is not None:
        due = calendar.add(issue.stale_since, step["after_seconds"]) if calendar else None
        if due is not None and issue.snoozed_until is not None:
            due = max(due, issue.snoozed_until)
        nxt = {"level": step["level"], "after": step["after"], "due_at": _iso(due),
               "to": _people(step["to"], holders), "cc": _people(step["cc"], holders)}
    return {
        "level": issue.level, "cycle": issue.cycle, "stale_since": _iso(issue.stale_since),
        "acked_at": _iso(issue.acked_at), "snoozed_until": _iso(issue.snoozed_until),
        "holder_actions": list(LADDER_MACHINE.available(issue.level)),
        "next": nxt,
        "ladder": [{"level": s["level"], "after": s["after"]} for s in steps],
    }


def _escalations(session: Session, issue: Issue, holders: list[tuple[str, str]]) -> list[JSON]:
    rows = session.scalars(select(Escalation).where(Escalation.issue_id == issue.id)
                           .order_by(Escalation.escalated_at, Escalation.id)).all()
    keys = {f"escalation:{issue.id}:{e.level}:{e.cycle}": e for e in rows}
    sent = {m.idempotency_key: m for m in session.scalars(
        select(OutboxMessage).where(OutboxMessage.idempotency_key.in_(list(keys))))}
    out = []
    for k, e in keys.items():
        msg = sent.get(k)
        out.append({
            "level": e.level, "cycle": e.cycle, "escalated_at": _iso(e.escalated_at),
            "idle_since": _iso(e.stale_since),
            "to": _people(msg.to_roles, holders) if msg else [],
            "cc": _people(msg.cc_roles, holders) if msg else [],
            "notice": msg.status if msg else None, "sent_at": _iso(msg.sent_at) if msg else None,
        })
    return out
