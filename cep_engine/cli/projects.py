"""``cep project``, ``cep person``, ``cep role`` and ``cep phase``."""

from __future__ import annotations

from typing import Annotated

import typer

from cep_engine.cli._common import Actor, AsJson, Key, Local, rt

project_app = typer.Typer(help="Create, list and show projects.", no_args_is_help=True)
person_app = typer.Typer(help="Register people.", no_args_is_help=True)
role_app = typer.Typer(help="Assign and list project roles.", no_args_is_help=True)
phase_app = typer.Typer(
    help="Move a project through its phases (advance, hold, resume, cancel).",
    no_args_is_help=True,
)
Reason = Annotated[str, typer.Option(help="Why; kept in the audit trail.")]


@person_app.command("add")
def person_add(
    ctx: typer.Context, email: str,
    name: Annotated[str, typer.Option(help="Full name.")],
) -> None:
    """Register a person by email address."""
    from cep_engine.cli._runtime import done, now
    from cep_engine.services import projects as svc

    person = svc.add_person(rt(ctx).store(), email, name, now=now())
    done(f"registered {person.name} <{person.email}>")


@project_app.command("create")
def project_create(
    ctx: typer.Context, key: Key, actor: Actor,
    name: Annotated[str, typer.Option(help="Project name.")],
    agency: Annotated[str, typer.Option(help="Customer agency.")],
) -> None:
    """Create a project in initiation, with readiness guides from config/readiness/."""
    from cep_engine.cli._runtime import done, now
    from cep_engine.guides import load_guides
    from cep_engine.services import projects as svc

    runtime = rt(ctx)
    guides = load_guides(runtime.settings.config_dir)
    project = svc.create_project(
        runtime.store(), key, name, agency, actor=actor, guides=guides, now=now()
    )
    done(f"created {project.key} '{project.name}' for {project.agency}, phase initiation")


@project_app.command("list")
def project_list(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every project with its phase."""
    from cep_engine.cli import _render
    from cep_engine.cli._runtime import show
    from cep_engine.services import queries

    with rt(ctx).store().connect() as conn:
        rows = queries.list_projects(conn)
    show(rows, as_json, _render.projects)


@project_app.command("show")
def project_show(ctx: typer.Context, key: Key, as_json: AsJson = False) -> None:
    """A project: phase, roles, readiness guides and what the next advance needs."""
    from cep_engine.cli import _render
    from cep_engine.cli._runtime import show
    from cep_engine.services import queries

    with rt(ctx).store().connect() as conn:
        data = queries.show_project(conn, key)
    show(data, as_json, _render.project)


@role_app.command("assign")
def role_assign(
    ctx: typer.Context, key: Key,
    role: Annotated[str, typer.Argument(help="Role, e.g. assigned_pm.")],
    email: Annotated[str, typer.Argument(help="Email of the person.")],
    actor: Actor,
    name: Annotated[
        str | None, typer.Option(help="Registers the person first when they are new.")
    ] = None,
) -> None:
    """Give a person a role on a project."""
    from cep_engine.cli._runtime import done, now
    from cep_engine.services import projects as svc

    assignment = svc.assign_role(
        rt(ctx).store(), key, role, email, actor=actor, now=now(), name=name
    )
    done(f"{key.upper()}: {assignment.person.email} is {assignment.role}")


@role_app.command("list")
def role_list(ctx: typer.Context, key: Key, as_json: AsJson = False) -> None:
    """Who holds which role on a project."""
    from cep_engine.cli import _render
    from cep_engine.cli._runtime import show
    from cep_engine.services import queries

    with rt(ctx).store().connect() as conn:
        rows = queries.list_roles(conn, key)
    show(rows, as_json, _render.roles)


def _fire(ctx: typer.Context, key: str, trigger: str, actor: str, reason: str,
          local: bool = False) -> None:
    from cep_engine.cli import _dispatch
    from cep_engine.cli._runtime import done

    out, run = _dispatch.phase(rt(ctx), key, trigger, actor=actor, reason=reason, local=local)
    done(f"{key.upper()}: {out['from']} -> {out['to']} ({trigger} by {actor})"
         + (f"; flow run {run}" if run else ""))


@phase_app.command("advance")
def phase_advance(ctx: typer.Context, key: Key, actor: Actor, reason: Reason = "",
                  local: Local = False) -> None:
    """Move to the next phase when its gate's guards pass (assigned PM or senior PM)."""
    _fire(ctx, key, "advance", actor, reason, local)


@phase_app.command("hold")
def phase_hold(ctx: typer.Context, key: Key, actor: Actor, reason: Reason = "",
               local: Local = False) -> None:
    """Put the project on hold (assigned PM or senior PM)."""
    _fire(ctx, key, "hold", actor, reason, local)


@phase_app.command("resume")
def phase_resume(ctx: typer.Context, key: Key, actor: Actor, reason: Reason = "",
                 local: Local = False) -> None:
    """Resume a held project in the phase it left (assigned PM or senior PM)."""
    _fire(ctx, key, "resume", actor, reason, local)


@phase_app.command("cancel")
def phase_cancel(ctx: typer.Context, key: Key, actor: Actor, reason: Reason = "",
                 local: Local = False) -> None:
    """Cancel the project (project sponsor or executive sponsor)."""
    _fire(ctx, key, "cancel", actor, reason, local)


@phase_app.command("show")
def phase_show(ctx: typer.Context, key: Key, as_json: AsJson = False) -> None:
    """The phase, the triggers possible now and the guards of the next advance."""
    from cep_engine.cli import _render
    from cep_engine.cli._runtime import show
    from cep_engine.services import queries

    with rt(ctx).store().connect() as conn:
        data = queries.show_project(conn, key)
    phase = {k: data[k] for k in ("key", "phase", "held_from", "version", "triggers",
                                  "next_advance")}
    show(phase, as_json, _render.phase)
