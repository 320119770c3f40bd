"""``cep demo``: a sample project walked through its whole life, printing each step."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from cep_engine.errors import CepError
from cep_engine.guides import load_guides
from cep_engine.services import projects, readiness
from cep_engine.states import Stage

if TYPE_CHECKING:
    from cep_engine.cli._runtime import Runtime

PEOPLE = {
    "pm": ("pat.pm@cts.wa.gov", "Pat Morgan", "assigned_pm"),
    "liaison": ("lee.liaison@cts.wa.gov", "Lee Chen", "client_liaison"),
    "coord": ("casey.coord@dol.wa.gov", "Casey Rivera", "implementation_coordinator"),
    "senior": ("sam.senior@cts.wa.gov", "Sam Okafor", "senior_pm"),
    "sponsor": ("cto@cts.wa.gov", "Jordan Ellis", "project_sponsor"),
}


def run_demo(runtime: Runtime, key: str) -> None:
    """Create ``key`` with five people and walk it from initiation to closed."""
    from cep_engine.cli._runtime import console, now
    from cep_engine.store.migrate import upgrade

    store = runtime.store(require_schema=False)
    upgrade(store)
    guides = load_guides(runtime.settings.config_dir)
    pm, coord = PEOPLE["pm"][0], PEOPLE["coord"][0]

    def step(text: str, action: Callable[[], Any]) -> None:
        try:
            action()
            console.print(f"[green]ok[/green]      {text}")
        except CepError as exc:
            console.print(f"[yellow]refused[/yellow] {text}\n        {exc.message}")

    if not _person_exists(store, pm):
        projects.add_person(store, pm, PEOPLE["pm"][1], now=now())
    projects.create_project(store, key, "Agency servers move to the SDC",
                            "Department of Licensing", actor=pm, guides=guides, now=now())
    console.print(f"created {key}: phase initiation")
    first, *others = PEOPLE.values()
    step(f"assign {first[2]} to {first[0]}", partial(
        projects.assign_role, store, key, first[2], first[0], actor=pm, now=now()))
    step("advance while the liaison and coordinator are missing",
         lambda: _fire(store, key, "advance", pm))
    for email, name, role in others:
        step(f"assign {role} to {email}", partial(
            projects.assign_role, store, key, role, email, actor=pm, now=now(), name=name))
    step("advance initiation -> planning", lambda: _fire(store, key, "advance", pm))
    for stage in Stage:
        _review_stage(store, key, stage, step, return_first=stage is Stage.PRE_CUTOVER)
        if stage is Stage.POST_CUTOVER:
            step("customer sign-off by the coordinator", lambda: projects.record_signoff(
                store, key, PEOPLE["coord"][1], "Accepted.", actor=coord, now=now()))
        step(f"advance after {stage.value} validation", lambda: _fire(store, key, "advance", pm))
    console.print(f"done: see `cep project show {key}` and `cep history {key}`")


def _person_exists(store: Any, email: str) -> bool:
    from cep_engine.errors import NotFound
    from cep_engine.services import _load

    with store.reading() as session:
        try:
            _load.person(session, email)
        except NotFound:
            return False
    return True


def _fire(store: Any, key: str, trigger: str, actor: str) -> None:
    from cep_engine.cli._runtime import now

    projects.fire_phase(store, key, trigger, actor=actor, now=now())


def _review_stage(store: Any, key: str, stage: Stage, step: Any, *, return_first: bool) -> None:
    from cep_engine.cli._runtime import now
    from cep_engine.services import queries

    pm, coord = PEOPLE["pm"][0], PEOPLE["coord"][0]
    with store.reading() as session:
        tasks = queries.show_checklist(session, key, stage.value)["tasks"]
    for task in tasks:
        readiness.set_task_done(store, key, stage.value, task["number"], actor=coord, now=now())
    console_note = f"{stage.value}: {len(tasks)} tasks done by the coordinator"

    def submit() -> None:
        readiness.submit(store, key, stage.value, signer=PEOPLE["coord"][1],
                         attestation="All tasks are complete.", actor=coord, now=now())

    step(console_note + ", signed checklist submitted", submit)
    if return_first:
        step(f"{stage.value}: PM returns it", lambda: readiness.review(
            store, key, stage.value, "return", actor=pm, now=now(),
            comment="Attach the connectivity test results."))
        step(f"{stage.value}: coordinator adds the missing evidence task", lambda: (
            readiness.add_task(store, key, stage.value, "Connectivity test results attached",
                               actor=coord, now=now(), party="customer"),
            readiness.set_task_done(store, key, stage.value, len(tasks) + 1, actor=coord,
                                    now=now())))
        step(f"{stage.value}: resubmitted (version 2)", submit)
    step(f"{stage.value}: PM validates readiness", lambda: readiness.review(
        store, key, stage.value, "validate", actor=pm, now=now()))
