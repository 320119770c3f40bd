"""The ``phase-transition`` flow: advance, hold, resume or cancel a project."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger

from cep_engine.errors import CepError
from cep_engine.services.projects import fire_phase
from workflows._support import emit, flow_store, label_run, refused


class PhaseTrigger(StrEnum):
    """What a PM (or a sponsor, for cancel) asks of the project's phase."""

    ADVANCE = "advance"
    HOLD = "hold"
    RESUME = "resume"
    CANCEL = "cancel"


@flow(
    name="phase-transition",
    flow_run_name="{project} {trigger} by {actor}",
    description="Fire a phase trigger on a project: advance, hold, resume or cancel.",
    retries=0,
    validate_parameters=True,
    persist_result=False,
)
async def phase_transition(
    project: str, trigger: PhaseTrigger, actor: str, reason: str = ""
) -> dict[str, Any] | State[Any]:
    """Fire ``trigger`` on ``project`` as ``actor``; fails with the reason if refused.

    Args:
        project: Project key, e.g. SDC-042.
        trigger: advance, hold, resume or cancel.
        actor: Email of the person acting (assigned PM or senior PM; a sponsor to cancel).
        reason: Why; kept in the audit trail.
    """
    now = datetime.now(UTC)
    key, what = project.strip().upper(), PhaseTrigger(trigger).value
    tags = [f"project:{key}", "change:phase", f"trigger:{what}"]
    try:
        fired = await asyncio.to_thread(
            fire_phase, flow_store(), key, what, actor=actor, now=now, reason=reason
        )
    except CepError as exc:
        await label_run(f"{key} {what} by {actor} (refused)", tags)
        return refused(exc)
    change = {"project": key, "trigger": what, "from": fired.source, "to": fired.dest,
              "actor": actor, "reason": reason, "at": now.isoformat()}
    emit("cep.phase.changed", key, change)
    await label_run(f"{key} {fired.source}->{fired.dest} by {actor}", tags)
    get_run_logger().info("%s: %s -> %s (%s by %s)", key, fired.source, fired.dest, what, actor)
    return change
