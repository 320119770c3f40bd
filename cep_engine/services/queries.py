"""Read-side use cases. Each returns plain JSON-ready data for the CLI's tables and --json.

They run Core statements on :mod:`cep_engine.store.tables` through a connection or a
session, never the ORM: a read command starts without importing or mapping it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from cep_engine.services import _validate
from cep_engine.services._facts import phase_facts, project_row
from cep_engine.states import PHASE_MACHINE
from cep_engine.store import tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

    from cep_engine.services._facts import Reader

JSON = dict[str, Any]

_guides, _tasks = tables.readiness_guides, tables.readiness_tasks
_submissions, _reviews = tables.checklist_submissions, tables.checklist_reviews
_people, _roles, _audit = tables.people, tables.role_assignments, tables.audit_log


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def list_projects(db: Reader) -> list[JSON]:
    """Every project, by key."""
    rows = db.execute(select(tables.projects).order_by(tables.projects.c.key))
    return [_project_row(p) for p in rows]


def _project_row(p: Row[Any]) -> JSON:
    return {
        "key": p.key, "name": p.name, "agency": p.agency, "phase": p.phase,
        "held_from": p.held_from, "version": p.version,
        "created_at": _iso(p.created_at), "updated_at": _iso(p.updated_at),
    }


def show_project(db: Reader, key: str) -> JSON:
    """A project with its roles, its guides' review states and what the next advance needs."""
    project = project_row(db, key)
    guides = db.execute(
        select(_guides.c.stage, _guides.c.title, _guides.c.state,
               func.count(_tasks.c.id).label("tasks"),
               func.count(_tasks.c.done_at).label("done"))
        .select_from(_guides.outerjoin(_tasks, _tasks.c.guide_id == _guides.c.id))
        .where(_guides.c.project_id == project.id)
        .group_by(_guides.c.id, _guides.c.stage, _guides.c.title, _guides.c.state)
        .order_by(_guides.c.id)
    )
    facts = phase_facts(db, project)
    gate = [r.as_dict() for r in PHASE_MACHINE.check(project.phase, "advance", facts)]
    return {**_project_row(project), "roles": _roles_of(db, project.id),
            "guides": [dict(g._mapping) for g in guides],
            "next_advance": gate, "triggers": list(PHASE_MACHINE.available(project.phase))}


def list_roles(db: Reader, key: str) -> list[JSON]:
    """The project's role assignments, by role then email."""
    return _roles_of(db, project_row(db, key).id)


def _roles_of(db: Reader, project_id: int) -> list[JSON]:
    rows = db.execute(
        select(_roles.c.role, _people.c.email, _people.c.name, _roles.c.assigned_at)
        .join(_people, _people.c.id == _roles.c.person_id)
        .where(_roles.c.project_id == project_id)
        .order_by(_roles.c.role, _people.c.email)
    )
    return [
        {"role": r, "email": e, "name": n, "assigned_at": _iso(a)} for r, e, n, a in rows
    ]


def show_checklist(db: Reader, key: str, stage_name: str) -> JSON:
    """One guide: its state, its tasks and every submitted version with its review."""
    project = project_row(db, key)
    stage = _validate.stage(stage_name)
    guide = db.execute(
        select(_guides).where(_guides.c.project_id == project.id,
                              _guides.c.stage == stage.value)
    ).one()
    return {
        "project": project.key, "stage": guide.stage, "title": guide.title,
        "state": guide.state,
        "tasks": _tasks_of(db, guide.id),
        "submissions": _submissions_of(db, guide.id),
    }


def _tasks_of(db: Reader, guide_id: int) -> list[JSON]:
    owner, done_by = _people.alias("owner"), _people.alias("done_by")
    rows = db.execute(
        select(_tasks.c.number, _tasks.c.text, _tasks.c.party,
               owner.c.email.label("owner"), _tasks.c.due_date,
               done_by.c.email.label("done_by"), _tasks.c.done_at)
        .select_from(_tasks
                     .outerjoin(owner, owner.c.id == _tasks.c.owner_id)
                     .outerjoin(done_by, done_by.c.id == _tasks.c.done_by_id))
        .where(_tasks.c.guide_id == guide_id)
        .order_by(_tasks.c.number)
    )
    return [
        {"number": t.number, "text": t.text, "party": t.party, "owner": t.owner,
         "due_date": _iso(t.due_date), "done_by": t.done_by, "done_at": _iso(t.done_at)}
        for t in rows
    ]


def _submissions_of(db: Reader, guide_id: int) -> list[JSON]:
    submitter, reviewer = _people.alias("submitter"), _people.alias("reviewer")
    rows = db.execute(
        select(_submissions, submitter.c.email.label("submitted_by"),
               _reviews.c.decision, _reviews.c.comment,
               reviewer.c.email.label("reviewer"), _reviews.c.reviewed_at)
        .select_from(
            _submissions
            .join(submitter, submitter.c.id == _submissions.c.submitted_by_id)
            .outerjoin(_reviews, _reviews.c.submission_id == _submissions.c.id)
            .outerjoin(reviewer, reviewer.c.id == _reviews.c.reviewer_id))
        .where(_submissions.c.guide_id == guide_id)
        .order_by(_submissions.c.number)
    )
    return [
        {"version": s.number, "signer_name": s.signer_name, "attestation": s.attestation,
         "submitted_by": s.submitted_by, "submitted_at": _iso(s.submitted_at),
         "tasks": s.tasks,
         "review": None if s.decision is None else {
             "decision": s.decision, "comment": s.comment,
             "reviewer": s.reviewer, "reviewed_at": _iso(s.reviewed_at),
         }}
        for s in rows
    ]


def history(db: Reader, key: str, *, limit: int | None = None) -> list[JSON]:
    """The project's audit trail, oldest first: accepted changes and refused attempts."""
    project = project_row(db, key)
    query = select(_audit).where(_audit.c.project_id == project.id).order_by(_audit.c.id)
    if limit:
        query = query.limit(limit)
    return [audit_row(a) for a in db.execute(query)]


def audit_row(a: Row[Any]) -> JSON:
    """JSON form of one audit entry."""
    return {
        "id": a.id, "at": _iso(a.at), "actor": a.actor,
        "actor_roles": [r for r in a.actor_roles.split(",") if r],
        "entity_type": a.entity_type, "entity": a.entity, "trigger": a.trigger,
        "from": a.from_state, "to": a.to_state, "accepted": a.accepted,
        "guards": a.guards, "reason": a.reason,
    }
