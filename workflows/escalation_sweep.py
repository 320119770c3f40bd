"""The ``escalation-sweep`` flow: escalate every issue idle past its next rung, once per rung."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger

from cep_engine.errors import CepError
from cep_engine.escalation.sweep import SweepReport
from cep_engine.services import jobs
from workflows._support import (
    about,
    flow_settings,
    flow_store,
    instant,
    label_run,
    publish_table,
    refused,
    related_project,
    stamp,
)

ARTIFACT = "escalation-sweep"
EVENT_LIMIT = 1000
"""At most this many ``cep.issue.escalated`` events per run; the artifact counts them all."""
PROJECT_TAGS = 20
"""At most this many ``project:<KEY>`` tags on a run."""
LOG_LINES = 50
"""At most this many per-project log lines; the artifact has every row."""


@flow(
    name="escalation-sweep",
    flow_run_name="escalation sweep",
    description="Escalate every issue idle past its next rung's threshold, once per rung.",
    retries=0,
    validate_parameters=True,
    persist_result=False,
)
async def escalation_sweep(
    as_of: datetime | None = None, dry_run: bool = False
) -> dict[str, Any] | State[Any]:
    """Sweep the Issues Logs of every project as of ``as_of`` (default: now).

    Args:
        as_of: Sweep as of this instant, with a time zone (e.g. 2026-12-01T10:00-08:00);
            empty for now.
        dry_run: Report what is due and change nothing.
    """
    tags = ["change:escalation", *(["dry-run"] if dry_run else [])]
    try:
        when = instant(as_of)
        report = await asyncio.to_thread(
            jobs.sweep, flow_store(), flow_settings(), as_of=when, dry_run=dry_run,
            detail=EVENT_LIMIT,
        )
    except CepError as exc:
        await label_run("sweep (refused)", tags)
        return refused(exc)
    data = report.as_dict()
    await publish_table(ARTIFACT, [{**r, "issues": r["count"]} for r in data["by_project_level"]],
                        ["project", "level", "issues"], _summary(report))
    if not dry_run:
        _emit_escalations(report)
    projects = sorted({p for p, _ in report.escalations})
    await label_run(_name(report), [*tags, *(f"project:{p}" for p in projects[:PROJECT_TAGS])])
    _log(report)
    return data


def _name(report: SweepReport) -> str:
    verb = "due (dry run)" if report.dry_run else "escalated"
    return f"sweep {stamp(report.as_of)}: {report.total} {verb}"


def _summary(report: SweepReport) -> str:
    what = "would escalate" if report.dry_run else "escalated"
    return (f"Escalation sweep as of {report.as_of.isoformat()}: {what} {report.total} "
            f"issue rung(s) in {len({p for p, _ in report.escalations})} project(s).")


def _emit_escalations(report: SweepReport) -> None:
    """One ``cep.issue.escalated`` per escalation: the issue as resource, its project
    related."""
    at = report.as_of.isoformat()
    for item in report.escalated:
        key, number = item["project"], item["issue"]
        issue = {"prefect.resource.id": f"cep.issue.{key}.{number}",
                 "prefect.resource.name": f"{key}#{number}"}
        about("cep.issue.escalated", issue, {**item, "as_of": at},
              related=[related_project(key)])


def _log(report: SweepReport) -> None:
    logger = get_run_logger()
    logger.info("%s", _summary(report))
    for (project, level), count in sorted(report.escalations.items())[:LOG_LINES]:
        logger.info("%s: %s issue(s) to %s", project, count, level)
    if not report.dry_run and report.total > len(report.escalated):
        logger.warning("%s escalation(s) beyond the first %s have no event of their own; the "
                       "artifact %r counts them all", report.total - len(report.escalated),
                       EVENT_LIMIT, ARTIFACT)
