"""``cep checklist``: the readiness review of one guide."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from cep_engine.cli._common import Actor, AsJson, Key, Local, Stage, rt

checklist_app = typer.Typer(
    help="Readiness checklists: tasks, signed submission, validation or return.",
    no_args_is_help=True,
)
Number = Annotated[int, typer.Argument(help="Task number, as `checklist show` lists it.")]


@checklist_app.command("show")
def show_checklist(ctx: typer.Context, key: Key, stage: Stage, as_json: AsJson = False) -> None:
    """A guide's review state, its tasks and every submitted version."""
    from cep_engine.cli import _render
    from cep_engine.cli._runtime import show
    from cep_engine.services import queries

    with rt(ctx).store().connect() as conn:
        data = queries.show_checklist(conn, key, stage)
    show(data, as_json, _render.checklist)


@checklist_app.command("add-task")
def add_task(
    ctx: typer.Context, key: Key, stage: Stage,
    text: Annotated[str, typer.Argument(help="What has to be done.")],
    actor: Actor,
    party: Annotated[str, typer.Option(help="cts, customer or joint.")] = "joint",
    owner: Annotated[str | None, typer.Option(help="Email of the task owner.")] = None,
    due: Annotated[str | None, typer.Option(help="Due date, YYYY-MM-DD.")] = None,
) -> None:
    """Add a task to a checklist."""
    from cep_engine.cli._runtime import done, now
    from cep_engine.errors import InvalidInput
    from cep_engine.services import readiness

    try:
        due_date = date.fromisoformat(due) if due else None
    except ValueError:
        raise InvalidInput(f"due date {due!r} is not YYYY-MM-DD") from None
    task = readiness.add_task(
        rt(ctx).store(), key, stage, text, actor=actor, now=now(), party=party, owner=owner,
        due=due_date,
    )
    done(f"{key.upper()}/{stage}: added task #{task.number}")


@checklist_app.command("done")
def task_done(
    ctx: typer.Context, key: Key, stage: Stage, number: Number, actor: Actor,
    undo: Annotated[bool, typer.Option("--undo", help="Mark the task not done.")] = False,
) -> None:
    """Mark a task done (or, with --undo, not done)."""
    from cep_engine.cli._runtime import done, now
    from cep_engine.services import readiness

    readiness.set_task_done(
        rt(ctx).store(), key, stage, number, actor=actor, now=now(), done=not undo
    )
    done(f"{key.upper()}/{stage}: task #{number} {'not done' if undo else 'done'}")


@checklist_app.command("submit")
def submit(
    ctx: typer.Context, key: Key, stage: Stage, actor: Actor,
    signer: Annotated[str, typer.Option(help="Name of the person signing.")] = "",
    attest: Annotated[str, typer.Option(help="Attestation text of the signature.")] = "",
    local: Local = False,
) -> None:
    """Submit the signed checklist (implementation coordinator, every task done)."""
    from cep_engine.cli._dispatch import checklist
    from cep_engine.cli._runtime import done

    sub, run = checklist(rt(ctx), key, stage, "submit", actor=actor, local=local, signer=signer,
                         attestation=attest)
    done(f"{key.upper()}/{stage}: version {sub['version']} submitted, signed by {sub['signer']}"
         + (f"; flow run {run}" if run else ""))


@checklist_app.command("validate")
def validate(
    ctx: typer.Context, key: Key, stage: Stage, actor: Actor,
    comment: Annotated[str, typer.Option(help="Optional note.")] = "",
    local: Local = False,
) -> None:
    """Validate readiness (assigned PM)."""
    from cep_engine.cli._dispatch import checklist
    from cep_engine.cli._runtime import done

    _, run = checklist(rt(ctx), key, stage, "validate", actor=actor, local=local,
                       comment=comment)
    done(f"{key.upper()}/{stage}: readiness validated by {actor}"
         + (f"; flow run {run}" if run else ""))


@checklist_app.command("return")
def return_(
    ctx: typer.Context, key: Key, stage: Stage, actor: Actor,
    comment: Annotated[str, typer.Option(help="What must be reworked.")] = "",
    local: Local = False,
) -> None:
    """Return the checklist for further work, with a comment (assigned PM)."""
    from cep_engine.cli._dispatch import checklist
    from cep_engine.cli._runtime import done

    _, run = checklist(rt(ctx), key, stage, "return", actor=actor, local=local,
                       comment=comment)
    done(f"{key.upper()}/{stage}: returned by {actor}: {comment}"
         + (f"; flow run {run}" if run else ""))
