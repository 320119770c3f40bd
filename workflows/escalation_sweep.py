"""The ``escalation-sweep`` flow: escalate every issue idle past its next rung, once per rung."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger

from cep_engine.errors import CepError
from cep_engine.escalation.sweep import ESCALATE, SweepReport
from cep_engine.services import jobs
from workflows._support import (
    about,
    flow_settings,
    flow_store,
    instant,
    label_run,
    project_resource,
    publish_table,
    refused,
    stamp,
)

ARTIFACT = "escalation-sweep"
EVENT = "cep.issues.escalated"
"""One event per (project, level) a run escalated issues to: the project as resource."""
ISSUES_PER_EVENT = 50
"""At most this many escalated issues named per event, as its related resources (its
payload counts them all). Prefect takes at most 100 related resources per event
(``PREFECT_SERVER_EVENTS_MAXIMUM_RELATED_RESOURCES``), and the run's own (flow run, flow,
deployment, work pool, queue, one per tag: up to ~30 here) join them when it is sent."""
EVENT_LIMIT = 100
"""At most this many events per run; the artifact counts every (project, level)."""
PROJECT_TAGS = 20
"""At most this many ``project:<KEY>`` tags on a run."""
LOG_LINES = 50
"""At most this many per-project log lines; the artifact has every row."""
_FROM_LEVEL = {to: source for source, to in ESCALATE.items()}


@flow(
    name="escalation-sweep",
    description="Escalate every issue idle past its next rung's threshold, once per rung.",
    retries=0,
    validate_parameters=True,
    persist_result=False,
)
async def escalation_sweep(
    as_of: datetime | None = None, dry_run: bool = False
) -> dict[str, Any] | State[Any]:
    """Sweep the Issues Logs of every project as of ``as_of`` (default: now).

    The run gets its name (what happened) and tags at the end, together with the table
    artifact: a name template would cost one more request before the sweep.

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
            detail=ISSUES_PER_EVENT,
        )
    except CepError as exc:
        await label_run("sweep (refused)", tags)
        return refused(exc)
    data = report.as_dict()
    if not dry_run:
        _emit_escalations(report)
    projects = sorted({p for p, _ in report.escalations})
    await asyncio.gather(
        publish_table(ARTIFACT, [{**r, "issues": r["count"]} for r in data["by_project_level"]],
                      ["project", "level", "issues"], _summary(report)),
        label_run(_name(report), [*tags, *(f"project:{p}" for p in projects[:PROJECT_TAGS])]),
    )
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
    """One :data:`EVENT` per (project, level), in order, at most :data:`EVENT_LIMIT`: the
    project as resource (labelled with the level), its first escalated issues as related
    resources (role ``issue``), the count and those issue numbers in the payload."""
    named: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for item in report.escalated:
        named[(item["project"], item["level"])].append(item)
    at = report.as_of.isoformat()
    for (key, level), count in sorted(report.escalations.items())[:EVENT_LIMIT]:
        issues = named[(key, level)]
        payload = {"project": key, "level": level, "from_level": _FROM_LEVEL[level],
                   "count": count, "issues": [i["issue"] for i in issues], "as_of": at}
        about(EVENT, {**project_resource(key), "cep.level": level}, payload,
              related=[_issue_resource(i) for i in issues])


def _issue_resource(item: dict[str, Any]) -> dict[str, str]:
    key, number = item["project"], item["issue"]
    return {"prefect.resource.id": f"cep.issue.{key}.{number}",
            "prefect.resource.name": f"{key}#{number}", "prefect.resource.role": "issue",
            "cep.priority": str(item["priority"])}


def _log(report: SweepReport) -> None:
    logger = get_run_logger()
    logger.info("%s", _summary(report))
    for (project, level), count in sorted(report.escalations.items())[:LOG_LINES]:
        logger.info("%s: %s issue(s) to %s", project, count, level)
    if report.dry_run:
        return
    if unnamed := report.total - len(report.escalated):
        logger.info("%s escalated issue(s) are counted in their %s event but not named in it "
                    "(at most %s per project and level)", unnamed, EVENT, ISSUES_PER_EVENT)
    if len(report.escalations) > EVENT_LIMIT:
        logger.warning("%s (project, level) pair(s) beyond the first %s have no %s event; the "
                       "artifact %r counts them all", len(report.escalations) - EVENT_LIMIT,
                       EVENT_LIMIT, EVENT, ARTIFACT)
