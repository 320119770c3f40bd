"""Two PMs advancing the same project at once, on PostgreSQL with two real connections."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from cep_engine.errors import CepError, ConflictError
from cep_engine.services import projects, queries
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
