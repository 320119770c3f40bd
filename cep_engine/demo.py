"""``cep demo``: a sample project walked through its whole life, printing each step.

It goes as far as the engine goes: roles and the phase gates, the three readiness reviews (the
first one returned and resubmitted), a critical issue that blocks cutover and climbs the
escalation ladder, a risk that triggers into an issue and an action item, the customer
sign-off, and the notifications all of that queued in the outbox. The demo keeps its own
clock: it starts now, moves a minute per step, and jumps a week ahead for the escalation
sweep, so the audit trail reads in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from cep_engine.errors import CepError, NotFound
from cep_engine.escalation.policy import EscalationPolicy, load_policy
from cep_engine.escalation.sweep import run_sweep
from cep_engine.guides import load_guides
from cep_engine.services import (
    _load,
    actions,
    issue_queries,
    issues,
    log_queries,
    outbox_queries,
    projects,
    queries,
    readiness,
    risks,
)
from cep_engine.states import Stage
from cep_engine.store.db import Store

if TYPE_CHECKING:
    from cep_engine.cli._runtime import Runtime

PEOPLE = {
    "pm": ("pat.pm@cts.wa.gov", "Pat Morgan", "assigned_pm"),
    "liaison": ("lee.liaison@cts.wa.gov", "Lee Chen", "client_liaison"),
    "coord": ("casey.coord@dol.wa.gov", "Casey Rivera", "implementation_coordinator"),
    "senior": ("sam.senior@cts.wa.gov", "Sam Okafor", "senior_pm"),
    "sponsor": ("cto@cts.wa.gov", "Jordan Ellis", "project_sponsor"),
    "exec": ("deputy@cts.wa.gov", "Robin Hayes", "executive_sponsor"),
    "team": ("tess.team@cts.wa.gov", "Tess Nguyen", "cts_team_member"),
}
PM, COORD, TEAM = PEOPLE["pm"][0], PEOPLE["coord"][0], PEOPLE["team"][0]
SWEEP_JUMP = timedelta(days=7)
"""How far the demo's clock jumps before the escalation sweep: past every critical rung."""


@dataclass
class Walk:
    """The demo's store, project, escalation policy and clock, and how it prints a step."""

    store: Store
    key: str
    policy: EscalationPolicy
    at: datetime
    say: Callable[[str], None]
    refusals: list[str] = field(default_factory=list)

    def now(self) -> datetime:
        """The demo clock: one minute later at every call."""
        self.at += timedelta(minutes=1)
        return self.at

    def step(self, text: str, action: Callable[[], Any]) -> Any:
        """Run ``action`` and print ``ok`` or the one-line refusal; return its result."""
        try:
            result = action()
        except CepError as exc:
            self.say(f"refused {text}\n        {exc.message}")
            self.refusals.append(exc.message)
            return None
        self.say(f"ok      {text}")
        return result


def run_demo(runtime: Runtime, key: str) -> None:
    """Create ``key`` with its people and walk it from initiation to closed."""
    from rich.markup import escape

    from cep_engine.cli._runtime import console, now
    from cep_engine.store.migrate import upgrade

    store = runtime.store(require_schema=False)
    upgrade(store)
    norm = _refuse_existing(store, key)
    policy = load_policy(runtime.settings.config_dir / "escalation.yaml")
    walk = Walk(store, norm, policy, now(), lambda text: console.print(escape(text)))
    _create(walk, load_guides(runtime.settings.config_dir))
    _review(walk, Stage.PRE_CUTOVER, return_first=True)
    _advance(walk, "planning -> execution")
    issue = _blocking_issue(walk)
    _risk(walk)
    walk.step(f"PM resolves issue #{issue}", lambda: issues.change_status(
        store, norm, issue, "resolve", actor=PM, now=walk.now(),
        note="Firewall rules applied and tested."))
    _advance(walk, "execution -> closing (no critical issue open now)")
    _review(walk, Stage.POST_CUTOVER, return_first=False)
    walk.step("customer sign-off by the coordinator", lambda: projects.record_signoff(
        store, norm, PEOPLE["coord"][1], "Accepted.", actor=COORD, now=walk.now()))
    _advance(walk, "closing -> closed")
    _outbox(walk)
    walk.say(f"done: see `cep project show {norm}`, `cep history {norm}`, "
             f"`cep issue show {norm} {issue}` and `cep outbox list --project {norm}`")


def _refuse_existing(store: Store, key: str) -> str:
    """The demo creates its project: refuse a key that is taken, naming the way out."""
    from cep_engine.services import _validate

    norm = _validate.project_key(key)
    with store.reading() as session:
        try:
            _load.project(session, norm)
        except NotFound:
            return norm
    where = store.engine.url.render_as_string(hide_password=True)
    raise CepError(f"project {norm} already exists in {where}; run the demo on a fresh data "
                   "directory (`cep --data-dir DIR demo`) or give another --key")


def _create(walk: Walk, guides: Any) -> None:
    """The project, its roles, and the first gate refused until the core roles are in."""
    if not _person_exists(walk.store, PM):
        projects.add_person(walk.store, PM, PEOPLE["pm"][1], now=walk.now())
    projects.create_project(walk.store, walk.key, "Agency servers move to the SDC",
                            "Department of Licensing", actor=PM, guides=guides, now=walk.now())
    walk.say(f"created {walk.key}: phase initiation")
    first, *others = PEOPLE.values()
    walk.step(f"assign {first[2]} to {first[0]}", lambda: projects.assign_role(
        walk.store, walk.key, first[2], first[0], actor=PM, now=walk.now()))
    _advance(walk, "initiation -> planning while the liaison and coordinator are missing")
    for email, name, role in others:
        walk.step(f"assign {role} to {email}", partial(_assign, walk, role, email, name))
    _advance(walk, "initiation -> planning")


