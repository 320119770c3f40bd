"""The ``deliver-notifications`` flow: send the due messages of the outbox.

Delivery is idempotent (claims with leases, one Message-ID per message), so Prefect may
retry a run: when the mail server cannot be reached (or the database fails) the run fails
after recording each message's backoff, and Prefect runs it again, twice, each time
:data:`RETRY_DELAY` later; by then the messages deferred with the outbox's default backoff
(60 s after the first failed try, 120 s after the second) are due again. A retried run
claims only what is due: a message sent is never sent again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger
from prefect.states import Failed

from cep_engine.errors import CepError
from cep_engine.notify.deliver import DeliveryReport
from cep_engine.services import jobs, outbox_queries
from cep_engine.store.db import Store
from workflows._support import (
    about,
    flow_settings,
    flow_store,
    label_run,
    publish_table,
    refused,
    related_project,
    stamp,
)

ARTIFACT = "notification-delivery"
OUTCOMES = ("claimed", "sent", "retrying", "dead", "digests")
RETRIES = 2
RETRY_DELAY = 120
"""Seconds before each retry of a run that failed (at least the default backoff)."""


@flow(
    name="deliver-notifications",
    flow_run_name="delivery",
    description="Send the due messages of the notification outbox over one SMTP connection.",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY,
    validate_parameters=True,
    persist_result=False,
)
async def deliver_notifications() -> dict[str, Any] | State[Any]:
    """Claim the due messages, send them over one SMTP connection and record each outcome:
    sent, pending again after a backoff, or dead."""
    now = datetime.now(UTC)
    tags = ["change:notification"]
    store = flow_store()
    try:
        report = await asyncio.to_thread(jobs.deliver, store, flow_settings(), now=now)
    except CepError as exc:
        await label_run(f"delivery {stamp(now)} (refused)", tags)
        return refused(exc)
    await publish_table(ARTIFACT, [{"outcome": o, "messages": getattr(report, o)}
                                   for o in OUTCOMES], ["outcome", "messages"],
                        _summary(report, now))
    _emit_dead(await asyncio.to_thread(_dead, store, report.dead_ids))
    await label_run(_name(report, now), tags)
    _log(report, now)
    if report.server_down:
        return Failed(message=f"mail server unavailable: {report.server_down}",
                      data=report.as_dict())
    return report.as_dict()


def _name(report: DeliveryReport, now: datetime) -> str:
    name = (f"delivery {stamp(now)}: {report.sent} sent, {report.retrying} retrying, "
            f"{report.dead} dead")
    return name + (" (mail server unavailable)" if report.server_down else "")


def _summary(report: DeliveryReport, now: datetime) -> str:
    return (f"Delivery at {now.isoformat()}: claimed {report.claimed}: sent {report.sent}, "
            f"retrying {report.retrying}, dead {report.dead}, digests {report.digests}."
            + (f" Mail server unavailable: {report.server_down}" if report.server_down else ""))


def _dead(store: Store, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    with store.connect() as conn:
        return outbox_queries.messages_by_id(conn, ids)


def _emit_dead(dead: list[dict[str, Any]]) -> None:
    """One ``cep.notification.dead`` per message given up on: the message as resource."""
    for message in dead:
        resource = {"prefect.resource.id": f"cep.notification.{message['id']}",
                    "prefect.resource.name": message["idempotency_key"]}
        related = [related_project(message["project"])] if message["project"] else []
        about("cep.notification.dead", resource, message, related=related)


def _log(report: DeliveryReport, now: datetime) -> None:
    logger = get_run_logger()
    logger.info("%s", _summary(report, now))
    for line in report.missing_roles:
        logger.warning("%s", line)
    for line in report.errors:
        logger.error("%s", line)
