"""The outbox rows the core use cases queue, with who hears about what.

Each function returns one :func:`~cep_engine.notify.outbox.outbox_row` for the use case to
:func:`~cep_engine.notify.outbox.enqueue` in its own transaction. Keys are derived from what
makes the event unique, so a retried use case can never queue it twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from cep_engine.notify.outbox import Kind, outbox_row
from cep_engine.roles import Role
from cep_engine.states import Fired
from cep_engine.store.models import ChecklistSubmission, ReadinessGuide

_COORD, _LIAISON = Role.IMPLEMENTATION_COORDINATOR.value, Role.CLIENT_LIAISON.value

CHECKLIST_AUDIENCE: dict[str, tuple[Kind, list[str], list[str]]] = {
    "submitted": (Kind.CHECKLIST_SUBMITTED, [Role.ASSIGNED_PM.value], [_LIAISON]),
    "returned": (Kind.CHECKLIST_RETURNED, [_COORD], [_LIAISON]),
    "validated": (Kind.CHECKLIST_VALIDATED, [_COORD, _LIAISON], []),
}
"""Checklist event -> (kind, to roles, cc roles)."""

PHASE_AUDIENCE = ([_LIAISON, _COORD], [Role.SENIOR_PM.value])
"""Phase change -> (to roles, cc roles)."""


class VersionedProject(Protocol):
    """What a phase message reads of its project (a mapped ``Project`` or a row)."""

    @property
    def id(self) -> int: ...

    @property
    def version(self) -> int: ...


def checklist(
    guide: ReadinessGuide, submission: ChecklistSubmission, event: str, *, actor: str,
    now: datetime, comment: str = "",
) -> dict[str, Any]:
    """The message of a checklist ``event``: submitted, returned or validated."""
    kind, to, cc = CHECKLIST_AUDIENCE[event]
    context: dict[str, Any] = {
        "stage": guide.stage, "guide_title": guide.title, "submission_number": submission.number,
        "actor": actor, "at": now.isoformat(),
    }
    if event == "submitted":
        context.update(signer=submission.signer_name, submitted_by=actor,
                       task_count=len(submission.tasks))
    else:
        context.update(reviewer=actor, comment=comment)
    return outbox_row(
        key=f"checklist:{guide.id}:{submission.number}:{event}", kind=kind,
        project_id=guide.project_id, context=context, now=now, to_roles=to, cc_roles=cc,
    )


def phase_changed(
    project: VersionedProject, fired: Fired, *, actor: str, now: datetime, reason: str = ""
) -> dict[str, Any]:
    """The message of a phase transition; keyed by the project's new version."""
    to, cc = PHASE_AUDIENCE
    return outbox_row(
        key=f"phase:{project.id}:{project.version}", kind=Kind.PHASE_CHANGED,
        project_id=project.id, now=now, to_roles=to, cc_roles=cc,
        context={"from_phase": fired.source, "to_phase": fired.dest, "trigger": fired.trigger,
                 "actor": actor, "reason": reason, "at": now.isoformat()},
    )
