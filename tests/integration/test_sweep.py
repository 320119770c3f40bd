"""The escalation sweep on SQLite and PostgreSQL: every rung once, in order, exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cep_engine.errors import PermissionDenied, TransitionRefused
from cep_engine.escalation import sweep as sweep_mod
from cep_engine.escalation.policy import EscalationPolicy, load_policy
from cep_engine.escalation.sweep import run_sweep
from cep_engine.services import issues
from cep_engine.settings import REPO_CONFIG_DIR
from cep_engine.store.db import Store
from cep_engine.store.models import AuditEntry, Escalation, Issue, OutboxMessage
from tests.conftest import COORD, NOW, PM, SENIOR, SPONSOR, snapshot, staff_project

POLICY = load_policy(REPO_CONFIG_DIR / "escalation.yaml")
CAL = POLICY.business_calendar
H = timedelta(hours=1)
# NOW is Monday 2026-11-02 09:00 Pacific: critical climbs at 2h, 4h and 1 business day.


def sweep(store: Store, at: datetime, **kw: Any) -> Any:
    return run_sweep(store, as_of=at, calendar=CAL, **kw)


def open_issue(store: Store, key: str, prio: str = "critical", *,
               policy: EscalationPolicy = POLICY, at: datetime = NOW) -> int:
    return issues.open_issue(store, key, "Firewall rule missing", priority_name=prio, actor=PM,
                             now=at, policy=policy).number


def ladder(store: Store) -> list[tuple[int, str, int]]:
    with store.reading() as s:
        rows = s.execute(select(Issue.number, Escalation.level, Escalation.cycle)
                         .join(Issue, Issue.id == Escalation.issue_id)
                         .order_by(Escalation.id))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def counts(store: Store) -> tuple[int, int, int]:
    with store.reading() as s:
        return (
            s.scalar(select(func.count()).select_from(Escalation)) or 0,
            s.scalar(select(func.count()).select_from(OutboxMessage)
                     .where(OutboxMessage.kind == "escalation")) or 0,
            s.scalar(select(func.count()).select_from(AuditEntry)
                     .where(AuditEntry.trigger == "escalate")) or 0,
        )


def test_every_rung_once_and_in_order(store: Store) -> None:
    key = staff_project(store)
    open_issue(store, key)
    assert sweep(store, NOW + 1 * H).total == 0
    assert sweep(store, NOW + 2 * H).total == 1
    assert sweep(store, NOW + 3 * H).total == 0
    assert sweep(store, NOW + 4 * H).total == 1
    assert sweep(store, NOW + 23 * H).total == 0  # Tue 08:00: 8 of 9 business hours (1d)
    assert sweep(store, NOW + 24 * H).total == 1  # Tue 09:00: one business day idle
    assert sweep(store, NOW + 100 * H).total == 0
    assert ladder(store) == [(1, "senior_pm", 0), (1, "project_sponsor", 0),
                             (1, "executive_sponsor", 0)]
    assert counts(store) == (3, 3, 3)


def test_rerun_at_the_same_instant_does_nothing_twice(store: Store) -> None:
    key = staff_project(store)
    for _ in range(5):
        open_issue(store, key)
    first = sweep(store, NOW + 2 * H)
    second = sweep(store, NOW + 2 * H)
    assert (first.total, second.total) == (5, 0)
    assert counts(store) == (5, 5, 5)


def test_a_long_idle_issue_climbs_every_rung_in_one_sweep(store: Store) -> None:
    key = staff_project(store)
    open_issue(store, key)
    report = sweep(store, NOW + 72 * H)
    assert report.total == 3
    assert [lv for _, lv, _ in ladder(store)] == ["senior_pm", "project_sponsor",
                                                  "executive_sponsor"]


def test_outbox_row_names_roles_from_the_policy(store: Store) -> None:
    key = staff_project(store)
    open_issue(store, key)
    sweep(store, NOW + 2 * H)
    with store.reading() as s:
        msg = s.scalars(select(OutboxMessage)).one()
        entry = s.scalars(select(AuditEntry).where(AuditEntry.trigger == "escalate")).one()
    assert msg.idempotency_key.startswith("escalation:") and msg.idempotency_key.endswith(
        ":senior_pm:0")
    assert (msg.to_roles, msg.cc_roles) == (["senior_pm"], ["assigned_pm"])
    assert msg.context["level"] == "senior_pm" and msg.context["from_level"] == "team"
    assert entry.entity == f"{key}#1" and entry.actor == "cep-engine"
    assert entry.guards[0]["guard"] == "stale_past_threshold" and entry.guards[0]["passed"]


def test_activity_restarts_the_clock_and_never_lowers_the_level(store: Store) -> None:
    key = staff_project(store)
    n = open_issue(store, key)
    sweep(store, NOW + 2 * H)
    issues.add_note(store, key, n, "Vendor contacted", actor=PM, now=NOW + 3 * H)
    assert sweep(store, NOW + 4 * H).total == 0
    with store.reading() as s:
        assert s.scalars(select(Issue.level)).one() == "senior_pm"
    assert sweep(store, NOW + 7 * H).total == 1


def test_acknowledgement_holds_the_next_rung_for_a_fresh_threshold(store: Store) -> None:
    key = staff_project(store)
    n = open_issue(store, key)
    sweep(store, NOW + 2 * H)
    issues.ladder_action(store, key, n, "acknowledge", actor=SENIOR, now=NOW + 3 * H,
                         policy=POLICY)
    assert sweep(store, NOW + 6 * H).total == 0
    assert sweep(store, NOW + 7 * H).total == 1


def test_snooze_holds_until_the_given_time(store: Store) -> None:
    key = staff_project(store)
    n = open_issue(store, key)
    sweep(store, NOW + 2 * H)
    issues.ladder_action(store, key, n, "snooze", actor=SENIOR, now=NOW + 2 * H,
                         policy=POLICY, until=NOW + 48 * H)
    assert sweep(store, NOW + 24 * H).total == 0
    assert sweep(store, NOW + 48 * H).total == 2


def test_only_the_current_level_holder_acts_on_the_ladder(store: Store) -> None:
    key = staff_project(store)
    n = open_issue(store, key)
    sweep(store, NOW + 2 * H)
    before = snapshot(store)
    with pytest.raises(TransitionRefused, match="actor_holds_current_level"):
        issues.ladder_action(store, key, n, "acknowledge", actor=SPONSOR, now=NOW + 3 * H,
                             policy=POLICY)
    with pytest.raises(TransitionRefused, match="only its holder"):
        issues.ladder_action(store, key, n, "acknowledge", actor=PM, now=NOW + 3 * H,
                             policy=POLICY)
    with pytest.raises(PermissionDenied):
        issues.ladder_action(store, key, n, "acknowledge", actor=COORD, now=NOW + 3 * H,
                             policy=POLICY)
    with pytest.raises(TransitionRefused, match="snooze may last until"):
        issues.ladder_action(store, key, n, "snooze", actor=SENIOR, now=NOW + 3 * H,
                             policy=POLICY, until=NOW + 24 * 30 * H)
    assert snapshot(store) == before


def test_deescalation_starts_a_new_cycle(store: Store) -> None:
    key = staff_project(store)
    n = open_issue(store, key)
    sweep(store, NOW + 2 * H)
    issues.ladder_action(store, key, n, "deescalate", actor=SENIOR, now=NOW + 3 * H,
                         policy=POLICY, note="Team has it under control")
    assert sweep(store, NOW + 5 * H).total == 1
    assert ladder(store) == [(1, "senior_pm", 0), (1, "senior_pm", 1)]


def test_resolved_issues_leave_the_ladder(store: Store) -> None:
    key = staff_project(store)
    n = open_issue(store, key)
    issues.change_status(store, key, n, "resolve", actor=PM, now=NOW + H, note="Rule added")
    assert sweep(store, NOW + 72 * H).total == 0
    with store.reading() as s:
        assert s.scalars(select(Issue.level)).one() == "off_ladder"


def test_policy_snapshot_keeps_in_flight_escalations(store: Store, tmp_path: Path) -> None:
    key = staff_project(store)
    open_issue(store, key)
    slower = load_policy(_write_policy(tmp_path, "after: 2h,", "after: 3h,"))
    open_issue(store, key, policy=slower)
    report = sweep(store, NOW + 2 * H)
    assert report.total == 1
    assert sweep(store, NOW + 3 * H).total == 1


def _write_policy(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "escalation.yaml"
    path.write_text((REPO_CONFIG_DIR / "escalation.yaml").read_text().replace(old, new, 1))
    return path


def test_dry_run_changes_nothing(store: Store) -> None:
    key = staff_project(store)
    open_issue(store, key)
    before = snapshot(store, skip=())
    report = sweep(store, NOW + 72 * H, dry_run=True)
    assert report.total == 3
    assert snapshot(store, skip=()) == before


def test_failure_half_way_applies_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    key = staff_project(store)
    open_issue(store, key)
    real, calls = sweep_mod._climb, []

    def climb_then_fail(*args: Any) -> Any:
        counts = real(*args)
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("crash between rungs")
        return counts

    monkeypatch.setattr(sweep_mod, "_climb", climb_then_fail)
    before = snapshot(store, skip=())
    with pytest.raises(RuntimeError):
        sweep(store, NOW + 72 * H)
    assert snapshot(store, skip=()) == before
    monkeypatch.undo()
    assert sweep(store, NOW + 72 * H).total == 3
    assert counts(store) == (3, 3, 3)


KILLER = """
import os, signal, sys
from datetime import datetime
from cep_engine.escalation import sweep as m
from cep_engine.escalation.policy import load_policy
from cep_engine.settings import REPO_CONFIG_DIR
from cep_engine.store.db import Store
real = m._climb
def climb_then_die(*args):
    real(*args)
    os.kill(os.getpid(), signal.SIGKILL)
