"""The ``deadline-reminders`` flow: queue due-soon and overdue reminders, once each."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger
from pydantic import Field

from cep_engine.errors import CepError
from cep_engine.services import jobs
from cep_engine.services.reminders import ReminderReport
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

ARTIFACT = "deadline-reminders"
COLUMNS = ["project", "when", "item", "ref", "title", "due_date", "owner"]
ROW_LIMIT = 1000
"""At most this many reminders listed in the artifact and sent as events; all are counted."""


@flow(
    name="deadline-reminders",
    flow_run_name="deadline reminders",
    description="Queue due-soon and overdue reminders for readiness tasks and action items, "
                "once per item and due date.",
    retries=0,
    validate_parameters=True,
    persist_result=False,
)
async def deadline_reminders(
    as_of: datetime | None = None,
    days_before: Annotated[int, Field(ge=0, le=60)] = jobs.REMINDER_DAYS_BEFORE,
) -> dict[str, Any] | State[Any]:
    """Queue the reminders due as of ``as_of`` (default: now).

    Args:
        as_of: Remind as of this instant, with a time zone (e.g. 2026-12-01T07:00-08:00);
            empty for now.
        days_before: Business days before the due date for the due-soon reminder (0 to 60).
    """
    tags = ["change:reminder"]
    try:
        when = instant(as_of)
        report = await asyncio.to_thread(jobs.remind, flow_store(), flow_settings(), as_of=when,
                                         days_before=days_before)
    except CepError as exc:
        await label_run("reminders (refused)", tags)
        return refused(exc)
    data = report.as_dict()
    await publish_table(ARTIFACT, report.queued[:ROW_LIMIT], COLUMNS, _summary(report))
    for item in report.queued[:ROW_LIMIT]:
        _emit(item, when)
    projects = sorted({q["project"] for q in report.queued})
    await label_run(f"reminders {stamp(when)}: {data['due_soon']} due soon, "
                    f"{data['overdue']} overdue", [*tags, *(f"project:{p}" for p in projects[:20])])
    get_run_logger().info("%s", _summary(report))
    return data


def _summary(report: ReminderReport) -> str:
    data = report.as_dict()
    shown = "" if len(report.queued) <= ROW_LIMIT else f" (the first {ROW_LIMIT} listed)"
    return (f"Reminders as of {report.as_of.isoformat()} ({report.today}): queued "
            f"{data['due_soon']} due soon (due by {report.horizon}) and {data['overdue']} "
            f"overdue{shown}.")


def _emit(item: dict[str, Any], when: datetime) -> None:
    """``cep.reminder.queued``: the item (``cep.action.<KEY>.A-3`` or
    ``cep.task.<KEY>.<stage>.<n>``) as resource, its project related."""
    key = item["project"]
    kind = "action" if item["item"] == "action item" else "task"
    slug = item["ref"].replace(" #", ".")
    resource = {"prefect.resource.id": f"cep.{kind}.{key}.{slug}",
                "prefect.resource.name": f"{key} {item['ref']}"}
    about("cep.reminder.queued", resource, {**item, "as_of": when.isoformat()},
          related=[related_project(key)])
