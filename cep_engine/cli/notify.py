"""``cep notify`` (deliver, preview) and ``cep outbox`` (list, show, retry)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cep_engine.cli._common import AsJson, Local, rt

notify_app = typer.Typer(help="Email notifications: deliver the outbox, preview templates.",
                         no_args_is_help=True)
outbox_app = typer.Typer(help="The notification outbox: list, show, retry.",
                         no_args_is_help=True)
MessageId = Annotated[int, typer.Argument(help="Message id, as `cep outbox list` shows it.")]


@notify_app.command("deliver")
def deliver(ctx: typer.Context, as_json: AsJson = False, local: Local = False) -> None:
    """One delivery run: send every due message over one SMTP connection (as a flow run when
    PREFECT_API_URL is set)."""
    from cep_engine.cli import _dispatch
    from cep_engine.cli._runtime import console, emit_json

    report, run = _dispatch.deliver(rt(ctx), local=local)
    if as_json:
        emit_json(report)
        return
    console.print(f"claimed {report['claimed']}: sent {report['sent']}, retrying "
                  f"{report['retrying']}, dead {report['dead']}, digests {report['digests']}"
                  + (f"; flow run {run}" if run else ""), soft_wrap=True)
    for line in report["missing_roles"] + report["errors"]:
        console.print(f"  {line}", soft_wrap=True)


@notify_app.command("preview")
def preview(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="escalation, checklist_submitted, ..., digest.")],
    part: Annotated[str, typer.Option("--part", help="text, html or both.")] = "both",
) -> None:
    """Render a notification template with sample data."""
    from cep_engine.errors import InvalidInput
    from cep_engine.notify.templates import Templates
    from cep_engine.notify.templates import preview as render

    if part not in ("text", "html", "both"):
        raise InvalidInput(f"unknown part {part!r}; use text, html or both")
    settings = rt(ctx).settings
    out = render(kind, Templates(settings.notify.templates_dir, timezone=settings.timezone))
    if part in ("text", "both"):
        print(f"Subject: {out.subject}\n\n{out.text}")
    if part in ("html", "both"):
        print(out.html)


@outbox_app.command("list")
def list_(
    ctx: typer.Context, as_json: AsJson = False,
    status: Annotated[str | None, typer.Option(help="pending, sent or dead.")] = None,
    project: Annotated[str | None, typer.Option(help="Only this project key.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """Messages in the outbox, newest first."""
    from cep_engine.cli._runtime import short_time, show, table
    from cep_engine.services import outbox_queries

    with rt(ctx).store().connect() as conn:
        rows = outbox_queries.list_messages(conn, status=status, project=project, limit=limit)

    def render(data: list[dict[str, Any]]) -> None:
        table("Outbox", ["#", "status", "kind", "project", "tries", "next / sent", "error"], [
            [r["id"], r["status"], r["kind"], r["project"], r["attempts"],
             short_time(r["sent_at"] or r["next_attempt_at"]), (r["last_error"] or "")[:60]]
            for r in data])

    show(rows, as_json, render)


@outbox_app.command("show")
def show_(ctx: typer.Context, message_id: MessageId, as_json: AsJson = False) -> None:
    """One message: its recipients by role, context and delivery record."""
    from cep_engine.cli._runtime import console, show
    from cep_engine.services import outbox_queries

    with rt(ctx).store().connect() as conn:
        data = outbox_queries.show_message(conn, message_id)

    def render(row: dict[str, Any]) -> None:
        for name, value in row.items():
            console.print(f"{name:>16}: {value}", soft_wrap=True)

    show(data, as_json, render)


@outbox_app.command("retry")
def retry(
    ctx: typer.Context, message_ids: Annotated[list[int], typer.Argument(help="Message ids.")],
    actor: Annotated[str, typer.Option("--actor", envvar="CEP_ACTOR",
                                       help="Who retries (for the audit trail).")] = "operator",
) -> None:
    """Make dead messages due again now, with a fresh attempt count."""
    from cep_engine.cli._runtime import done, now
    from cep_engine.services import outbox

    ids = outbox.retry(rt(ctx).store(), message_ids, actor=actor, now=now())
    done(f"outbox {', '.join(f'#{i}' for i in ids)}: pending again, due now")
