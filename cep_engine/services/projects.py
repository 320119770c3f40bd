"""Use cases for projects, people, roles, phase transitions and the customer sign-off."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from cep_engine.errors import InvalidInput, TransitionRefused
from cep_engine.notify import events
from cep_engine.notify.outbox import enqueue
from cep_engine.roles import ROLE_ADMINS, Role
from cep_engine.services import _load, _validate
from cep_engine.services._facts import phase_facts, role_holders
from cep_engine.services._load import ProjectState
from cep_engine.services._unit import Attempt, attempt
from cep_engine.states import PHASE_MACHINE, Fired, Phase, ReviewState, Stage
from cep_engine.store import tables
from cep_engine.store.db import Store
from cep_engine.store.models import (
    CustomerSignoff,
    Person,
    Project,
    ReadinessGuide,
    ReadinessTask,
    RoleAssignment,
)

if TYPE_CHECKING:
    from cep_engine.guides import GuideTemplate


def add_person(store: Store, email: str, name: str, *, now: datetime) -> Person:
    """Register a person; their email address is validated and must be new."""
    address, full_name = _validate.email(email), _validate.name(name)
    with store.transaction() as session:
        if session.scalar(select(exists().where(Person.email == address))):
            raise InvalidInput(f"{address} is already registered")
        person = Person(email=address, name=full_name, created_at=_validate.aware(now))
        session.add(person)
    return person


def create_project(
    store: Store,
    key: str,
    name: str,
    agency: str,
    *,
    actor: str,
    guides: Mapping[Stage, GuideTemplate],
    now: datetime,
) -> Project:
    """Create a project in initiation with its three readiness guides seeded from templates."""
    norm = _validate.project_key(key)
    title, agency_name = _validate.name(name, "project name"), _validate.name(agency, "agency")
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        ctx.actor = _load.person(ctx.session, actor).email
        if ctx.session.scalar(select(exists().where(Project.key == norm))):
            raise InvalidInput(f"project {norm} already exists; pick another key")
        project = Project(
            key=norm, name=title, agency=agency_name, phase=Phase.INITIATION.value,
            created_at=now, updated_at=now,
        )
        ctx.session.add(project)
        ctx.session.flush()
        _seed_guides(ctx.session, project, guides, now)
        ctx.about("project", norm, "create", project_id=project.id)
        ctx.record(to_state=Phase.INITIATION.value)
    return project


def _seed_guides(
    session: Session, project: Project, guides: Mapping[Stage, GuideTemplate], now: datetime
) -> None:
    from cep_engine.guides import GuideTemplate  # yaml and a pydantic model: not for reads

    for stage in Stage:
        template = guides.get(stage) or GuideTemplate(title=stage.value)
        guide = ReadinessGuide(
            project=project, stage=stage.value, title=template.title,
            state=ReviewState.DRAFT.value, updated_at=now,
        )
        session.add(guide)
        for number, task in enumerate(template.tasks, start=1):
            session.add(
                ReadinessTask(guide=guide, number=number, text=task.text, party=task.party.value)
            )


def assign_role(
    store: Store, key: str, role: str, email: str, *, actor: str, now: datetime,
    name: str | None = None,
) -> RoleAssignment:
    """Give ``email`` a role on the project, registering the person when ``name`` is given.

    Only the project's assigned PM, senior PM or client liaison may assign roles; while the
    project has none of them, anyone registered may (that is how a project gets its first).
    """
    the_role, address = _validate.role(role), _validate.email(email)
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _load.project(ctx.session, key)
        ctx.about("role", f"{project.key}/{the_role.value}", "assign_role")
        roles = _load.actor_on(ctx, project)
        holders = role_holders(ctx.connection, project.id)
        if any(Role(r) in ROLE_ADMINS for r, _ in holders):
            _load.require(ROLE_ADMINS, roles, ctx, what="assign_role")
        if (the_role.value, address) in holders:
            raise InvalidInput(f"{address} already holds {the_role.value} on {project.key}")
        person = _person_or_new(ctx.session, address, name, now)
        assignment = RoleAssignment(
            project_id=project.id, person=person, role=the_role.value, assigned_at=now
        )
        ctx.session.add(assignment)
        ctx.record(to_state=address)
    return assignment


def _person_or_new(session: Session, address: str, name: str | None, now: datetime) -> Person:
    found = session.scalars(select(Person).where(Person.email == address)).one_or_none()
    if found is not None:
        return found
    if not name:
        return _load.person(session, address)
    person = Person(email=address, name=_validate.name(name), created_at=now)
    session.add(person)
    return person


_PROJECTS = tables.projects
_SAVE_PHASE = (
    update(_PROJECTS)
    .where(_PROJECTS.c.id == bindparam("pid"), _PROJECTS.c.version == bindparam("seen"))
    .values(phase=bindparam("phase"), held_from=bindparam("held"),
            version=bindparam("seen") + 1, updated_at=bindparam("now"))
)


def fire_phase(
    store: Store, key: str, trigger: str, *, actor: str, now: datetime, reason: str = ""
) -> Fired:
    """Fire a phase trigger (advance, hold, resume, cancel) as ``actor``.

    Checks the actor's roles, then the machine's guards; writes the new phase, the audit row
    and bumps the version in one transaction. A refusal is audited and changes nothing else.
    """
    note = _validate.text(reason, "reason", required=False)
    with attempt(store, actor=actor, now=_validate.aware(now), reason=note) as ctx:
        project, roles = _load.project_and_actor(ctx, key)
        ctx.about("project", project.key, trigger, from_state=project.phase)
        _load.authorize(PHASE_MACHINE, trigger, roles, ctx)  # type: ignore[arg-type]
        facts = phase_facts(ctx.connection, project)
        fired = PHASE_MACHINE.fire(project.phase, trigger, facts, entity=project.key)
        saved = _save_phase(ctx, project, fired, now)
        ctx.record(fired)
        enqueue(ctx.connection, [events.phase_changed(saved, fired, actor=ctx.actor, now=now,
                                                   reason=note)])
    return fired


def _save_phase(ctx: Attempt, project: ProjectState, fired: Fired, now: datetime) -> ProjectState:
    """Write the new phase with one prepared ``UPDATE ... WHERE version = <the version read>``.

    Optimistic locking: when another transaction changed the project since it was read, no
    row matches and :class:`StaleDataError` is raised (the attempt turns it into a
    ConflictError and nothing is saved).
    """
    held = fired.source if fired.dest == Phase.ON_HOLD else None
    done = ctx.connection.execute(_SAVE_PHASE, {
        "pid": project.id, "seen": project.version, "phase": fired.dest, "held": held,
        "now": now,
    })
    if done.rowcount != 1:
        raise StaleDataError(f"project {project.key} is no longer at version {project.version}")
    return project._replace(phase=fired.dest, held_from=held, version=project.version + 1)


def record_signoff(
    store: Store, key: str, signer_name: str, statement: str, *, actor: str, now: datetime
) -> CustomerSignoff:
    """Record the customer's sign-off: by the implementation coordinator, in closing."""
    signer = _validate.name(signer_name, "signer name")
    text = _validate.text(statement, "sign-off statement")
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _load.project(ctx.session, key)
        ctx.about("signoff", project.key, "signoff", from_state=project.phase)
        roles = _load.actor_on(ctx, project)
        _load.require(frozenset({Role.IMPLEMENTATION_COORDINATOR}), roles, ctx, what="signoff")
        _check_signoff_allowed(ctx.session, project)
        person = _load.person(ctx.session, ctx.actor)
        signoff = CustomerSignoff(
            project_id=project.id, person_id=person.id, signer_name=signer,
            statement=text, signed_at=now,
        )
        ctx.session.add(signoff)
        ctx.record(to_state="signed")
    return signoff


def _check_signoff_allowed(session: Session, project: Project) -> None:
    already = session.scalar(select(exists().where(CustomerSignoff.project_id == project.id)))
    problem = None
    if project.phase != Phase.CLOSING:
        problem = f"sign-off is recorded in the closing phase; {project.key} is in {project.phase}"
    elif already:
        problem = "the customer sign-off is already recorded"
    if problem:
        raise TransitionRefused(
            f"{project.key}: {problem}", entity=project.key, state=project.phase,
            trigger="signoff",
        )
