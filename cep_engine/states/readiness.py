"""The readiness review machine, one per guide (pre-cutover, cutover, post-cutover).

draft -> in_progress -> submitted -> validated, or submitted -> returned -> in_progress ->
submitted again. The agency implementation coordinator submits a signed checklist once every
task is done; the assigned PM validates readiness or returns the checklist with a comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cep_engine.roles import Role
from cep_engine.states._table import Guard, MachineTable, Transition, sources


class Stage(StrEnum):
    """The cut-over stage a readiness guide covers."""

    PRE_CUTOVER = "pre_cutover"
    CUTOVER = "cutover"
    POST_CUTOVER = "post_cutover"


class ReviewState(StrEnum):
    """Where a readiness checklist stands in its review."""

    DRAFT = "draft"
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    VALIDATED = "validated"


@dataclass(frozen=True)
class ReadinessFacts:
    """What the readiness guards need: the checklist's tasks and the trigger's inputs."""

    task_count: int = 0
    open_tasks: tuple[int, ...] = ()
    signer_name: str = ""
    attestation: str = ""
    comment: str = ""


def has_tasks(facts: ReadinessFacts) -> str | None:
    """The checklist has at least one task."""
    if facts.task_count:
        return None
    return "the checklist has no tasks; add them with `cep checklist add-task`"


def all_tasks_done(facts: ReadinessFacts) -> str | None:
    """Every task of the checklist is done."""
    if not facts.open_tasks:
        return None
    numbers = ", ".join(f"#{n}" for n in facts.open_tasks)
    return f"task(s) {numbers} not done; mark them with `cep checklist done`"


def checklist_signed(facts: ReadinessFacts) -> str | None:
    """The submission carries a signature: the signer's name and an attestation text."""
    if facts.signer_name.strip() and facts.attestation.strip():
        return None
    return "the checklist is not signed; give --signer NAME and --attest TEXT"


def return_comment_given(facts: ReadinessFacts) -> str | None:
    """A returned checklist says why: the assigned PM gives a comment."""
    if facts.comment.strip():
        return None
    return "a returned checklist needs a comment saying what to rework; give --comment TEXT"


HAS_TASKS = Guard("has_tasks", has_tasks)
ALL_TASKS_DONE = Guard("all_tasks_done", all_tasks_done)
CHECKLIST_SIGNED = Guard("checklist_signed", checklist_signed)
RETURN_COMMENT_GIVEN = Guard("return_comment_given", return_comment_given)

R = ReviewState
_ANY_MEMBER = frozenset(Role)

READINESS_MACHINE: MachineTable[ReadinessFacts] = MachineTable(
    name="readiness",
    states=ReviewState,
    initial=R.DRAFT.value,
    final=frozenset({R.VALIDATED.value}),
    entity_label="checklist",
    transitions=(
        Transition("start", sources([R.DRAFT]), R.IN_PROGRESS),
        Transition(
            "submit",
            sources([R.IN_PROGRESS]),
            R.SUBMITTED,
            (HAS_TASKS, ALL_TASKS_DONE, CHECKLIST_SIGNED),
        ),
        Transition("validate", sources([R.SUBMITTED]), R.VALIDATED),
        Transition("return", sources([R.SUBMITTED]), R.RETURNED, (RETURN_COMMENT_GIVEN,)),
        Transition("rework", sources([R.RETURNED]), R.IN_PROGRESS),
    ),
    roles={
        "start": _ANY_MEMBER,
        "submit": frozenset({Role.IMPLEMENTATION_COORDINATOR}),
        "validate": frozenset({Role.ASSIGNED_PM}),
        "return": frozenset({Role.ASSIGNED_PM}),
        "rework": _ANY_MEMBER,
    },
)
"""The readiness review table: it runs the machine and generates its diagram and docs."""
