"""``cep risk`` and ``cep action``: the Risk Log and the Action Items Log."""

from __future__ import annotations

from typing import Annotated

import typer

from cep_engine.cli._common import Actor, AsJson, Key, Local, rt
from cep_engine.cli._logs_common import CsvFile, Note, Number, Owner, Status, done, run_import

risk_app = typer.Typer(help="The Risk Log: rated risks, their triggers and responses.",
                       no_args_is_help=True)
action_app = typer.Typer(help="The Action Items Log.", no_args_is_help=True)

Title = Annotated[str, typer.Argument(help="Short title.")]
Rating = Annotated[int | None, typer.Option(min=1, max=5, help="1 (lowest) to 5.")]
AsOf = Annotated[str | None, typer.Option(
    "--as-of", help="Run as of this time (with a time zone); default now.")]


@risk_app.command("add")
def risk_add(
    ctx: typer.Context, key: Key, title: Title, actor: Actor,
    probability: Annotated[int, typer.Option(help="1 (rare) to 5 (almost certain).")],
    impact: Annotated[int, typer.Option(help="1 (minor) to 5 (severe).")],
    trigger: Annotated[str, typer.Option(help="What would show the risk has happened.")] = "",
    trigger_date: Annotated[str | None, typer.Option(
        help="YYYY-MM-DD: the risk triggers by itself on this date.")] = None,
    owner: Owner = None,
    mitigation: Annotated[str, typer.Option(help="How the risk is reduced.")] = "",
) -> None:
    """Add a risk (assigned PM or senior PM); score = probability x impact."""
    from cep_engine.cli._logs_common import day
    from cep_engine.cli._runtime import now
    from cep_engine.services import risks

    data = risks.RiskInput.checked(
        title, probability, impact, trigger_text=trigger, owner=owner, mitigation=mitigation,
        trigger_date=day(trigger_date, "--trigger-date") if trigger_date else None)
    risk = risks.add_risk(rt(ctx).store(), key, data, actor=actor, now=now())
    done(f"{key.upper()}: added risk R-{risk.number} (score {risk.score})")


@risk_app.command("list")
def risk_list(ctx: typer.Context, key: Key, status: Status = None,
              as_json: AsJson = False) -> None:
    """The Risk Log, highest score first."""
    from cep_engine.cli import _logs_render
    from cep_engine.cli._runtime import show
    from cep_engine.services import log_queries

    with rt(ctx).store().connect() as conn:
        rows = log_queries.list_risks(conn, key, status)
    show(rows, as_json, _logs_render.risks)


@risk_app.command("show")
def risk_show(ctx: typer.Context, key: Key, number: Number, as_json: AsJson = False) -> None:
    """One risk, the issue it opened and its action items."""
    from cep_engine.cli import _logs_render
    from cep_engine.cli._runtime import show
    from cep_engine.services import log_queries

    with rt(ctx).store().connect() as conn:
        data = log_queries.show_risk(conn, key, number)
    show(data, as_json, _logs_render.risk)


@risk_app.command("update")
def risk_update(
    ctx: typer.Context, key: Key, number: Number, actor: Actor,
    title: Annotated[str | None, typer.Option(help="New title.")] = None,
    probability: Rating = None, impact: Rating = None,
    trigger: Annotated[str | None, typer.Option(help="New trigger text.")] = None,
    trigger_date: Annotated[str | None, typer.Option(help="New trigger date.")] = None,
    owner: Owner = None,
    mitigation: Annotated[str | None, typer.Option(help="New mitigation.")] = None,
) -> None:
    """Change a risk's fields (assigned PM or senior PM)."""
    from cep_engine.cli._logs_common import day
    from cep_engine.cli._runtime import now
    from cep_engine.services import risks

    risk = risks.update_risk(
        rt(ctx).store(), key, number, actor=actor, now=now(), title=title,
        probability=probability, impact=impact, trigger_text=trigger, owner=owner,
        mitigation=mitigation,
        trigger_date=day(trigger_date, "--trigger-date") if trigger_date else None)
    done(f"{key.upper()}: risk R-{number} updated (score {risk.score})")


def _risk_status(ctx: typer.Context, key: str, number: int, trigger: str, actor: str,
                 note: str) -> None:
    from cep_engine.cli._runtime import now
    from cep_engine.services import risks

    risk = risks.change_status(rt(ctx).store(), key, number, trigger, actor=actor, now=now(),
                               note=note)
    done(f"{key.upper()}: risk R-{number} {risk.status}")


@risk_app.command("monitor")
def risk_monitor(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                 note: Note = "") -> None:
    """Watch an identified risk (assigned PM or senior PM)."""
    _risk_status(ctx, key, number, "monitor", actor, note)


@risk_app.command("close")
def risk_close(ctx: typer.Context, key: Key, number: Number, actor: Actor,
               note: Note = "") -> None:
    """Close a risk, saying why (assigned PM or senior PM)."""
    _risk_status(ctx, key, number, "close", actor, note)


@risk_app.command("trigger")
def risk_trigger(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                 note: Note = "") -> None:
    """Fire a risk: it opens a linked issue and an action item for its owner."""
    from cep_engine.cli._logs_common import policy
    from cep_engine.cli._runtime import now
    from cep_engine.services import log_queries, risks

    runtime = rt(ctx)
    risk = risks.trigger_risk(runtime.store(), key, number, actor=actor, now=now(),
                              policy=policy(runtime), note=note)
    with runtime.store().connect() as conn:
        shown = log_queries.show_risk(conn, key, risk.number)
    done(f"{key.upper()}: risk R-{number} triggered; opened issue #{shown['issue']}")


