"""Use cases of the Risk Log: add, update, monitor, trigger, close, list, show.

Risks are numbered per project and shown as ``R-<number>``; score = probability x impact.
When a risk triggers (``cep risk trigger``, or :func:`trigger_due_risks` once its trigger
date has arrived) the same transaction marks it triggered, opens an issue linked to it, adds
an action item for the risk owner and queues a ``risk_triggered`` notification. A risk
triggers exactly once: the row is locked (PostgreSQL) and its status re-checked, and the
notification's key ``risk:{id}:triggered`` is unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cep_engine.errors import InvalidInput, NotFound
from cep_engine.escalation.policy import EscalationPolicy
from cep_engine.notify.outbox import Kind, enqueue, outbox_row
from cep_engine.roles import Role
from cep_engine.services import _load, _validate, actions, issues
from cep_engine.services._unit import Attempt, attempt
from cep_engine.states import Fired, Priority
from cep_engine.states.action import Source
from cep_engine.states.risk import RISK_KEEPERS, RISK_MACHINE, RiskFacts, RiskStatus, ref
from cep_engine.store.db import Store
from cep_engine.store.models import Project, Risk

JSON = dict[str, Any]
ENGINE_ACTOR = "cep-engine"
UNTRIGGERED = (RiskStatus.IDENTIFIED.value, RiskStatus.MONITORING.value)
PRIORITY_BY_SCORE = ((20, Priority.CRITICAL), (10, Priority.HIGH), (5, Priority.MEDIUM),
                     (0, Priority.LOW))
"""The priority of the issue a triggered risk opens: score 20-25 critical, 10-19 high,
5-9 medium, 1-4 low."""


def rating(value: int, what: str) -> int:
    """A probability or impact: an integer from 1 to 5."""
    if not 1 <= value <= 5:
        raise InvalidInput(f"{what} {value} is out of range; rate it from 1 to 5")
    return value


def issue_priority(score: int) -> Priority:
    """The priority of the issue opened when a risk of ``score`` triggers."""
    return next(p for floor, p in PRIORITY_BY_SCORE if score >= floor)


@dataclass(frozen=True)
class RiskInput:
    """The fields of a new risk, checked."""

    title: str
    probability: int
    impact: int
    trigger_text: str = ""
    trigger_date: date | None = None
    owner: str | None = None
    mitigation: str = ""

    @classmethod
    def checked(cls, title: str, probability: int, impact: int, **rest: Any) -> RiskInput:
        """Validate every field, raising :class:`InvalidInput` on the first bad one."""
        return cls(
            title=_validate.name(title, "risk title"),
            probability=rating(probability, "probability"), impact=rating(impact, "impact"),
            trigger_text=_validate.text(rest.get("trigger_text") or "", "trigger",
                                        required=False),
            trigger_date=rest.get("trigger_date"), owner=rest.get("owner") or None,
            mitigation=_validate.text(rest.get("mitigation") or "", "mitigation",
                                      required=False),
        )


def add_in(ctx: Attempt, project: Project, data: RiskInput) -> Risk:
    """Add a risk inside an existing attempt (used by ``add_risk`` and imports)."""
    number = (ctx.session.scalar(
        select(func.max(Risk.number)).where(Risk.project_id == project.id)) or 0) + 1
    risk = Risk(
        project_id=project.id, number=number, title=data.title,
        probability=data.probability, impact=data.impact,
        score=data.probability * data.impact, trigger_text=data.trigger_text,
        trigger_date=data.trigger_date, mitigation=data.mitigation,
        owner=_load.person(ctx.session, data.owner) if data.owner else None,
        status=RiskStatus.IDENTIFIED.value, created_at=ctx.now, updated_at=ctx.now,
    )
    ctx.session.add(risk)
    ctx.session.flush()
    ctx.about("risk", f"{project.key} {ref(number)}", "add")
    ctx.record(to_state=risk.status, reason=f"score {risk.score}: {data.title}")
    return risk


def add_risk(store: Store, key: str, data: RiskInput, *, actor: str, now: datetime) -> Risk:
    """Add a risk to the Risk Log (assigned PM or senior PM)."""
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _load.project(ctx.session, key)
        ctx.about("risk", f"{project.key} R-new", "add")
        _load.require(RISK_KEEPERS, _load.actor_on(ctx, project), ctx, what="add a risk")
        return add_in(ctx, project, data)


def _load_risk(ctx: Attempt, key: str, number: int,
               trigger: str) -> tuple[Project, Risk, set[Role]]:
    project = _load.project(ctx.session, key)
    risk = ctx.session.scalars(
        select(Risk).where(Risk.project_id == project.id, Risk.number == number)
        .with_for_update(of=Risk)
    ).one_or_none()
    if risk is None:
        raise NotFound(f"{project.key} has no risk {ref(number)}; see `cep risk list "
                       f"{project.key}`")
    ctx.about("risk", f"{project.key} {ref(number)}", trigger, from_state=risk.status)
    return project, risk, set(_load.actor_on(ctx, project))


def _fire(ctx: Attempt, risk: Risk, trigger: str, facts: RiskFacts, roles: set[Role] | None,
          reason: str = "") -> Fired:
    if roles is not None:
        _load.authorize(RISK_MACHINE, trigger, roles, ctx)  # type: ignore[arg-type]
    fired = RISK_MACHINE.fire(risk.status, trigger, facts, entity=ctx.entity)
    risk.status = fired.dest
    risk.updated_at = ctx.now
    ctx.record(fired, reason=reason or ctx.reason)
    return fired


def update_risk(store: Store, key: str, number: int, *, actor: str, now: datetime,
                **changes: Any) -> Risk:
    """Change a risk's title, ratings, trigger, trigger date, owner or mitigation (keepers).

    ``changes`` holds only the fields to change; the score follows the ratings.
    """
    wanted = {k: v for k, v in changes.items() if v is not None}
    if not wanted:
        raise InvalidInput("nothing to change; give at least one field to update")
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        _, risk, roles = _load_risk(ctx, key, number, "update")
        current = RiskInput(risk.title, risk.probability, risk.impact, risk.trigger_text,
                            risk.trigger_date, risk.owner.email if risk.owner else None,
                            risk.mitigation)
        merged = RiskInput.checked(**{**current.__dict__, **wanted})
        _apply(ctx, risk, merged)
        _fire(ctx, risk, "update", RiskFacts(), roles,
              reason="; ".join(f"{k} {v}" for k, v in sorted(wanted.items())))
    return risk


def _apply(ctx: Attempt, risk: Risk, data: RiskInput) -> None:
    risk.title, risk.probability, risk.impact = data.title, data.probability, data.impact
    risk.score = data.probability * data.impact
    risk.trigger_text, risk.trigger_date = data.trigger_text, data.trigger_date
    risk.mitigation = data.mitigation
    risk.owner = _load.person(ctx.session, data.owner) if data.owner else None


def change_status(store: Store, key: str, number: int, trigger: str, *, actor: str,
                  now: datetime, note: str = "") -> Risk:
    """monitor or close (with a reason) a risk (keepers)."""
    text = _validate.text(note, "note", required=False)
    with attempt(store, actor=actor, now=_validate.aware(now), reason=text) as ctx:
        _, risk, roles = _load_risk(ctx, key, number, trigger)
        _fire(ctx, risk, trigger, RiskFacts(text=text), roles)
    return risk


def trigger_risk(store: Store, key: str, number: int, *, actor: str, now: datetime,
                 policy: EscalationPolicy, note: str = "") -> Risk:
    """Fire a risk by hand: it becomes triggered, and an issue and an action item follow."""
    text = _validate.text(note, "note", required=False)
    with attempt(store, actor=actor, now=_validate.aware(now), reason=text) as ctx:
        project, risk, roles = _load_risk(ctx, key, number, "trigger")
        _lock_projects(ctx.session, [project.id])
        _fire(ctx, risk, "trigger", RiskFacts(text=text), roles,
              reason=text or f"fired by {ctx.actor}")
        _on_triggered(ctx, project, risk, policy)
    return risk


def trigger_due_risks(store: Store, *, as_of: datetime, policy: EscalationPolicy) -> list[str]:
    """Trigger every risk whose trigger date has arrived (on or before ``as_of``'s date in
    the policy's time zone); return their names (``SDC-042 R-3``).

    One indexed query finds them; on PostgreSQL they are locked with ``SKIP LOCKED`` so two
    runs at once never trigger the same risk twice.
    """
    today = _validate.aware(as_of).astimezone(policy.business_calendar.tz).date()
    done: list[str] = []
    with attempt(store, actor=ENGINE_ACTOR, now=as_of) as ctx:
        due = ctx.session.scalars(
            select(Risk).where(Risk.status.in_(UNTRIGGERED), Risk.trigger_date <= today)
            .order_by(Risk.id).with_for_update(of=Risk, skip_locked=True)
        ).all()
        _lock_projects(ctx.session, sorted({r.project_id for r in due}))
        for risk in due:
            project = ctx.session.get_one(Project, risk.project_id)
            ctx.about("risk", f"{project.key} {ref(risk.number)}", "trigger",
                      from_state=risk.status, project_id=project.id)
            _fire(ctx, risk, "trigger", RiskFacts(), None,
                  reason=f"trigger date {risk.trigger_date} arrived")
            _on_triggered(ctx, project, risk, policy)
            done.append(f"{project.key} {ref(risk.number)}")
    return done


def _lock_projects(session: Session, ids: list[int]) -> None:
    """Serialise issue and action numbering with other triggers in the same projects."""
    if ids:
        session.execute(select(Project.id).where(Project.id.in_(ids)).order_by(Project.id)
                        .with_for_update())


def _on_triggered(ctx: Attempt, project: Project, risk: Risk, policy: EscalationPolicy) -> None:
    name = ref(risk.number)
    owner = risk.owner.email if risk.owner else None
    details = "\n".join(t for t in (f"Trigger: {risk.trigger_text}" if risk.trigger_text else "",
                                    f"Mitigation: {risk.mitigation}" if risk.mitigation else "")
                        if t)
    issue = issues.open_in(ctx, project, f"Risk {name} triggered: {risk.title}"[:200],
                           issue_priority(risk.score), policy=policy, owner=owner,
                           description=details)
    risk.issue_id = issue.id
    actions.add_in(ctx, project, f"Carry out the response to risk {name}: {risk.title}"[:200],
                   owner=owner, due=None, src=Source.RISK, source_ref=name)
    enqueue(ctx.session, [outbox_row(
        key=f"risk:{risk.id}:triggered", kind=Kind.RISK_TRIGGERED, project_id=project.id,
        now=ctx.now, to_roles=[Role.ASSIGNED_PM.value], cc_roles=[Role.SENIOR_PM.value],
        to_addresses=[owner] if owner else [],
        context={"risk_id": risk.id, "risk_number": risk.number, "risk_title": risk.title,
                 "score": risk.score, "probability": risk.probability, "impact": risk.impact,
                 "trigger_text": risk.trigger_text, "issue_number": issue.number,
                 "actor": ctx.actor, "at": ctx.now.isoformat()},
    )])
