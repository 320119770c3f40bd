"""The ``readiness-review`` flow: submit, validate or return a readiness checklist."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger

from cep_engine.errors import CepError
from cep_engine.services import readiness
from cep_engine.states import Stage
from workflows._support import emit, flow_store, label_run, refused


class ReviewAction(StrEnum):
    """Submit (implementation coordinator), validate or return (assigned PM)."""

    SUBMIT = "submit"
    VALIDATE = "validate"
    RETURN = "return"


EVENTS = {
    ReviewAction.SUBMIT: "cep.checklist.submitted",
    ReviewAction.VALIDATE: "cep.checklist.validated",
    ReviewAction.RETURN: "cep.checklist.returned",
}


def _act(key: str, stage: Stage, action: ReviewAction, actor: str, now: datetime,
         signer: str, attestation: str, comment: str) -> dict[str, Any]:
    store = flow_store()
    if action is ReviewAction.SUBMIT:
        sub = readiness.submit(store, key, stage.value, signer=signer, attestation=attestation,
                               actor=actor, now=now)
        return {"version": sub.number, "state": "submitted", "signer": sub.signer_name}
    result = readiness.review(store, key, stage.value, action.value, actor=actor, now=now,
                              comment=comment)
    return {"state": result.decision, "comment": result.comment}


@flow(
    name="readiness-review",
    flow_run_name="{project} {stage} {action} by {actor}",
    description="Submit, validate or return a project's readiness checklist.",
    retries=0,
    validate_parameters=True,
    persist_result=False,
)
async def readiness_review(
    project: str, stage: Stage, action: ReviewAction, actor: str,
    signer: str = "", attestation: str = "", comment: str = "",
) -> dict[str, Any] | State[Any]:
    """Act on the ``stage`` checklist of ``project``; fails with the reason if refused.

    Args:
        project: Project key, e.g. SDC-042.
        stage: pre_cutover, cutover or post_cutover.
        action: submit (implementation coordinator), validate or return (assigned PM).
        actor: Email of the person acting.
        signer: Submit only: name of the person signing.
        attestation: Submit only: the attestation text of the signature.
        comment: Validate or return: a note; a return needs one.
    """
    now = datetime.now(UTC)
    key, the_stage, act = project.strip().upper(), Stage(stage), ReviewAction(action)
    tags = [f"project:{key}", "change:checklist", f"checklist:{the_stage.value}"]
    what = f"{key} {the_stage.value} {act.value} by {actor}"
    try:
        outcome = await asyncio.to_thread(
            _act, key, the_stage, act, actor, now, signer, attestation, comment
        )
    except CepError as exc:
        await label_run(f"{what} (refused)", tags)
        return refused(exc)
    change = {"project": key, "stage": the_stage.value, "action": act.value, "actor": actor,
              "at": now.isoformat(), **outcome}
    checklist = {"prefect.resource.id": f"cep.checklist.{key}.{the_stage.value}",
                 "prefect.resource.role": "checklist"}
    emit(EVENTS[act], key, change, related=[checklist])
    await label_run(what, tags)
    get_run_logger().info("%s: checklist %s is %s", key, the_stage.value, outcome["state"])
    return change
