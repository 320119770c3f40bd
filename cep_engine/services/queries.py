"""Read-side use cases. Each returns plain JSON-ready data for the CLI's tables and --json."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cep_engine.services import _load
from cep_engine.services.projects import phase_facts
from cep_engine.states import PHASE_MACHINE
from cep_engine.store.models import (
    AuditEntry,
    ChecklistSubmission,
    Person,
    Project,
    ReadinessGuide,
    ReadinessTask,
    RoleAssignment,
)

JSON = dict[str, Any]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def list_projects(session: Session) -> list[JSON]:
    """Every project, by key."""
    rows = session.scalars(select(Project).order_by(Project.key))
    return [_project_row(p) for p in rows]


def _project_row(p: Project) -> JSON:
    return {
        "key": p.key, "name": p.name, "agency": p.agency, "phase": p.phase,
        "held_from": p.held_from, "version": p.version,
        "created_at": _iso(p.created_at), "updated_at": _iso(p.updated_at),
    }


def show_project(session: Session, key: str) -> JSON:
    """A project with its roles, its guides' review states and what the next advance needs."""
    project = _load.project(session, key)
    progress: dict[int, int] = {
        guide_id: done
        for guide_id, done in session.execute(
            select(ReadinessTask.guide_id, func.count(ReadinessTask.done_at))
            .join(ReadinessGuide, ReadinessGuide.id == ReadinessTask.guide_id)
            .where(ReadinessGuide.project_id == project.id)
            .group_by(ReadinessTask.guide_id)
        )
    }
    guides = [
        {"stage": g.stage, "title": g.title, "state": g.state,
         "tasks": len(g.tasks), "done": progress.get(g.id, 0)}
        for g in project.guides
    ]
    facts = phase_facts(session, project)
    gate = [r.as_dict() for r in PHASE_MACHINE.check(project.phase, "advance", facts)]
    return {**_project_row(project), "roles": list_roles(session, key), "guides": guides,
            "next_advance": gate, "triggers": list(PHASE_MACHINE.available(project.phase))}


def list_roles(session: Session, key: str) -> list[JSON]:
    """The project's role assignments, by role then email."""
    project = _load.project(session, key)
    rows = session.execute(
        select(RoleAssignment.role, Person.email, Person.name, RoleAssignment.assigned_at)
        .join(Person, Person.id == RoleAssignment.person_id)
        .where(RoleAssignment.project_id == project.id)
        .order_by(RoleAssignment.role, Person.email)
    )
    return [
        {"role": r, "email": e, "name": n, "assigned_at": _iso(a)} for r, e, n, a in rows
    ]


def show_checklist(session: Session, key: str, stage_name: str) -> JSON:
    """One guide: its state, its tasks and every submitted version with its review."""
    from cep_engine.services.readiness import stage as parse_stage  # imports YAML guides

    project = _load.project(session, key)
    stage = parse_stage(stage_name)
    guide = session.scalars(
        select(ReadinessGuide).where(
            ReadinessGuide.project_id == project.id, ReadinessGuide.stage == stage.value
        )
    ).one()
    return {
        "project": project.key, "stage": guide.stage, "title": guide.title,
        "state": guide.state,
        "tasks": [_task_row(t) for t in guide.tasks],
        "submissions": [_submission_row(s) for s in guide.submissions],
    }


def _task_row(t: ReadinessTask) -> JSON:
    return {
        "number": t.number, "text": t.text, "party": t.party,
        "owner": t.owner.email if t.owner else None,
        "due_date": _iso(t.due_date),
        "done_by": t.done_by.email if t.done_by else None,
        "done_at": _iso(t.done_at),
    }


def _submission_row(s: ChecklistSubmission) -> JSON:
    review = s.review
    return {
        "version": s.number, "signer_name": s.signer_name, "attestation": s.attestation,
        "submitted_by": s.submitted_by.email, "submitted_at": _iso(s.submitted_at),
        "tasks": s.tasks,
        "review": None if review is None else {
            "decision": review.decision, "comment": review.comment,
            "reviewer": review.reviewer.email, "reviewed_at": _iso(review.reviewed_at),
        },
    }


def history(session: Session, key: str, *, limit: int | None = None) -> list[JSON]:
    """The project's audit trail, oldest first: accepted changes and refused attempts."""
    project = _load.project(session, key)
    query = (
        select(AuditEntry).where(AuditEntry.project_id == project.id).order_by(AuditEntry.id)
    )
    if limit:
        query = query.limit(limit)
    return [audit_row(a) for a in session.scalars(query)]


def audit_row(a: AuditEntry) -> JSON:
    """JSON form of one audit entry."""
    return {
        "id": a.id, "at": _iso(a.at), "actor": a.actor,
        "actor_roles": [r for r in a.actor_roles.split(",") if r],
        "entity_type": a.entity_type, "entity": a.entity, "trigger": a.trigger,
        "from": a.from_state, "to": a.to_state, "accepted": a.accepted,
        "guards": a.guards, "reason": a.reason,
    }
