"""Property-based test: random actors fire random commands at one staffed project.

A hypothesis ``RuleBasedStateMachine`` keeps a pure model of the project (phase, the phase
it was held from, each guide's review state and tasks, the customer sign-off) and predicts,
for every call, whether the services accept it or which error refuses it, and how many audit
rows it writes. After every step it checks that

(a) no phase is skipped: the accepted ``advance`` moves of the audit trail follow
    initiation -> planning -> execution -> closing -> closed;
(b) the audit trail holds one row per accepted change, plus one per automatic start/rework
    of a draft/returned checklist, plus one per attempt refused by a rule
    (PermissionDenied, TransitionRefused); InvalidInput and NotFound write nothing;
(c) the database agrees with the model.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from cep_engine.errors import (
    CepError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TransitionRefused,
)
from cep_engine.services import projects, queries, readiness
from cep_engine.store.db import Store, make_engine
from tests.conftest import (
    COORD,
    NOW,
    PM,
    SENIOR,
    STAFF,
    _truncate,
    audit_count,
    staff_project,
)

OUTSIDER = "olly.outsider@cts.wa.gov"
"""Registered, but holds no role on the project."""
GHOST = "ghost@nowhere.gov"
"""Not registered at all: every call names an unknown person (NotFound, nothing audited)."""
ACTORS = [*STAFF, OUTSIDER, GHOST]
CHAIN = ["initiation", "planning", "execution", "closing", "closed"]
OPEN = CHAIN[:4]
FINAL = {"closed", "cancelled"}
STAGES = ["pre_cutover", "cutover", "post_cutover"]
GATE = {"execution": "pre_cutover", "closing": "cutover", "closed": "post_cutover"}
"""The guide whose validation the advance into each phase needs."""
PHASE_ROLES = {
    "advance": {"assigned_pm", "senior_pm"},
    "hold": {"assigned_pm", "senior_pm"},
    "resume": {"assigned_pm", "senior_pm"},
    "cancel": {"project_sponsor", "executive_sponsor"},
}
PHASE_TRIGGERS = list(PHASE_ROLES)
KEY = "SDC-042"

Outcome = type[CepError] | None
"""``None`` for accepted, else the error class the services must raise."""


def _roles(actor: str) -> set[str]:
    return {STAFF[actor]} if actor in STAFF else set()


def actor_for(role_holder: str) -> st.SearchStrategy[str]:
    """Half the time the person whose role fits, else anyone (so refusals stay common)."""
    return st.one_of(st.just(role_holder), st.sampled_from(ACTORS))


@dataclass
class Expect:
    """What a call should do: its outcome, the audit rows it writes, whether it reopens."""

    outcome: Outcome
    rows: int = 0
    reopens: bool = False
    either: bool = False
    """True where the model accepts both outcomes."""


@dataclass
class Model:
    """The project as the test believes it is."""

    phase: str = "initiation"
    held_from: str | None = None
    guides: dict[str, str] = field(default_factory=lambda: dict.fromkeys(STAGES, "draft"))
    tasks: dict[str, list[bool]] = field(default_factory=dict)
    signoff: bool = False


class ProjectMachine(RuleBasedStateMachine):
    """One staffed project driven by random commands from random actors."""

    make_store: ClassVar[Callable[[], Store]]
    """Returns a store holding :data:`KEY` staffed by ``staff_project`` plus :data:`OUTSIDER`."""

    def __init__(self) -> None:
        super().__init__()
        self.store = type(self).make_store()
        self.clock = itertools.count(1)
        self.model = Model()
        self.accepted = 0
        self.refused_by_rule = 0
        self.refused_quietly = 0
        self.reopens = 0
        self.baseline = 0
        self.moves_checked = 0

    @initialize(depth=st.integers(0, 4))
    def start(self, depth: int) -> None:
        """Read the staffed project, then walk the intended path ``depth`` phases forward,
        so that every phase gets its share of random commands (those calls are predicted and
        counted like any other)."""
        with self.store.reading() as s:
            shown = queries.show_project(s, KEY)
        self.model.tasks = {g["stage"]: [False] * g["tasks"] for g in shown["guides"]}
        self.baseline = audit_count(self.store)
        for _ in range(depth):
            self.pass_the_next_gate()
            self.manager_moves_the_phase("advance", PM)
        self.check_phase_moves()

    def teardown(self) -> None:
        validated = sum(state == "validated" for state in self.model.guides.values())
        event(f"ended in {self.model.phase} with {validated} validated guide(s)")
        self.store.dispose()

    def now(self) -> datetime:
        return NOW + timedelta(minutes=next(self.clock))

    # -- running a call against its prediction ------------------------------------------

    def run(self, expect: Expect, call: Callable[[], object]) -> bool:
        """Make the call, check it against ``expect``; True when it was accepted."""
        try:
            call()
        except CepError as exc:
            got: Outcome = type(exc)
        else:
            got = None
        if expect.either and got in (None, PermissionDenied):
            expect = (Expect(None, expect.rows, expect.reopens) if got is None
                      else Expect(PermissionDenied, 1))
        assert got is expect.outcome, f"expected {expect.outcome}, got {got}"
        if got is None:
            self.accepted += 1
            self.reopens += int(expect.reopens)
        elif got in (PermissionDenied, TransitionRefused):
            self.refused_by_rule += 1
        else:
            self.refused_quietly += 1
        return got is None

    # -- phase ---------------------------------------------------------------------------

    def expect_phase(self, trigger: str, actor: str) -> tuple[Expect, str | None]:
        m = self.model
        if actor == GHOST:
            return Expect(NotFound), None
        if not _roles(actor) & PHASE_ROLES[trigger]:
            return Expect(PermissionDenied, 1), None
        dest: str | None = None
        if trigger == "advance" and m.phase in OPEN:
            nxt = CHAIN[CHAIN.index(m.phase) + 1]
            gate_ok = nxt not in GATE or m.guides[GATE[nxt]] == "validated"
            if nxt == "closed":
                gate_ok = gate_ok and m.signoff
            dest = nxt if gate_ok else None
        elif trigger == "hold" and m.phase in OPEN:
            dest = "on_hold"
        elif trigger == "resume" and m.phase == "on_hold":
            dest = m.held_from
        elif trigger == "cancel" and m.phase not in FINAL:
            dest = "cancelled"
        return (Expect(None, 1), dest) if dest else (Expect(TransitionRefused, 1), None)

    @rule(trigger=st.sampled_from(PHASE_TRIGGERS), actor=st.sampled_from(ACTORS))
    def fire_phase(self, trigger: str, actor: str) -> None:
        expect, dest = self.expect_phase(trigger, actor)
        if self.run(expect, lambda: projects.fire_phase(
                self.store, KEY, trigger, actor=actor, now=self.now())):
            assert dest is not None
            self.model.held_from = self.model.phase if dest == "on_hold" else None
            self.model.phase = dest

    @rule(trigger=st.sampled_from(["advance", "advance", "advance", "hold", "resume"]),
          actor=st.sampled_from([PM, SENIOR]))
    def manager_moves_the_phase(self, trigger: str, actor: str) -> None:
        self.fire_phase(trigger, actor)

    # -- readiness -------------------------------------------------------------------------

    def expect_edit(self, stage: str, actor: str) -> Expect:
        """A task change: members only; refused once submitted; reopens draft/returned."""
        state = self.model.guides[stage]
        if not _roles(actor):
            return Expect(PermissionDenied, 1)
        if state in ("submitted", "validated") or self.model.phase in FINAL:
            return Expect(TransitionRefused, 1)
        if state in ("draft", "returned"):
            return Expect(None, 2, reopens=True)
        return Expect(None, 1)

    def reopened(self, stage: str) -> None:
        if self.model.guides[stage] in ("draft", "returned"):
            self.model.guides[stage] = "in_progress"

    @rule(stage=st.sampled_from(STAGES), number=st.integers(1, 7), done=st.booleans(),
          actor=actor_for(COORD))
    def set_task_done(self, stage: str, number: int, done: bool, actor: str) -> None:
        tasks = self.model.tasks[stage]
        if actor == GHOST or number > len(tasks):
            expect = Expect(NotFound)
        elif tasks[number - 1] == done:
            expect = Expect(InvalidInput)
        else:
            expect = self.expect_edit(stage, actor)
        if self.run(expect, lambda: readiness.set_task_done(
                self.store, KEY, stage, number, actor=actor, now=self.now(), done=done)):
            self.reopened(stage)
            tasks[number - 1] = done

    @rule(stage=st.sampled_from(STAGES), actor=actor_for(COORD))
    def complete_every_task(self, stage: str, actor: str) -> None:
        """Mark each open task done, one call each (gets the review loop going)."""
        for number, done in enumerate(list(self.model.tasks[stage]), start=1):
            if not done:
                self.set_task_done(stage, number, True, actor)

    @rule(stage=st.sampled_from(STAGES), actor=actor_for(COORD))
    def add_task(self, stage: str, actor: str) -> None:
        expect = Expect(NotFound) if actor == GHOST else self.expect_edit(stage, actor)
        if self.run(expect, lambda: readiness.add_task(
                self.store, KEY, stage, "Extra evidence attached", actor=actor, now=self.now())):
            self.reopened(stage)
            self.model.tasks[stage].append(False)

    @rule(stage=st.sampled_from(STAGES), signed=st.booleans(), actor=actor_for(COORD))
    def submit(self, stage: str, signed: bool, actor: str) -> None:
        m = self.model
        if actor == GHOST:
            expect = Expect(NotFound)
        elif "implementation_coordinator" not in _roles(actor):
            expect = Expect(PermissionDenied, 1)
        elif (m.guides[stage] != "in_progress" or not all(m.tasks[stage]) or not signed
              or m.phase in FINAL):
            expect = Expect(TransitionRefused, 1)
        else:
            expect = Expect(None, 1)
        signer, attest = ("Casey Rivera", "All tasks are complete.") if signed else ("", "")
        if self.run(expect, lambda: readiness.submit(
                self.store, KEY, stage, signer=signer, attestation=attest, actor=actor,
                now=self.now())):
            m.guides[stage] = "submitted"

    @rule(stage=st.sampled_from(STAGES), decision=st.sampled_from(["validate", "return"]),
          comment=st.sampled_from(["", "Attach the test results."]), actor=actor_for(PM))
    def review(self, stage: str, decision: str, comment: str, actor: str) -> None:
        m = self.model
        if actor == GHOST:
            expect = Expect(NotFound)
        elif "assigned_pm" not in _roles(actor):
            expect = Expect(PermissionDenied, 1)
        elif (m.guides[stage] != "submitted" or (decision == "return" and not comment)
              or m.phase in FINAL):
            expect = Expect(TransitionRefused, 1)
        else:
            expect = Expect(None, 1)
        if self.run(expect, lambda: readiness.review(
                self.store, KEY, stage, decision, actor=actor, now=self.now(),
                comment=comment)):
            m.guides[stage] = "validated" if decision == "validate" else "returned"

    @rule()
    def pass_the_next_gate(self) -> None:
        """The intended path, call by call: the coordinator finishes and submits the guide the
        next advance needs, the PM validates it, and in closing the coordinator signs off (so that
        runs reach the later phases often)."""
        nxt = CHAIN[CHAIN.index(self.model.phase) + 1] if self.model.phase in OPEN else None
        if nxt not in GATE:
            return
        stage = GATE[nxt]
        self.complete_every_task(stage, COORD)
        self.submit(stage, True, COORD)
        self.review(stage, "validate", "", PM)
        if nxt == "closed":
            self.record_signoff(COORD)

    @rule(actor=actor_for(COORD))
    def record_signoff(self, actor: str) -> None:
        m = self.model
        if actor == GHOST:
            expect = Expect(NotFound)
        elif "implementation_coordinator" not in _roles(actor):
            expect = Expect(PermissionDenied, 1)
        elif m.phase != "closing" or m.signoff:
            expect = Expect(TransitionRefused, 1)
        else:
            expect = Expect(None, 1)
        if self.run(expect, lambda: projects.record_signoff(
                self.store, KEY, "Casey Rivera", "Accepted.", actor=actor, now=self.now())):
            m.signoff = True

    # -- invariants ------------------------------------------------------------------------

    def check_phase_moves(self) -> None:
        """(a) The accepted ``advance`` moves of ``queries.history`` follow the chain."""
        with self.store.reading() as s:
            trail = queries.history(s, KEY)
        moves = [(a["from"], a["to"]) for a in trail
                 if a["accepted"] and a["entity_type"] == "project" and a["trigger"] == "advance"]
        assert moves == list(itertools.pairwise(CHAIN))[: len(moves)]
        self.moves_checked = self.accepted

    @invariant()
    def no_phase_is_skipped(self) -> None:
        if self.accepted != self.moves_checked:  # the trail only grows; re-read it when it did
            self.check_phase_moves()

    @invariant()
    def audit_rows_match_the_calls_and_the_database_agrees_with_the_model(self) -> None:
        """(b) and (c), read in one connection to keep each step cheap."""
        m = self.model
        with self.store.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT count(*), coalesce(sum(CASE WHEN accepted THEN 0 ELSE 1 END), 0) "
                "FROM audit_log")).one()
            phase = conn.execute(text("SELECT phase, held_from FROM projects")).one()
            guides = {str(stage): str(state) for stage, state in conn.execute(
                text("SELECT stage, state FROM readiness_guides"))}
            tasks = conn.execute(text(
                "SELECT g.stage, t.done_at IS NOT NULL FROM readiness_tasks t "
                "JOIN readiness_guides g ON g.id = t.guide_id ORDER BY g.stage, t.number")).all()
            signed = conn.execute(text("SELECT count(*) FROM customer_signoffs")).scalar_one()
        assert tuple(rows) == (self.baseline + self.accepted + self.reopens
                               + self.refused_by_rule, self.refused_by_rule)
        assert tuple(phase) == (m.phase, m.held_from)
        assert guides == m.guides
        by_stage: dict[str, list[bool]] = {stage: [] for stage in STAGES}
        for stage, done in tasks:
            by_stage[stage].append(bool(done))
        assert by_stage == m.tasks
        assert signed == int(m.signoff)


def _machine(make_store: Callable[[], Store]) -> type[ProjectMachine]:
    return type("ProjectMachineOn", (ProjectMachine,), {"make_store": staticmethod(make_store)})


def _settings(examples: int, steps: int) -> settings:
    """``HYPOTHESIS_SCALE=10`` runs ten times the examples (for a longer hunt)."""
    examples *= int(os.environ.get("HYPOTHESIS_SCALE", "1"))
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    database=None, suppress_health_check=[HealthCheck.too_slow])


def _staff(store: Store) -> Store:
    staff_project(store, KEY)
    projects.add_person(store, OUTSIDER, "Olly Outsider", now=NOW)
    return store


def test_random_commands_on_sqlite(sqlite_template: Path, tmp_path: Path) -> None:
    staffed = tmp_path / "staffed.db"
    shutil.copy(sqlite_template, staffed)
    _staff(Store.from_url(f"sqlite:///{staffed}")).dispose()
    counter = itertools.count()

    def fresh() -> Store:
        path = tmp_path / f"example-{next(counter)}.db"
        shutil.copy(staffed, path)
        return Store.from_url(f"sqlite:///{path}")

    run_state_machine_as_test(_machine(fresh), settings=_settings(30, 25))


@pytest.fixture
def pg_machine_store(pg_database: str) -> Iterator[Store]:
    """The session's PostgreSQL database, without waiting for the disk at each commit."""
    store = Store(make_engine(pg_database, connect_args={"options": "-c synchronous_commit=off"}))
    yield store
    store.dispose()


