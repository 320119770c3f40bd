"""Loading and checking what every use case needs: the project, the actor, their roles."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cep_engine.errors import NotFound, PermissionDenied
from cep_engine.roles import Role
from cep_engine.services import _validate
from cep_engine.services._unit import Attempt
from cep_engine.states import MachineTable
from cep_engine.store.models import Person, Project, RoleAssignment


def project(session: Session, key: str) -> Project:
    """The project with ``key``, or :class:`NotFound` with a hint."""
    norm = _validate.project_key(key)
    found = session.scalars(select(Project).where(Project.key == norm)).one_or_none()
    if found is None:
        raise NotFound(f"no project {norm}; see `cep project list` or create it")
    return found


def person(session: Session, email: str) -> Person:
    """The person with ``email``, or :class:`NotFound` with a hint."""
    norm = _validate.email(email)
    found = session.scalars(select(Person).where(Person.email == norm)).one_or_none()
    if found is None:
        raise NotFound(f"no person {norm}; add them with `cep person add {norm} --name NAME`")
    return found


def role_holders(session: Session, project_id: int) -> list[tuple[str, str]]:
    """Every (role, email) pair assigned on the project."""
    rows = session.execute(
        select(RoleAssignment.role, Person.email)
        .join(Person, Person.id == RoleAssignment.person_id)
        .where(RoleAssignment.project_id == project_id)
    )
    return [(r, e) for r, e in rows]


def actor_on(ctx: Attempt, proj: Project) -> frozenset[Role]:
    """Resolve ``ctx.actor`` to a person and their roles on ``proj``; fill in the context."""
    actor = person(ctx.session, ctx.actor)
    ctx.actor = actor.email
    ctx.project_id = proj.id
    holders = role_holders(ctx.session, proj.id)
    roles = frozenset(Role(r) for r, e in holders if e == actor.email)
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
