"""``cep issue``, ``cep risk``, ``cep action`` and ``cep remind``: the three control logs."""

from __future__ import annotations

from typing import Annotated

import typer

from cep_engine.cli._common import Actor, AsJson, Key, rt
from cep_engine.cli._logs_common import CsvFile, Note, Number, Owner, Status, run_import
from cep_engine.cli._logs_common import done as _done
from cep_engine.cli._risklog import action_app, remind, risk_app

__all__ = ["action_app", "issue_app", "remind", "risk_app"]

issue_app = typer.Typer(help="The Issues Log and its escalation ladder.", no_args_is_help=True)


# ---------------------------------------------------------------- issues


@issue_app.command("open")
def issue_open(
    ctx: typer.Context, key: Key, title: Annotated[str, typer.Argument(help="Short title.")],
    actor: Actor,
    priority: Annotated[str, typer.Option(help="critical, high, medium or low.")] = "medium",
    owner: Owner = None,
    description: Annotated[str, typer.Option(help="What is wrong.")] = "",
) -> None:
    """Open an issue (any project member); its escalation ladder is fixed now."""
    from cep_engine.cli import _logs_common
    from cep_engine.cli._runtime import now
    from cep_engine.services import issues

    runtime = rt(ctx)
    issue = issues.open_issue(runtime.store(), key, title, priority_name=priority, actor=actor,
                              now=now(), policy=_logs_common.policy(runtime), owner=owner,
                              description=description)
    _done(f"{key.upper()}: opened issue #{issue.number} ({issue.priority})")


@issue_app.command("list")
def issue_list(ctx: typer.Context, key: Key, status: Status = None,
               as_json: AsJson = False) -> None:
    """The Issues Log (``--status active`` = open and in progress)."""
    from cep_engine.cli import _logs_render
    from cep_engine.cli._runtime import show
    from cep_engine.services import issue_queries

    with rt(ctx).store().connect() as conn:
        rows = issue_queries.list_issues(conn, key, status)
    show(rows, as_json, _logs_render.issues)


@issue_app.command("show")
def issue_show(ctx: typer.Context, key: Key, number: Number, as_json: AsJson = False) -> None:
    """One issue: its history, who was told when, and where it stands on the ladder."""
    from cep_engine.cli import _logs_common, _logs_render
    from cep_engine.cli._runtime import show
    from cep_engine.services import issue_queries

    runtime = rt(ctx)
    calendar = _logs_common.policy(runtime).business_calendar
    with runtime.store().connect() as conn:
        data = issue_queries.show_issue(conn, key, number, calendar=calendar)
    show(data, as_json, _logs_render.issue)


@issue_app.command("note")
def issue_note(ctx: typer.Context, key: Key, number: Number,
               text: Annotated[str, typer.Argument(help="The note.")], actor: Actor) -> None:
    """Add a note (any project member); restarts the escalation clock."""
    from cep_engine.cli._runtime import now
    from cep_engine.services import issues

    issues.add_note(rt(ctx).store(), key, number, text, actor=actor, now=now())
    _done(f"{key.upper()}#{number}: note added")


@issue_app.command("assign")
def issue_assign(ctx: typer.Context, key: Key, number: Number,
                 owner: Annotated[str, typer.Argument(help="Email of the new owner.")],
                 actor: Actor) -> None:
    """Give the issue a new owner (assigned PM, senior PM or client liaison)."""
    from cep_engine.cli._runtime import now
    from cep_engine.services import issues

    issue = issues.assign_owner(rt(ctx).store(), key, number, owner, actor=actor, now=now())
    _done(f"{key.upper()}#{number}: owner {issue.owner.email if issue.owner else '-'}")


def _status(ctx: typer.Context, key: str, number: int, trigger: str, actor: str,
            note: str) -> None:
    from cep_engine.cli._runtime import now
    from cep_engine.services import issues

    issue = issues.change_status(rt(ctx).store(), key, number, trigger, actor=actor, now=now(),
                                 note=note)
    _done(f"{key.upper()}#{number}: {trigger} -> {issue.status} (level {issue.level})")


@issue_app.command("start")
def issue_start(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                note: Note = "") -> None:
    """Mark the issue in progress (any project member)."""
    _status(ctx, key, number, "start", actor, note)


@issue_app.command("resolve")
def issue_resolve(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                  note: Note = "") -> None:
    """Resolve the issue, saying how (PMs and sponsors); it leaves the ladder."""
    _status(ctx, key, number, "resolve", actor, note)


@issue_app.command("close")
def issue_close(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                note: Note = "") -> None:
    """Close a resolved issue (assigned PM or senior PM)."""
    _status(ctx, key, number, "close", actor, note)


@issue_app.command("reopen")
def issue_reopen(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                 note: Note = "") -> None:
    """Reopen a resolved issue, saying why; it rejoins the ladder at team level."""
    _status(ctx, key, number, "reopen", actor, note)


def _ladder(ctx: typer.Context, key: str, number: int, trigger: str, actor: str, note: str,
            until: str | None = None) -> None:
    from cep_engine.cli import _logs_common
    from cep_engine.cli._runtime import now
    from cep_engine.services import issues

    runtime = rt(ctx)
    when = _logs_common.instant(until, "--until") if until else None
    issue = issues.ladder_action(runtime.store(), key, number, trigger, actor=actor, now=now(),
                                 policy=_logs_common.policy(runtime), until=when, note=note)
    extra = f" until {when.isoformat()}" if when else ""
    _done(f"{key.upper()}#{number}: {trigger}{extra}; level {issue.level}")


@issue_app.command("ack")
def issue_ack(ctx: typer.Context, key: Key, number: Number, actor: Actor,
              note: Note = "") -> None:
    """Acknowledge at the current level (its holder): holds the next level back."""
    _ladder(ctx, key, number, "acknowledge", actor, note)


@issue_app.command("snooze")
def issue_snooze(
    ctx: typer.Context, key: Key, number: Number, actor: Actor,
    until: Annotated[str, typer.Option(help="End, with a time zone: 2026-12-01T10:00-08:00.")],
    note: Note = "",
) -> None:
    """Hold escalation until a time (the current level's holder; capped by snooze_max)."""
    _ladder(ctx, key, number, "snooze", actor, note, until)


@issue_app.command("deescalate")
def issue_deescalate(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                     note: Note = "") -> None:
    """Send the issue one level down (the current level's holder)."""
    _ladder(ctx, key, number, "deescalate", actor, note)


@issue_app.command("import")
def issue_import(ctx: typer.Context, key: Key, path: CsvFile, actor: Actor) -> None:
    """Import an Issues Log CSV; one bad row rejects the file (PMs)."""
    run_import(ctx, "issue", key, path, actor)
