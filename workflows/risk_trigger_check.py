"""The ``risk-trigger-check`` flow: trigger every risk whose trigger date has arrived."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger

from cep_engine.errors import CepError
from cep_engine.services import jobs
from cep_engine.settings import Settings
from cep_engine.store.db import Store
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

ARTIFACT = "risk-triggers"
COLUMNS = ["project", "risk", "title", "score", "owner", "issue", "action_items"]


@flow(
    name="risk-trigger-check",
    flow_run_name="risk check",
    description="Trigger every risk whose trigger date has arrived: each opens an issue and "
                "an action item for its owner.",
    retries=0,
    validate_parameters=True,
    persist_result=False,
)
async def risk_trigger_check(as_of: datetime | None = None) -> dict[str, Any] | State[Any]:
    """Trigger the risks whose trigger date is on or before ``as_of``'s date (default: now).

    Args:
        as_of: Check as of this instant, with a time zone (e.g. 2026-12-01T10:00-08:00);
            empty for now.
    """
    tags = ["change:risk"]
    try:
        when = instant(as_of)
        risks = await asyncio.to_thread(_run, flow_store(), flow_settings(), when)
    except CepError as exc:
        await label_run("risk check (refused)", tags)
        return refused(exc)
    rows = [_row(r) for r in risks]
    await publish_table(ARTIFACT, rows, COLUMNS,
                        f"Risk check as of {when.isoformat()}: {len(rows)} risk(s) triggered.")
    for risk in risks:
        _emit(risk)
    projects = sorted({r["project"] for r in risks})
    await label_run(f"risk check {stamp(when)}: {len(rows)} triggered",
                    [*tags, *(f"project:{p}" for p in projects)])
    logger = get_run_logger()
    logger.info("risk check as of %s: %s risk(s) triggered", when.isoformat(), len(rows))
    for row in rows:
        logger.info("%s %s (score %s) triggered: opened issue #%s", row["project"], row["risk"],
                    row["score"], row["issue"])
    return {"as_of": when.isoformat(), "triggered": [f"{r['project']} {r['risk']}" for r in rows]}


def _run(store: Store, settings: Settings, when: datetime) -> list[dict[str, Any]]:
    return jobs.triggered(store, jobs.trigger_risks(store, settings, as_of=when))


def _row(risk: dict[str, Any]) -> dict[str, Any]:
    return {"project": risk["project"], "risk": risk["ref"], "title": risk["title"],
            "score": risk["score"], "owner": risk["owner"], "issue": risk["issue"],
            "action_items": ", ".join(a["ref"] for a in risk["actions"])}


def _emit(risk: dict[str, Any]) -> None:
    """``cep.risk.triggered``: the risk as resource, its project and new issue related."""
    key = risk["project"]
    resource = {"prefect.resource.id": f"cep.risk.{key}.{risk['ref']}",
                "prefect.resource.name": f"{key} {risk['ref']}"}
    issue = {"prefect.resource.id": f"cep.issue.{key}.{risk['issue']}",
             "prefect.resource.role": "issue"}
    payload = {k: risk[k] for k in ("project", "ref", "title", "score", "owner", "issue")}
    about("cep.risk.triggered", resource, payload, related=[related_project(key), issue])