def _assign(walk: Walk, role: str, email: str, name: str) -> None:
    projects.assign_role(walk.store, walk.key, role, email, actor=PM, now=walk.now(), name=name)


def _action_done(walk: Walk, number: int) -> None:
    actions.change_status(walk.store, walk.key, number, "done", actor=TEAM, now=walk.now())


def _person_exists(store: Store, email: str) -> bool:
    with store.reading() as session:
        try:
            _load.person(session, email)
        except NotFound:
            return False
    return True


def _advance(walk: Walk, text: str) -> None:
    walk.step(f"advance {text}", lambda: projects.fire_phase(
        walk.store, walk.key, "advance", actor=PM, now=walk.now()))


def _review(walk: Walk, stage: Stage, *, return_first: bool) -> None:
    """The coordinator does every task and submits; the PM returns (once) or validates."""
    store, key, name = walk.store, walk.key, stage.value
    with store.reading() as session:
        tasks = queries.show_checklist(session, key, name)["tasks"]
    for task in tasks:
        readiness.set_task_done(store, key, name, task["number"], actor=COORD, now=walk.now())

    def submit() -> None:
        readiness.submit(store, key, name, signer=PEOPLE["coord"][1],
                         attestation="All tasks are complete.", actor=COORD, now=walk.now())

    walk.step(f"{name}: {len(tasks)} tasks done by the coordinator, signed checklist "
              "submitted", submit)
    if return_first:
        walk.step(f"{name}: PM returns it", lambda: readiness.review(
            store, key, name, "return", actor=PM, now=walk.now(),
            comment="Attach the connectivity test results."))
        walk.step(f"{name}: coordinator adds the missing evidence task", lambda: (
            readiness.add_task(store, key, name, "Connectivity test results attached",
                               actor=COORD, now=walk.now(), party="customer"),
            readiness.set_task_done(store, key, name, len(tasks) + 1, actor=COORD,
                                    now=walk.now())))
        walk.step(f"{name}: resubmitted (version 2)", submit)
    walk.step(f"{name}: PM validates readiness", lambda: readiness.review(
        store, key, name, "validate", actor=PM, now=walk.now()))


def _blocking_issue(walk: Walk) -> int:
    """A critical issue blocks cutover, sits idle, and climbs the whole ladder in one sweep."""
    store, key = walk.store, walk.key
    issue = walk.step("team member opens a critical issue owned by the PM", lambda: (
        issues.open_issue(store, key, "Firewall rules for the agency VLAN missing",
                          priority_name="critical", actor=TEAM, now=walk.now(),
                          policy=walk.policy, owner=PM)))
    _review(walk, Stage.CUTOVER, return_first=False)
    _advance(walk, "execution -> closing while the critical issue is open")
    walk.at += SWEEP_JUMP
    report = run_sweep(store, as_of=walk.now(), calendar=walk.policy.business_calendar)
    walk.say(f"ok      escalation sweep as of {walk.at:%Y-%m-%d %H:%M %Z} (a week later): "
             f"escalated {report.total} rung(s)")
    with store.connect() as conn:
        shown = issue_queries.show_issue(conn, key, issue.number)
    for rung in shown["escalations"]:
        walk.say(f"        {rung['level']}: told {', '.join(rung['to']) or 'nobody'}"
                 + (f", copied {', '.join(rung['cc'])}" if rung["cc"] else ""))
    return int(issue.number)


def _risk(walk: Walk) -> None:
    """A risk is logged, then triggers: an issue and an action item follow."""
    store, key = walk.store, walk.key
    data = risks.RiskInput.checked("Vendor delays the rack delivery", 3, 4,
                                   trigger_text="Rack not shipped two weeks before cutover",
                                   owner=TEAM, mitigation="Use the spare rack in row 7")
    risk = walk.step("PM logs risk R-1 (probability 3, impact 4)",
                     lambda: risks.add_risk(store, key, data, actor=PM, now=walk.now()))
    if risk is None:
        return
    walk.step("PM triggers R-1: it opens an issue and an action item for the owner",
              lambda: risks.trigger_risk(store, key, risk.number, actor=PM, now=walk.now(),
                                         policy=walk.policy))
    with store.connect() as conn:
        items = log_queries.list_actions(conn, key)
        opened = issue_queries.list_issues(conn, key)
    for row in opened[-1:]:
        walk.say(f"        issue #{row['number']} ({row['priority']}): {row['title']}")
    for item in items:
        walk.say(f"        action {item['ref']} for {item['owner']}: {item['title']}")
        walk.step(f"owner marks {item['ref']} done", partial(
            _action_done, walk, int(item["number"])))


def _outbox(walk: Walk) -> None:
    """What the walk queued for email, by kind (delivered by `cep notify deliver`)."""
    with walk.store.connect() as conn:
        rows = outbox_queries.list_messages(conn, project=walk.key, limit=10_000)
    kinds = Counter(row["kind"] for row in rows)
    walk.say(f"outbox: {len(rows)} notification(s) queued in the same transactions as the "
             "changes: " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))
    walk.say("        deliver them with `cep notify deliver` (SMTP settings: [notify])")