@pytest.mark.postgres
def test_random_commands_on_postgresql(pg_machine_store: Store) -> None:
    def fresh() -> Store:
        _truncate(pg_machine_store)
        return _staff(_NoDispose(pg_machine_store.engine))

    run_state_machine_as_test(_machine(fresh), settings=_settings(8, 15))


class _NoDispose(Store):
    """The shared PostgreSQL store: examples truncate it, and only the fixture disposes it."""

    def dispose(self) -> None:
        pass


# -- known bug, kept visible --------------------------------------------------------------


def test_outsider_cannot_edit_tasks(sqlite_template: Path, tmp_path: Path) -> None:
    path = tmp_path / "cep.db"
    shutil.copy(sqlite_template, path)
    store = Store.from_url(f"sqlite:///{path}")
    try:
        staff_project(store, KEY)
        projects.add_person(store, OUTSIDER, "Olly Outsider", now=NOW)
        with pytest.raises(PermissionDenied):
            readiness.set_task_done(store, KEY, "cutover", 1, actor=OUTSIDER, now=NOW)
        readiness.set_task_done(store, KEY, "cutover", 1, actor=COORD, now=NOW)  # in_progress
        calls: list[Callable[[], Any]] = [
            lambda: readiness.set_task_done(store, KEY, "cutover", 2, actor=OUTSIDER, now=NOW),
            lambda: readiness.add_task(store, KEY, "cutover", "Sneaky", actor=OUTSIDER, now=NOW),
        ]
        for call in calls:
            with pytest.raises(PermissionDenied):
                call()
    finally:
        store.dispose()
