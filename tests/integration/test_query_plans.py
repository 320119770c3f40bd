"""The queries every phase transition runs find their rows through indexes (SQLite plans).

A table scan there costs time in proportion to the number of projects: the sign-off lookup
of the gate query scanned ``customer_signoffs`` until migration 0003 indexed it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.sql import Executable

from cep_engine.services import _facts, _load
from cep_engine.store.db import Store

PARAMS = {"project_id": 1, "key": "SDC-001", "email": "pat.pm@cts.wa.gov",
          "state_1": "validated", "priority_1": "critical"}


def _plan(store: Store, stmt: Executable) -> list[str]:
    with store.engine.connect() as conn:
        compiled = stmt.compile(dialect=conn.dialect)  # type: ignore[attr-defined]
        params = compiled.construct_params(PARAMS)
        args = tuple(params[name] for name in compiled.positiontup)
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", args)
        return [str(r[3]) for r in rows]


@pytest.mark.parametrize("stmt", [_facts._GATE_ROWS, _load._PROJECT_AND_ACTOR],
                         ids=["gate rows", "project and actor"])
def test_transition_reads_use_indexes(sqlite_template: Path, tmp_path: Path,
                                      stmt: Executable) -> None:
    db = tmp_path / "cep.db"
    db.write_bytes(sqlite_template.read_bytes())
    store = Store.from_url(f"sqlite:///{db}")
    try:
        plan = _plan(store, stmt)
    finally:
        store.dispose()
    assert plan and not [step for step in plan if step.startswith("SCAN")], plan
