"""Use cases of the Issues Log: open, notes, owner and status changes, and the ladder
actions of a level's holder (acknowledge, snooze, de-escalate)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cep_engine.errors import NotFound
from cep_engine.escalation.policy import EscalationPolicy, snapshot_digest
from cep_engine.roles import Role
from cep_engine.services import _load, _validate
from cep_engine.services._unit import Attempt, attempt
from cep_engine.states import ISSUE_MACHINE, LADDER_MACHINE, IssueFacts, Level, Priority
from cep_engine.store.db import Store
from cep_engine.store.models import (
    EscalationPolicySnapshot,
    Issue,
    IssueActivity,
    Project,
)

OWNER_CHANGERS = frozenset({Role.ASSIGNED_PM, Role.SENIOR_PM, Role.CLIENT_LIAISON})
STATUS_TO_LADDER = {"resolve": "leave", "reopen": "rejoin", "close": "retire"}


def priority(value: str) -> Priority:
    """critical, high, medium or low."""
    return _validate.choice(Priority, value, "priority", plural="priorities")


def policy_snapshot_id(session: Session, policy: EscalationPolicy, now: datetime) -> int:
    """The stored snapshot of ``policy``'s ladders, created once per distinct content."""
    body = policy.snapshot()
    digest = snapshot_digest(body)
    values = {"digest": digest, "body": body, "created_at": now}
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(EscalationPolicySnapshot).values(values).on_conflict_do_nothing(
            index_elements=["digest"])
    )
    return session.scalars(
        select(EscalationPolicySnapshot.id).where(EscalationPolicySnapshot.digest == digest)
    ).one()


def open_in(
    ctx: Attempt, project: Project, title: str, prio: Priority, *, policy: EscalationPolicy,
    owner: str | None = None, description: str = "", opened_at: datetime | None = None,
    last_activity_at: datetime | None = None,
) -> Issue:
    """Open an issue inside an existing attempt (used by ``open_issue``, risks and imports)."""
    opened = opened_at or ctx.now
    last = last_activity_at or opened
    number = (ctx.session.scalar(
        select(func.max(Issue.number)).where(Issue.project_id == project.id)) or 0) + 1
    issue = Issue(
        project_id=project.id, number=number, title=title, description=description,
        priority=prio.value, owner=_load.person(ctx.session, owner) if owner else None,
        status="open", level=Level.TEAM.value,
        policy_id=policy_snapshot_id(ctx.session, policy, ctx.now), opened_at=opened,
        last_activity_at=last, stale_since=last, cycle=0,
    )
    ctx.session.add(issue)
    ctx.session.flush()
    _activity(ctx, issue, "opened", text=title, to_value=prio.value)
    ctx.about("issue", f"{project.key}#{number}", "open")
    ctx.record(to_state="open", reason=f"{prio.value}: {title}")
    return issue


def open_issue(
    store: Store, key: str, title: str, *, priority_name: str, actor: str, now: datetime,
    policy: EscalationPolicy, owner: str | None = None, description: str = "",
) -> Issue:
    """Open an issue in the project's Issues Log (any project member)."""
    heading = _validate.name(title, "issue title")
    body = _validate.text(description, "description", required=False)
    prio = priority(priority_name)
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _load.project(ctx.session, key)
        ctx.about("issue", f"{project.key}#new", "open")
        _load.require(frozenset(Role), _load.actor_on(ctx, project), ctx, what="open an issue")
        return open_in(ctx, project, heading, prio, policy=policy, owner=owner,
                       description=body)


def _load_issue(ctx: Attempt, key: str, number: int, trigger: str) -> tuple[Issue, set[Role]]:
    project = _load.project(ctx.session, key)
    issue = ctx.session.scalars(
        select(Issue).where(Issue.project_id == project.id, Issue.number == number)
    ).one_or_none()
    if issue is None:
        raise NotFound(f"{project.key} has no issue #{number}; see `cep issue list {project.key}`")
    ctx.about("issue", f"{project.key}#{number}", trigger, from_state=issue.status)
    return issue, set(_load.actor_on(ctx, project))


def _activity(ctx: Attempt, issue: Issue, kind: str, *, text: str = "",
              from_value: str | None = None, to_value: str | None = None) -> None:
    ctx.session.add(IssueActivity(issue_id=issue.id, at=ctx.now, actor=ctx.actor, kind=kind,
                                  text=text, from_value=from_value, to_value=to_value))


def _touch(issue: Issue, now: datetime) -> None:
    """Activity restarts the clock for the next level; it never lowers the level."""
    issue.last_activity_at = now
    issue.stale_since = max(now, issue.acked_at or now)


