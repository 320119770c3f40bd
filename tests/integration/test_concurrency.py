"""Two PMs advancing the same project at once, on PostgreSQL with two real connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from cep_engine.errors import CepError, ConflictError, TransitionRefused
from cep_engine.services import projects, queries, readiness
from cep_engine.store.db import Store
from tests.conftest import NOW, PM, SENIOR, audit_count, staff_project

pytestmark = pytest.mark.postgres


def _race(calls: list[Callable[[], Any]], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Run ``calls`` in threads that all read before any of them writes."""
    barrier = threading.Barrier(len(calls), timeout=10)
    real = projects.phase_facts

    def facts_after_everyone_read(session: Any, project: Any) -> Any:
        facts = real(session, project)
        barrier.wait()
        return facts

    monkeypatch.setattr(projects, "phase_facts", facts_after_everyone_read)
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except CepError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_two_pms_advance_at_once_one_wins(pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    key = staff_project(pg_store)
    audit_before = audit_count(pg_store)
    later = NOW + timedelta(minutes=5)
    results = _race(
        [lambda: projects.fire_phase(pg_store, key, "advance", actor=PM, now=later),
         lambda: projects.fire_phase(pg_store, key, "advance", actor=SENIOR, now=later)],
        monkeypatch,
    )
    conflicts = [r for r in results if isinstance(r, ConflictError)]
    wins = [r for r in results if not isinstance(r, CepError)]
    assert len(wins) == 1 and len(conflicts) == 1, results
    assert "changed by someone else" in str(conflicts[0])
    with pg_store.reading() as s:
        shown = queries.show_project(s, key)
    assert shown["phase"] == "planning"
    assert shown["version"] == 2
    assert audit_count(pg_store) == audit_before + 1


def _waiting_on_a_lock(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).scalar_one())


def test_a_checklist_edit_waits_for_a_cancel_and_is_refused(pg_store: Store) -> None:
    """A task added while a cancel is committing sees the cancelled project, not the old phase."""
    key = staff_project(pg_store)
    tasks_before = _task_count(pg_store, key)
    outcome: list[Any] = []

    def add_task() -> None:
        try:
            outcome.append(readiness.add_task(pg_store, key, "pre_cutover", "Late evidence",
                                              actor=PM, now=NOW + timedelta(minutes=5)))
        except CepError as exc:
            outcome.append(exc)

    with pg_store.engine.connect() as cancel:
        cancel.exec_driver_sql(
            "UPDATE projects SET phase = 'cancelled', version = version + 1 WHERE key = %s",
            (key,))
        editor = threading.Thread(target=add_task)
        editor.start()
        for _ in range(200):
            if _waiting_on_a_lock(pg_store) or not editor.is_alive():
                break
            time.sleep(0.05)
        assert editor.is_alive(), f"the edit did not wait for the cancel: {outcome}"
        cancel.commit()
    editor.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], TransitionRefused), outcome
    assert "cancelled" in str(outcome[0])
    assert _task_count(pg_store, key) == tasks_before


def _task_count(store: Store, key: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(
            "SELECT count(*) FROM readiness_tasks t JOIN readiness_guides g ON g.id = t.guide_id"
            " JOIN projects p ON p.id = g.project_id WHERE p.key = %s", (key,)).scalar_one())