m._climb = climb_then_die
policy = load_policy(REPO_CONFIG_DIR / "escalation.yaml")
m.run_sweep(Store.from_url(sys.argv[1]), as_of=datetime.fromisoformat(sys.argv[2]),
            calendar=policy.business_calendar)
"""


def test_process_killed_mid_sweep_leaves_no_half_escalation(store: Store) -> None:
    key = staff_project(store)
    for _ in range(3):
        open_issue(store, key)
    before = snapshot(store, skip=())
    url = store.engine.url.render_as_string(hide_password=False)
    store.dispose()
    proc = subprocess.run([sys.executable, "-c", KILLER, url, (NOW + 72 * H).isoformat()],
                          cwd=Path(__file__).parents[2], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(store, skip=()) == before
    assert sweep(store, NOW + 72 * H).total == 9
    assert counts(store) == (9, 9, 9)


@pytest.mark.postgres
def test_two_sweeps_at_once_escalate_each_issue_once(pg_store: Store) -> None:
    key = staff_project(pg_store)
    for _ in range(60):
        open_issue(pg_store, key)
    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def run() -> None:
        barrier.wait()
        reports.append(sweep(pg_store, NOW + 72 * H))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r.total for r in reports) == 180
    assert counts(pg_store) == (180, 180, 180)


def test_detail_lists_the_first_escalations_of_each_project_and_level(store: Store) -> None:
    first, second = staff_project(store, "SDC-042"), staff_project(store, "SDC-043")
    for key in (second, first, first, first):
        open_issue(store, key)
    report = sweep(store, NOW + 72 * H, detail=2)
    assert report.total == 12
    listed = [(e["project"], e["issue"], e["from_level"], e["level"]) for e in report.escalated]
    assert listed == [
        (first, 1, "team", "senior_pm"), (first, 2, "team", "senior_pm"),
        (second, 1, "team", "senior_pm"),
        (first, 1, "senior_pm", "project_sponsor"), (first, 2, "senior_pm", "project_sponsor"),
        (second, 1, "senior_pm", "project_sponsor"),
        (first, 1, "project_sponsor", "executive_sponsor"),
        (first, 2, "project_sponsor", "executive_sponsor"),
        (second, 1, "project_sponsor", "executive_sponsor")]
    assert {e["priority"] for e in report.escalated} == {"critical"}
    assert sweep(store, NOW + 72 * H, detail=2).escalated == []