def add_note(store: Store, key: str, number: int, text: str, *, actor: str,
             now: datetime) -> Issue:
    """Add a note to an issue (any project member); restarts the escalation clock."""
    body = _validate.text(text, "note")
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        issue, roles = _load_issue(ctx, key, number, "note")
        _load.require(frozenset(Role), roles, ctx, what="add a note")
        _activity(ctx, issue, "note", text=body)
        _touch(issue, now)
        ctx.record(to_state=issue.status, reason=body[:200])
    return issue


def assign_owner(store: Store, key: str, number: int, owner: str, *, actor: str,
                 now: datetime) -> Issue:
    """Give the issue a new owner (assigned PM, senior PM or client liaison)."""
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        issue, roles = _load_issue(ctx, key, number, "assign")
        _load.require(OWNER_CHANGERS, roles, ctx, what="assign an issue")
        person = _load.person(ctx.session, owner)
        before = issue.owner.email if issue.owner else None
        issue.owner = person
        _activity(ctx, issue, "owner", from_value=before, to_value=person.email)
        _touch(issue, now)
        ctx.record(to_state=issue.status, reason=f"owner {before} -> {person.email}")
    return issue


def change_status(store: Store, key: str, number: int, trigger: str, *, actor: str,
                  now: datetime, note: str = "") -> Issue:
    """start, resolve, close or reopen; resolving leaves the ladder, reopening rejoins it."""
    text = _validate.text(note, "note", required=False)
    with attempt(store, actor=actor, now=_validate.aware(now), reason=text) as ctx:
        issue, roles = _load_issue(ctx, key, number, trigger)
        _load.authorize(ISSUE_MACHINE, trigger, roles, ctx)  # type: ignore[arg-type]
        facts = IssueFacts(level=Level(issue.level), actor_roles=frozenset(roles), text=text)
        fired = ISSUE_MACHINE.fire(issue.status, trigger, facts, entity=ctx.entity)
        issue.status = fired.dest
        ctx.record(fired)
        _activity(ctx, issue, "status", text=text, from_value=fired.source, to_value=fired.dest)
        if trigger in STATUS_TO_LADDER:
            _move_ladder(ctx, issue, STATUS_TO_LADDER[trigger], facts)
        issue.resolved_at = now if fired.dest == "resolved" else issue.resolved_at
        _touch(issue, now)
    return issue


def _move_ladder(ctx: Attempt, issue: Issue, trigger: str, facts: IssueFacts) -> None:
    ctx.trigger, ctx.from_state = trigger, issue.level
    fired = LADDER_MACHINE.fire(issue.level, trigger, facts, entity=ctx.entity)
    if trigger == "rejoin":
        issue.cycle += 1
        issue.acked_at = issue.snoozed_until = None
    issue.level = fired.dest
    ctx.record(fired)


def ladder_action(
    store: Store, key: str, number: int, trigger: str, *, actor: str, now: datetime,
    policy: EscalationPolicy, until: datetime | None = None, note: str = "",
) -> Issue:
    """acknowledge, snooze (until a time, capped by the policy) or deescalate, by the holder
    of the issue's current level."""
    text = _validate.text(note, "note", required=False)
    with attempt(store, actor=actor, now=_validate.aware(now), reason=text) as ctx:
        issue, roles = _load_issue(ctx, key, number, trigger)
        ctx.from_state = issue.level
        _load.authorize(LADDER_MACHINE, trigger, roles, ctx)  # type: ignore[arg-type]
        limit = policy.business_calendar.add(now, policy.snooze_max_seconds)
        facts = IssueFacts(level=Level(issue.level), actor_roles=frozenset(roles), now=now,
                           snooze_until=until, snooze_limit=limit)
        fired = LADDER_MACHINE.fire(issue.level, trigger, facts, entity=ctx.entity)
        _apply_ladder_action(issue, trigger, fired.dest, now, until)
        ctx.record(fired)
        _activity(ctx, issue, trigger, text=text, from_value=fired.source, to_value=fired.dest)
    return issue


def _apply_ladder_action(issue: Issue, trigger: str, dest: str, now: datetime,
                         until: datetime | None) -> None:
    if trigger == "acknowledge":
        issue.acked_at = now
        issue.stale_since = max(now, issue.last_activity_at)
    elif trigger == "snooze":
        issue.snoozed_until = until
    elif trigger == "deescalate":
        issue.level = dest
        issue.cycle += 1
        issue.acked_at = now
        issue.snoozed_until = None
        issue.stale_since = max(now, issue.last_activity_at)
