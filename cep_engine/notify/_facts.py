"""What delivery reads before it sends: projects, role holders and escalation ladders.

One reading session, a handful of set-based queries per batch, whatever its size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cep_engine.store.models import (
    Escalation,
    Issue,
    OutboxMessage,
    Person,
    Project,
    RoleAssignment,
)


@dataclass(frozen=True)
class Recipient:
    """A person a message goes to, and the role that made them a recipient."""

    email: str
    name: str
    role: str = ""

    def as_dict(self) -> dict[str, str]:
        """The template's view of a recipient."""
        return {"email": self.email, "name": self.name, "role": self.role}


@dataclass(frozen=True)
class Claimed:
    """An outbox row claimed for this run, detached from any session."""

    id: int
    key: str
    kind: str
    project_id: int | None
    to_roles: tuple[str, ...]
    cc_roles: tuple[str, ...]
    to_addresses: tuple[str, ...]
    context: dict[str, Any]
    attempts: int


@dataclass
class Facts:
    """Projects and role holders of a batch, and the escalation context of its messages."""

    projects: dict[int, dict[str, str]]
    holders: dict[tuple[int, str], list[Recipient]]
    escalations: dict[int, dict[str, Any]]

    def resolve(self, row: Claimed) -> tuple[list[Recipient], list[Recipient], list[str]]:
        """``row``'s To and Cc people, and the roles nobody holds on its project."""
        missing: list[str] = []
        to = self._people(row.project_id, row.to_roles, missing)
        to += [Recipient(a, a) for a in row.to_addresses]
        cc = self._people(row.project_id, row.cc_roles, missing)
        to = _unique(to, set())
        return to, _unique(cc, {r.email for r in to}), missing

    def _people(self, pid: int | None, roles: Iterable[str], missing: list[str]) -> list[Recipient]:
        found: list[Recipient] = []
        for role in roles:
            holders = self.holders.get((pid, role), []) if pid is not None else []
            if not holders:
                missing.append(role)
            found += holders
        return found


def _unique(people: list[Recipient], seen: set[str]) -> list[Recipient]:
    out = []
    for person in people:
        if person.email not in seen:
            seen.add(person.email)
            out.append(person)
    return out


def load(session: Session, rows: Sequence[Claimed], calendar_tz: str) -> Facts:
    """Read everything the batch's templates and recipients need."""
    pids = {r.project_id for r in rows if r.project_id is not None}
    projects = {
        p.id: {"key": p.key, "name": p.name, "agency": p.agency}
        for p in session.scalars(select(Project).where(Project.id.in_(pids)))
    }
    holders: dict[tuple[int, str], list[Recipient]] = defaultdict(list)
    query = (
        select(RoleAssignment.project_id, RoleAssignment.role, Person.email, Person.name)
        .join(Person, Person.id == RoleAssignment.person_id)
        .where(RoleAssignment.project_id.in_(pids))
        .order_by(RoleAssignment.id)
    )
    for pid, role, email, name in session.execute(query):
        holders[(pid, role)].append(Recipient(email, name, role))
    facts = Facts(projects=projects, holders=dict(holders), escalations={})
    facts.escalations = _escalations(session, [r for r in rows if r.kind == "escalation"],
                                     facts, calendar_tz)
    return facts


def issue_id_of(row: Claimed) -> int | None:
    """The issue of an escalation message: ``context.issue_id``, else from its key."""
    value = row.context.get("issue_id")
    if value is None:
        parts = row.key.split(":")
        value = parts[1] if len(parts) > 1 and parts[0] == "escalation" else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _escalations(
    session: Session, rows: Sequence[Claimed], facts: Facts, tz: str
) -> dict[int, dict[str, Any]]:
    ids = {i for r in rows if (i := issue_id_of(r)) is not None}
    if not ids:
        return {}
    issues = {i.id: i for i in session.scalars(select(Issue).where(Issue.id.in_(ids)))}
    steps: dict[int, list[Escalation]] = defaultdict(list)
    for esc in session.scalars(
        select(Escalation).where(Escalation.issue_id.in_(ids))
        .order_by(Escalation.escalated_at, Escalation.id)
    ):
        steps[esc.issue_id].append(esc)
    told = _ladder_roles(session, steps)
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        issue = issues.get(issue_id_of(row) or -1)
        if issue is not None:
            out[row.id] = _escalation_context(row, issue, steps[issue.id], told, facts, tz)
    return out


def _ladder_roles(
    session: Session, steps: dict[int, list[Escalation]]
) -> dict[str, tuple[list[str], list[str]]]:
    keys = []
    for issue_id, escs in steps.items():
        for esc in escs:
            base = f"escalation:{issue_id}:{esc.level}"
            keys += [base, f"{base}:{getattr(esc, 'cycle', 0)}"]
    query = select(OutboxMessage.idempotency_key, OutboxMessage.to_roles, OutboxMessage.cc_roles)
    return {
        key: (list(to), list(cc))
        for key, to, cc in session.execute(query.where(OutboxMessage.idempotency_key.in_(keys)))
    }


def _escalation_context(
    row: Claimed, issue: Issue, steps: list[Escalation],
    told: dict[str, tuple[list[str], list[str]]], facts: Facts, tz: str,
) -> dict[str, Any]:
    level = str(row.context.get("level") or (steps[-1].level if steps else issue.level))
    ladder = []
    for esc in steps:
        base = f"escalation:{issue.id}:{esc.level}"
        to_roles, cc_roles = told.get(f"{base}:{getattr(esc, 'cycle', 0)}",
                                      told.get(base, ([], [])))
        ladder.append({
            "level": esc.level, "at": esc.escalated_at.isoformat(),
            "to": [p.as_dict() for p in facts._people(issue.project_id, to_roles, [])],
            "cc": [p.as_dict() for p in facts._people(issue.project_id, cc_roles, [])],
        })
    this = next((e for e in reversed(steps) if e.level == level), None)
    stale_since = this.stale_since if this else issue.stale_since
    escalated_at = this.escalated_at if this else issue.stale_since
    owner = issue.owner
    return {
        "level": level,
        "issue": {
            "number": issue.number, "title": issue.title, "priority": issue.priority,
            "status": issue.status, "description": issue.description,
            "opened_at": issue.opened_at.isoformat(),
            "owner": {"name": owner.name, "email": owner.email} if owner else None,
        },
        "ladder": ladder,
        "stale_since": stale_since.isoformat(),
        "escalated_at": escalated_at.isoformat(),
        "stale_business_hours": row.context.get("stale_business_hours")
        or business_hours(stale_since, escalated_at, tz),
    }


def business_hours(start: datetime, end: datetime, tz: str) -> str:
    """Working time between two instants on the default business calendar, as text."""
    from cep_engine.clock import BusinessCalendar, format_business_seconds

    calendar = BusinessCalendar(timezone=tz)
    return format_business_seconds(calendar.business_seconds(start, end), calendar.day_seconds)
