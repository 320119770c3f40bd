"""Loading and checking what every use case needs: the project, the actor, their roles.

The statements are built once, with bound parameters: building a statement and its cache
key costs more than running it on SQLite, and these run in every use case.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from cep_engine.errors import InvalidInput, NotFound, PermissionDenied
from cep_engine.roles import Role
from cep_engine.services import _validate
from cep_engine.services._facts import no_project
from cep_engine.services._unit import Attempt
from cep_engine.states import MachineTable
from cep_engine.store import tables
from cep_engine.store.models import Person, Project

_PROJECT_BY_KEY = select(Project).where(Project.key == bindparam("key"))
_PROJECTS, _PEOPLE, _ROLES = tables.projects, tables.people, tables.role_assignments
_PROJECT_AND_ACTOR = (
    select(
        _PROJECTS.c.id, _PROJECTS.c.key, _PROJECTS.c.phase, _PROJECTS.c.held_from,
        _PROJECTS.c.version, _PEOPLE.c.email, _ROLES.c.role,
    )
    .select_from(
        _PROJECTS
        .outerjoin(_PEOPLE, _PEOPLE.c.email == bindparam("email"))
        .outerjoin(_ROLES, and_(_ROLES.c.project_id == _PROJECTS.c.id,
                                _ROLES.c.person_id == _PEOPLE.c.id))
    )
    .where(_PROJECTS.c.key == bindparam("key"))
)
_PERSON_BY_EMAIL = select(Person).where(Person.email == bindparam("email"))
_ACTOR_ROLES = (
    select(_PEOPLE.c.email, _ROLES.c.role)
    .select_from(_PEOPLE.outerjoin(_ROLES, and_(
        _ROLES.c.person_id == _PEOPLE.c.id, _ROLES.c.project_id == bindparam("project_id"),
    )))
    .where(_PEOPLE.c.email == bindparam("email"))
)
_email = lru_cache(maxsize=1024)(_validate.email)
"""``_validate.email``, remembered: actors repeat, and the check costs ~0.1 ms (errors are
raised every time, never cached)."""


class ProjectState(NamedTuple):
    """What a phase transition reads of a project: a row, not a mapped object."""

    id: int
    key: str
    phase: str
    held_from: str | None
    version: int


def project(session: Session, key: str, *, share_lock: bool = False) -> Project:
    """The project with ``key``, or :class:`NotFound` with a hint.

    ``share_lock`` holds the row (``FOR SHARE`` on PostgreSQL; SQLite's write transaction
    already serializes) until the change commits, so a phase change cannot slip in between
    reading the phase and committing a change that depends on it.
    """
    norm = _validate.project_key(key)
    query = _PROJECT_BY_KEY.with_for_update(read=True) if share_lock else _PROJECT_BY_KEY
    found = session.scalars(query, {"key": norm}).one_or_none()
    if found is None:
        raise no_project(norm)
    return found


def project_and_actor(ctx: Attempt, key: str) -> tuple[ProjectState, frozenset[Role]]:
    """The project with ``key`` as a row, and ``ctx.actor``'s roles on it, in one prepared
    query (project, person, their assignments); fills in the context like :func:`actor_on`.

    Raises like :func:`project` then :func:`actor_on`: a missing project is reported before
    a malformed or unknown actor.
    """
    norm = _validate.project_key(key)
    email: str | None = None
    try:
        email = _email(ctx.actor)
    except InvalidInput as exc:
        bad_actor: InvalidInput | None = exc
    else:
        bad_actor = None
    rows = ctx.connection.execute(_PROJECT_AND_ACTOR, {"key": norm, "email": email}).all()
    if not rows:
        raise no_project(norm)
    if bad_actor is not None:
        raise bad_actor
    project = ProjectState(*rows[0][:5])
    if rows[0].email is None:
        raise _no_person(str(email))
    ctx.actor, ctx.project_id = rows[0].email, project.id
    roles = frozenset(Role(r) for r in (row.role for row in rows) if r is not None)
    ctx.actor_roles = tuple(sorted(roles))
    return project, roles


def person(session: Session, email: str) -> Person:
    """The person with ``email``, or :class:`NotFound` with a hint."""
    norm = _email(email)
    found = session.scalars(_PERSON_BY_EMAIL, {"email": norm}).one_or_none()
    if found is None:
        raise _no_person(norm)
    return found


def _no_person(email: str) -> NotFound:
    return NotFound(f"no person {email}; add them with `cep person add {email} --name NAME`")


def actor_on(ctx: Attempt, proj: Project | ProjectState) -> frozenset[Role]:
    """Resolve ``ctx.actor`` to a person and their roles on ``proj``; fill in the context.

    One query: the person, left-joined to their assignments on the project.
    """
    email = _email(ctx.actor)
    rows = ctx.connection.execute(_ACTOR_ROLES, {"email": email, "project_id": proj.id}).all()
    if not rows:
        raise _no_person(email)
    ctx.actor = rows[0][0]
    ctx.project_id = proj.id
    roles = frozenset(Role(r) for _, r in rows if r is not None)
    ctx.actor_roles = tuple(sorted(roles))
    return roles


def authorize(
    table: MachineTable[object], trigger: str, roles: Iterable[Role], ctx: Attempt
) -> None:
    """Raise :class:`PermissionDenied` unless one of ``roles`` may fire ``trigger``."""
    allowed = table.allowed_roles(trigger)
    if not allowed:
        return
    require(allowed, roles, ctx, what=trigger)


def require(allowed: frozenset[Role], roles: Iterable[Role], ctx: Attempt, *, what: str) -> None:
    """Raise :class:`PermissionDenied` unless ``roles`` meets ``allowed``."""
    if allowed & set(roles):
        return
    held = ", ".join(ctx.actor_roles) or "no role"
    needed = " or ".join(sorted(allowed))
    raise PermissionDenied(
        f"{ctx.actor} holds {held} on {ctx.entity.split('/')[0]}; {what} needs {needed}",
        entity=ctx.entity,
        trigger=what,
        allowed=sorted(allowed),
    )
