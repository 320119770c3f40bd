"""Use cases of the readiness review: tasks, signed submission, validation or return."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from cep_engine.errors import InvalidInput, NotFound, TransitionRefused
from cep_engine.guides import Party
from cep_engine.notify import events
from cep_engine.notify.outbox import enqueue
from cep_engine.roles import Role
from cep_engine.services import _load, _validate
from cep_engine.services._unit import Attempt, attempt
from cep_engine.states import (
    PHASE_MACHINE,
    READINESS_MACHINE,
    Fired,
    ReadinessFacts,
    ReviewState,
)
from cep_engine.store.db import Store
from cep_engine.store.models import (
    ChecklistReview,
    ChecklistSubmission,
    ReadinessGuide,
    ReadinessTask,
)

EDITABLE = {ReviewState.DRAFT, ReviewState.IN_PROGRESS, ReviewState.RETURNED}
REOPEN_TRIGGER = {ReviewState.DRAFT: "start", ReviewState.RETURNED: "rework"}
stage = _validate.stage
"""A stage name (pre_cutover, cutover or post_cutover, dashes accepted) as a :class:`Stage`."""


def _open_guide(ctx: Attempt, key: str, stage_name: str) -> tuple[ReadinessGuide, set[Role]]:
    project = _load.project(ctx.session, key, share_lock=True)
    the_stage = stage(stage_name)
    guide = ctx.session.scalars(
        select(ReadinessGuide).where(
            ReadinessGuide.project_id == project.id, ReadinessGuide.stage == the_stage.value
        )
    ).one()
    ctx.about("checklist", f"{project.key}/{the_stage.value}", ctx.trigger, from_state=guide.state)
    roles = set(_load.actor_on(ctx, project))
    return guide, roles


def _fire(ctx: Attempt, guide: ReadinessGuide, roles: set[Role], trigger: str,
          facts: ReadinessFacts) -> Fired:
    ctx.trigger = trigger
    ctx.from_state = guide.state
    _load.authorize(READINESS_MACHINE, trigger, roles, ctx)  # type: ignore[arg-type]
    _refuse_when_project_final(ctx, guide)
    fired = READINESS_MACHINE.fire(guide.state, trigger, facts, entity=ctx.entity)
    guide.state = fired.dest
    guide.updated_at = ctx.now
    ctx.record(fired)
    return fired


def _facts(guide: ReadinessGuide, **inputs: str) -> ReadinessFacts:
    return ReadinessFacts(
        task_count=len(guide.tasks),
        open_tasks=tuple(t.number for t in guide.tasks if t.done_at is None),
        **inputs,
    )


def _refuse_when_project_final(ctx: Attempt, guide: ReadinessGuide) -> None:
    """A closed or cancelled project's checklists are a record: nothing changes them."""
    phase = guide.project.phase
    if phase in PHASE_MACHINE.final:
        detail = f"project {guide.project.key} is {phase}, so its checklists can no longer change"
        raise TransitionRefused(
            f"{ctx.entity}: {detail}", entity=ctx.entity, state=guide.state,
            trigger=ctx.trigger, guard="project_open",
            guards=[{"guard": "project_open", "passed": False, "detail": detail}],
        )


def _ensure_editable(ctx: Attempt, guide: ReadinessGuide, roles: set[Role]) -> None:
    """Tasks change only while the project is open and the checklist is being worked on,
    by a project member; reopen it if needed."""
    _load.require(READINESS_MACHINE.allowed_roles("start"), roles, ctx, what=ctx.trigger)
    _refuse_when_project_final(ctx, guide)
    state = ReviewState(guide.state)
    if state not in EDITABLE:
        raise TransitionRefused(
            f"{ctx.entity}: tasks cannot change while the checklist is {state.value}"
            + ("; the assigned PM must return it first" if state is ReviewState.SUBMITTED else ""),
            entity=ctx.entity, state=state.value, trigger=ctx.trigger,
        )
    if state in REOPEN_TRIGGER:
        edit = ctx.trigger
        _fire(ctx, guide, roles, REOPEN_TRIGGER[state], _facts(guide))
        ctx.trigger, ctx.from_state = edit, guide.state


