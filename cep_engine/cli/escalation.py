"""``cep escalate`` (the sweep) and ``cep escalation policy``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cep_engine.cli._common import AsJson, Local, rt

if TYPE_CHECKING:
    from cep_engine.escalation.policy import EscalationPolicy

escalation_app = typer.Typer(help="The escalation policy of the Issues Log.",
                             no_args_is_help=True)
PolicyFile = Annotated[
    Path | None, typer.Option("--policy", help="Policy file (default config/escalation.yaml).")
]


def load_effective_policy(ctx: typer.Context, path: Path | None = None) -> EscalationPolicy:
    """The policy file named by --policy, else ``escalation.yaml`` in the config folder."""
    from cep_engine.services import jobs

    return jobs.policy(rt(ctx).settings, path)


def parse_instant(value: str | None, what: str = "--as-of") -> Any:
    """An aware ISO 8601 instant, or now when ``value`` is empty."""
    from datetime import datetime

    from cep_engine.cli._runtime import now
    from cep_engine.errors import InvalidInput

    if not value:
        return now()
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not an ISO 8601 time like "
                           "2026-12-01T10:00-08:00") from None
    if instant.tzinfo is None:
        raise InvalidInput(f"{what} {value!r} has no time zone; add an offset such as -08:00 "
                           "or Z")
    return instant


def escalate(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Sweep as of this time "
                                              "(ISO 8601 with offset); default now.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, change nothing.")] = False,
    as_json: AsJson = False,
    policy_file: PolicyFile = None,
    local: Local = False,
) -> None:
    """Escalate every issue idle past its next rung's threshold, once per rung (as a flow run
    when PREFECT_API_URL is set)."""
    from cep_engine.cli import _dispatch
    from cep_engine.cli._runtime import emit_json, table

    data, run = _dispatch.sweep(rt(ctx), as_of=parse_instant(as_of), dry_run=dry_run,
                                policy_file=policy_file, local=local)
    if as_json:
        emit_json(data)
        return
    verb = "would escalate" if dry_run else "escalated"
    print(f"sweep as of {data['as_of']}: {verb} {data['total']} issue rung(s)"
          + (f"; flow run {run}" if run else ""))
    if data["by_project_level"]:
        table(None, ["project", "level", "issues"],
              [[r["project"], r["level"], r["count"]] for r in data["by_project_level"]])


@escalation_app.command("policy")
def show_policy(ctx: typer.Context, as_json: AsJson = False,
                policy_file: PolicyFile = None) -> None:
    """Validate the policy file and print the effective ladders and calendar."""
    from cep_engine.cli._runtime import emit_json, table

    policy = load_effective_policy(ctx, policy_file)
    snap = policy.snapshot()
    cal = policy.calendar
    if as_json:
        emit_json({"calendar": cal.model_dump(mode="json"), "snooze_max": policy.snooze_max,
                   "ladders": snap})
        return
    print(f"calendar: {cal.timezone}, {', '.join(cal.workdays)} "
          f"{cal.workday_start:%H:%M}-{cal.workday_end:%H:%M}, holidays "
          f"{cal.holidays.country}-{cal.holidays.subdivision}, "
          f"{len(cal.closures)} closure date(s); snooze at most {policy.snooze_max}")
    table(None, ["priority", "rung", "level", "after (business time)", "to", "cc"],
          [[prio, i, s["level"], s["after"], ", ".join(s["to"]), ", ".join(s["cc"])]
           for prio, steps in snap.items() for i, s in enumerate(steps, 1)])
