"""The ``cep`` command. Command modules import services lazily to keep start-up fast."""

from __future__ import annotations

import copy
import gc
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.main import get_command_name
from typer.models import CommandInfo

from cep_engine.cli import checklist, engine, escalation, logs, projects
from cep_engine.cli import notify as notify_cli
from cep_engine.cli._common import Actor, AsJson, Key, rt
from cep_engine.errors import CepError

app = typer.Typer(
    name="cep",
    help="Run the Customer Engagement Plan of State Data Center implementations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(projects.project_app, name="project")
app.add_typer(projects.person_app, name="person")
app.add_typer(projects.role_app, name="role")
app.add_typer(projects.phase_app, name="phase")
app.add_typer(checklist.checklist_app, name="checklist")
app.add_typer(logs.issue_app, name="issue")
app.add_typer(logs.risk_app, name="risk")
app.add_typer(logs.action_app, name="action")
app.command("remind")(logs.remind)
app.add_typer(notify_cli.notify_app, name="notify")
app.add_typer(notify_cli.outbox_app, name="outbox")
app.add_typer(escalation.escalation_app, name="escalation")
app.command("escalate")(escalation.escalate)
app.command("up")(engine.up)
app.command("serve")(engine.serve)
app.command("deploy")(engine.deploy)
app.command("worker")(engine.worker)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file (default config/cep.toml).")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Overrides CEP_DATABASE_URL.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Overrides CEP_DATA_DIR.")
    ] = None,
) -> None:
    """Settings: flag > CEP_* environment variable > config file > defaults."""
    from cep_engine.cli._runtime import Runtime

    ctx.obj = Runtime(config=config, database_url=database_url, data_dir=data_dir)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the database schema, or upgrade it to this version's."""
    from cep_engine.cli._runtime import done
    from cep_engine.store.migrate import upgrade

    runtime = rt(ctx)
    store = runtime.store(require_schema=False)
    before, after = upgrade(store)
    where = store.engine.url.render_as_string(hide_password=True)
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    done(f"database {where} {state} schema revision {after}")


@app.command()
def history(
    ctx: typer.Context, key: Key, as_json: AsJson = False,
    limit: Annotated[int | None, typer.Option(help="Show only the first N entries.")] = None,
) -> None:
    """The audit trail of a project: every change and every refused attempt."""
    from cep_engine.cli import _render
    from cep_engine.cli._runtime import show
    from cep_engine.services import queries

    with rt(ctx).store().connect() as conn:
        rows = queries.history(conn, key, limit=limit)
    show(rows, as_json, _render.history)


@app.command()
def signoff(
    ctx: typer.Context, key: Key, actor: Actor,
    signer: Annotated[str, typer.Option("--signer", help="Name of the person signing.")],
    statement: Annotated[
        str, typer.Option(help="What the customer accepts.")
    ] = "The agency accepts the implementation as complete.",
) -> None:
    """Record the customer's sign-off (implementation coordinator, closing phase)."""
    from cep_engine.cli._runtime import done, now
    from cep_engine.services import projects as svc

    svc.record_signoff(rt(ctx).store(), key, signer, statement, actor=actor, now=now())
    done(f"{key.upper()}: customer sign-off recorded by {actor}")


@app.command()
def diagram(
    machine: Annotated[str, typer.Argument(help="phase or readiness")],
    fmt: Annotated[str, typer.Option("--format", help="mermaid or markdown")] = "mermaid",
) -> None:
    """Print a machine as a Mermaid diagram or a Markdown table, from the table that runs it."""
    from cep_engine.docs import render_machine

    print(render_machine(machine, fmt))


@app.command("docs")
def write_docs(
    output: Annotated[Path | None, typer.Option(
        "--output", help="File to write (default docs/machines.md of this checkout).")] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Write nothing; exit 1 when the file is not the generated one.")] = False,
) -> None:
    """Write docs/machines.md (states, transitions, guards, roles, diagrams) from the tables."""
    from cep_engine.docs import MACHINES_DOC, machines_document
    from cep_engine.settings import REPO_CONFIG_DIR

    path = output or REPO_CONFIG_DIR.parent / MACHINES_DOC
    text = machines_document()
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            raise CepError(f"{path} is not the generated reference; run `cep docs`")
        print(f"{path} is up to date")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")


@app.command()
def demo(
    ctx: typer.Context,
    key: Annotated[str, typer.Option(help="Key of the sample project.")] = "SDC-900",
) -> None:
    """Create a sample project with its roles and walk it through its whole life."""
    from cep_engine.demo import run_demo

    run_demo(rt(ctx), key)


def main() -> None:
    """Console entry point: run the app, turning cep-engine errors into one line and an exit
    code.

    The cyclic garbage collector is paused while the command imports what it needs (its
    passes over the growing heap of modules cost ~50 ms of a read command's start-up) and
    resumed when the command loads its settings (see ``Runtime.settings``) or ends.
    """
    gc.disable()
    try:
        app_for(sys.argv[1:])(prog_name="cep")
    except CepError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    finally:
        gc.enable()


def app_for(args: list[str]) -> typer.Typer:
    """``app`` cut down to the top-level commands and groups named in ``args``.

    Typer turns the signature of every command into a click command on each run (~70 of
    them, a tenth of a read command's start-up); a run needs only its own. The one it runs is
    always among those named in ``args`` (an option value that happens to be a command name
    only adds one). Without such a name, or with ``--help`` anywhere (the root help lists
    every command), the whole app runs, so usage and error texts stay the same.
    """
    named = set(args)
    if "--help" in named:
        return app
    groups = [g for g in app.registered_groups if g.name in named]
    commands = [c for c in app.registered_commands if _command_name(c) in named]
    if not groups and not commands:
        return app
    lean = copy.copy(app)
    lean.registered_groups, lean.registered_commands = groups, commands
    return lean


def _command_name(command: CommandInfo) -> str:
    return command.name or get_command_name(command.callback.__name__)  # type: ignore[union-attr]
