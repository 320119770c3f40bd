"""What reads and phase gates share, on Core tables only: the project row by key and the
facts the phase guards read. No ORM here, so the CLI's read commands never import it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, bindparam, literal_column, select, text, union_all
from sqlalchemy.sql.selectable import CompoundSelect

from cep_engine.errors import NotFound
from cep_engine.roles import Role
from cep_engine.services import _validate
from cep_engine.states import Phase, PhaseFacts, ReviewState, Stage
from cep_engine.store import tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Row
    from sqlalchemy.orm import Session

    Reader = Connection | Session
    """Anything that runs a Core statement in a transaction: a connection or a session."""

_PROJECT_ROW = select(tables.projects).where(tables.projects.c.key == bindparam("key"))
_ROLE_HOLDERS = (
    select(tables.role_assignments.c.role, tables.people.c.email)
    .join(tables.people, tables.people.c.id == tables.role_assignments.c.person_id)
    .where(tables.role_assignments.c.project_id == bindparam("project_id"))
)
_GATE_ROWS: CompoundSelect[str, str] = union_all(
    select(literal_column("'role'"), tables.role_assignments.c.role)
    .where(tables.role_assignments.c.project_id == bindparam("project_id")),
    select(literal_column("'validated'"), tables.readiness_guides.c.stage)
    .where(tables.readiness_guides.c.project_id == bindparam("project_id"),
           tables.readiness_guides.c.state == ReviewState.VALIDATED.value),
    select(literal_column("'signoff'"), tables.customer_signoffs.c.signer_name)
    .where(tables.customer_signoffs.c.project_id == bindparam("project_id")),
    select(literal_column("'critical'"), tables.issues.c.status)
    .where(tables.issues.c.project_id == bindparam("project_id"),
           tables.issues.c.priority == "critical", text(f"issues.{tables.OPEN_ISSUE_SQL}")),
)


class PhaseHolder(Protocol):
    """What :func:`phase_facts` reads of a project: a row, a mapped object or a tuple."""

    @property
    def id(self) -> int: ...

    @property
    def held_from(self) -> str | None: ...


def no_project(key: str) -> NotFound:
    """The refusal for an unknown project key, with what to do."""
    return NotFound(f"no project {key}; see `cep project list` or create it")


def project_row(db: Reader, key: str) -> Row[Any]:
    """The ``projects`` row with ``key`` (validated), or :class:`NotFound` with a hint."""
    norm = _validate.project_key(key)
    row = db.execute(_PROJECT_ROW, {"key": norm}).one_or_none()
    if row is None:
        raise no_project(norm)
    return row


def role_holders(db: Reader, project_id: int) -> list[tuple[str, str]]:
    """Every (role, email) pair assigned on the project."""
    return [(role, email) for role, email in db.execute(_ROLE_HOLDERS, {"project_id": project_id})]


def gate_rows(db: Reader, project_id: int) -> dict[str, list[str]]:
    """In one query, what the phase gates read: ``role`` (assigned roles), ``validated``
    (validated readiness stages), ``signoff`` (customer sign-offs, by signer) and
    ``critical`` (open critical issues of the Issues Log, by status)."""
    found: dict[str, list[str]] = {"role": [], "validated": [], "signoff": [], "critical": []}
    for kind, value in db.execute(_GATE_ROWS, {"project_id": project_id}):
        found[kind].append(value)
    return found


def phase_facts(db: Reader, project: PhaseHolder) -> PhaseFacts:
    """Everything the phase guards read of ``project``, from the current transaction."""
    rows = gate_rows(db, project.id)
    return PhaseFacts(
        assigned_roles=frozenset(Role(r) for r in rows["role"]),
        validated_stages=frozenset(Stage(s) for s in rows["validated"]),
        open_critical_issues=len(rows["critical"]),
        customer_signoff=bool(rows["signoff"]),
        held_from=Phase(project.held_from) if project.held_from else None,
    )