def add_task(
    store: Store, key: str, stage_name: str, text: str, *, actor: str, now: datetime,
    party: str = "joint", owner: str | None = None, due: date | None = None,
) -> ReadinessTask:
    """Add a task to a guide's checklist (reopens a draft or returned checklist)."""
    body = _validate.text(text, "task text")
    try:
        the_party = Party(party.strip().lower())
    except ValueError:
        raise InvalidInput(f"unknown party {party!r}; use cts, customer or joint") from None
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        ctx.trigger = "add_task"
        guide, roles = _open_guide(ctx, key, stage_name)
        owner_person = _load.person(ctx.session, owner) if owner else None
        _ensure_editable(ctx, guide, roles)
        task = ReadinessTask(
            guide=guide, number=len(guide.tasks) + 1, text=body, party=the_party.value,
            owner=owner_person, due_date=due,
        )
        ctx.session.add(task)
        ctx.record(to_state=guide.state, reason=f"task #{task.number}: {body[:80]}")
    return task


def set_task_done(
    store: Store, key: str, stage_name: str, number: int, *, actor: str, now: datetime,
    done: bool = True,
) -> ReadinessTask:
    """Mark task ``number`` done (or not done) by ``actor`` at ``now``."""
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        ctx.trigger = "task_done" if done else "task_undone"
        guide, roles = _open_guide(ctx, key, stage_name)
        task = next((t for t in guide.tasks if t.number == number), None)
        if task is None:
            raise NotFound(f"{ctx.entity} has no task #{number}; see `cep checklist show`")
        if (task.done_at is not None) == done:
            raise InvalidInput(f"task #{number} is already {'done' if done else 'not done'}")
        _ensure_editable(ctx, guide, roles)
        task.done_at = now if done else None
        task.done_by = _load.person(ctx.session, ctx.actor) if done else None
        ctx.record(to_state=guide.state, reason=f"task #{number}")
    return task


def submit(
    store: Store, key: str, stage_name: str, *, signer: str, attestation: str, actor: str,
    now: datetime,
) -> ChecklistSubmission:
    """The implementation coordinator submits the signed checklist once every task is done."""
    signer_name = _validate.text(signer, "signer name", limit=200, required=False)
    attest = _validate.text(attestation, "attestation", required=False)
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        ctx.trigger = "submit"
        guide, roles = _open_guide(ctx, key, stage_name)
        facts = _facts(guide, signer_name=signer_name, attestation=attest)
        _fire(ctx, guide, roles, "submit", facts)
        submission = ChecklistSubmission(
            guide=guide, number=len(guide.submissions) + 1, signer_name=signer_name,
            attestation=attest, submitted_by=_load.person(ctx.session, ctx.actor),
            submitted_at=now, tasks=[_task_snapshot(t) for t in guide.tasks],
        )
        ctx.session.add(submission)
        enqueue(ctx.session, [events.checklist(guide, submission, "submitted",
                                               actor=ctx.actor, now=now)])
    return submission


def _task_snapshot(task: ReadinessTask) -> dict[str, object]:
    return {
        "number": task.number,
        "text": task.text,
        "party": task.party,
        "owner": task.owner.email if task.owner else None,
        "due_date": task.due_date.isoformat() if task.due_date else None,
        "done_by": task.done_by.email if task.done_by else None,
        "done_at": task.done_at.isoformat() if task.done_at else None,
    }


def review(
    store: Store, key: str, stage_name: str, decision: str, *, actor: str, now: datetime,
    comment: str = "",
) -> ChecklistReview:
    """The assigned PM validates readiness or returns the checklist (with a comment)."""
    if decision not in ("validate", "return"):
        raise InvalidInput(f"unknown decision {decision!r}; use validate or return")
    note = _validate.text(comment, "comment", required=False)
    with attempt(store, actor=actor, now=_validate.aware(now), reason=note) as ctx:
        ctx.trigger = decision
        guide, roles = _open_guide(ctx, key, stage_name)
        _fire(ctx, guide, roles, decision, _facts(guide, comment=note))
        result = ChecklistReview(
            submission_id=guide.submissions[-1].id, decision=guide.state, comment=note,
            reviewer=_load.person(ctx.session, ctx.actor), reviewed_at=now,
        )
        ctx.session.add(result)
        enqueue(ctx.session, [events.checklist(guide, guide.submissions[-1], guide.state,
                                               actor=ctx.actor, now=now, comment=note)])
    return result
