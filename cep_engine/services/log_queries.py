"""Read side of the Risk Log and the Action Items Log. Core statements only (no ORM)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cep_engine.errors import NotFound
from cep_engine.services._facts import project_row
from cep_engine.states.action import Source
from cep_engine.states.action import ref as action_ref
from cep_engine.states.risk import RISK_MACHINE
from cep_engine.states.risk import ref as risk_ref
from cep_engine.store import tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

    from cep_engine.services._facts import Reader

JSON = dict[str, Any]

_risks, _items, _people = tables.risks, tables.action_items, tables.people
_RISK_ROWS = (
    select(_risks, _people.c.email.label("owner"), tables.issues.c.number.label("issue"))
    .outerjoin(_people, _people.c.id == _risks.c.owner_id)
    .outerjoin(tables.issues, tables.issues.c.id == _risks.c.issue_id)
)
_ACTION_ROWS = (
    select(_items, _people.c.email.label("owner"))
    .outerjoin(_people, _people.c.id == _items.c.owner_id)
)


def list_risks(db: Reader, key: str, status: str | None = None) -> list[JSON]:
    """The project's risks, highest score first (then by number)."""
    project = project_row(db, key)
    query = _RISK_ROWS.where(_risks.c.project_id == project.id)
    if status:
        query = query.where(_risks.c.status == status.strip().lower())
    rows = db.execute(query.order_by(_risks.c.score.desc(), _risks.c.number))
    return [risk_row(project.key, r) for r in rows]


def risk_row(key: str, r: Row[Any]) -> JSON:
    """JSON form of one risk."""
    return {
        "project": key, "number": r.number, "ref": risk_ref(r.number), "title": r.title,
        "probability": r.probability, "impact": r.impact, "score": r.score,
        "trigger": r.trigger_text,
        "trigger_date": r.trigger_date.isoformat() if r.trigger_date else None,
        "owner": r.owner, "mitigation": r.mitigation,
        "status": r.status,
        "issue": r.issue,
        "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat(),
    }


def show_risk(db: Reader, key: str, number: int) -> JSON:
    """One risk, with the issue it opened and its action items."""
    project = project_row(db, key)
    risk = db.execute(
        _RISK_ROWS.where(_risks.c.project_id == project.id, _risks.c.number == number)
    ).one_or_none()
    if risk is None:
        raise NotFound(f"{project.key} has no risk {risk_ref(number)}; see `cep risk list "
                       f"{project.key}`")
    items = db.execute(
        _ACTION_ROWS.where(_items.c.project_id == project.id,
                           _items.c.source == Source.RISK.value,
                           _items.c.source_ref == risk_ref(number))
        .order_by(_items.c.number))
    return {**risk_row(project.key, risk),
            "actions": [action_row(project.key, a) for a in items],
            "triggers": list(RISK_MACHINE.available(risk.status))}


def list_actions(db: Reader, key: str, status: str | None = None) -> list[JSON]:
    """The project's action items by due date (undated last), then number."""
    project = project_row(db, key)
    query = _ACTION_ROWS.where(_items.c.project_id == project.id)
    if status:
        query = query.where(_items.c.status == status.strip().lower())
    query = query.order_by(_items.c.due_date.is_(None), _items.c.due_date, _items.c.number)
    return [action_row(project.key, a) for a in db.execute(query)]


def action_row(key: str, a: Row[Any]) -> JSON:
    """JSON form of one action item."""
    return {
        "project": key, "number": a.number, "ref": action_ref(a.number), "title": a.title,
        "owner": a.owner,
        "due_date": a.due_date.isoformat() if a.due_date else None,
        "source": a.source, "source_ref": a.source_ref, "status": a.status,
        "created_at": a.created_at.isoformat(),
        "done_at": a.done_at.isoformat() if a.done_at else None,
    }