@risk_app.command("sweep")
def risk_sweep(ctx: typer.Context, as_of: AsOf = None, as_json: AsJson = False,
               local: Local = False) -> None:
    """Trigger every risk whose trigger date has arrived (what the scheduled check runs; as a
    flow run when PREFECT_API_URL is set)."""
    from cep_engine.cli import _dispatch
    from cep_engine.cli._logs_common import instant
    from cep_engine.cli._runtime import emit_json, now

    when = instant(as_of, "--as-of") if as_of else now()
    out, run = _dispatch.risk_check(rt(ctx), as_of=when, local=local)
    fired = out["triggered"]
    if as_json:
        emit_json(out)
    else:
        done(f"{len(fired)} risk(s) triggered" + (f": {', '.join(fired)}" if fired else "")
             + (f"; flow run {run}" if run else ""))


@risk_app.command("import")
def risk_import(ctx: typer.Context, key: Key, path: CsvFile, actor: Actor) -> None:
    """Import a Risk Log CSV; one bad row rejects the file (PMs)."""
    run_import(ctx, "risk", key, path, actor)


@action_app.command("add")
def action_add(
    ctx: typer.Context, key: Key, title: Title, actor: Actor, owner: Owner = None,
    due: Annotated[str | None, typer.Option(help="Due date, YYYY-MM-DD.")] = None,
    source: Annotated[str, typer.Option(help="meeting, issue, risk or manual.")] = "manual",
    ref: Annotated[str | None, typer.Option(help="Which meeting, issue or risk.")] = None,
) -> None:
    """Add an action item (client liaison or assigned PM)."""
    from cep_engine.cli._logs_common import day
    from cep_engine.cli._runtime import now
    from cep_engine.services import actions

    item = actions.add_action(rt(ctx).store(), key, title, actor=actor, now=now(), owner=owner,
                              due=day(due, "--due") if due else None, source_name=source,
                              source_ref=ref)
    done(f"{key.upper()}: added action item A-{item.number}")


@action_app.command("list")
def action_list(ctx: typer.Context, key: Key, status: Status = None,
                as_json: AsJson = False) -> None:
    """The Action Items Log, by due date."""
    from cep_engine.cli import _logs_render
    from cep_engine.cli._runtime import show
    from cep_engine.services import log_queries

    with rt(ctx).store().connect() as conn:
        rows = log_queries.list_actions(conn, key, status)
    show(rows, as_json, _logs_render.actions)


def _action_status(ctx: typer.Context, key: str, number: int, trigger: str, actor: str,
                   note: str) -> None:
    from cep_engine.cli._runtime import now
    from cep_engine.services import actions

    item = actions.change_status(rt(ctx).store(), key, number, trigger, actor=actor,
                                 now=now(), note=note)
    done(f"{key.upper()}: action item A-{number} {item.status}")


@action_app.command("done")
def action_done(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                note: Note = "") -> None:
    """Mark an item done (its owner, the client liaison or the assigned PM)."""
    _action_status(ctx, key, number, "done", actor, note)


@action_app.command("reopen")
def action_reopen(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                  note: Note = "") -> None:
    """Reopen a done item (client liaison or assigned PM)."""
    _action_status(ctx, key, number, "reopen", actor, note)


@action_app.command("cancel")
def action_cancel(ctx: typer.Context, key: Key, number: Number, actor: Actor,
                  note: Note = "") -> None:
    """Cancel an open item (client liaison or assigned PM)."""
    _action_status(ctx, key, number, "cancel", actor, note)


@action_app.command("update")
def action_update(
    ctx: typer.Context, key: Key, number: Number, actor: Actor,
    title: Annotated[str | None, typer.Option(help="New title.")] = None, owner: Owner = None,
    due: Annotated[str | None, typer.Option(help="New due date; re-arms reminders.")] = None,
) -> None:
    """Change an open item's title, owner or due date (client liaison or assigned PM)."""
    from cep_engine.cli._logs_common import day
    from cep_engine.cli._runtime import now
    from cep_engine.services import actions

    actions.update_action(rt(ctx).store(), key, number, actor=actor, now=now(), title=title,
                          owner=owner, due=day(due, "--due") if due else None)
    done(f"{key.upper()}: action item A-{number} updated")


@action_app.command("import")
def action_import(ctx: typer.Context, key: Key, path: CsvFile, actor: Actor) -> None:
    """Import an Action Items Log CSV; one bad row rejects the file."""
    run_import(ctx, "action", key, path, actor)


def remind(
    ctx: typer.Context, as_of: AsOf = None,
    days_before: Annotated[int, typer.Option(
        min=0, max=60, help="Business days before the due date for the due-soon reminder.")] = 2,
    as_json: AsJson = False, local: Local = False,
) -> None:
    """Queue due-soon and overdue reminders for readiness tasks and action items, once per
    item and due date (as a flow run when PREFECT_API_URL is set)."""
    from cep_engine.cli import _dispatch, _logs_render
    from cep_engine.cli._logs_common import instant
    from cep_engine.cli._runtime import now, show

    when = instant(as_of, "--as-of") if as_of else now()
    report, run = _dispatch.remind(rt(ctx), as_of=when, days_before=days_before, local=local)
    show(report, as_json, _logs_render.reminders)
    if run and not as_json:
        done(f"flow run {run}")
