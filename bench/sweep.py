"""Benchmark: the escalation sweep over N open issues, 5% of them due, against hand-made SQL.

For each size, the same database state is swept by both, ``--rounds`` times, alternating
which goes first:
  * cep-engine: ``cep_engine.escalation.sweep.run_sweep`` (cutoffs + set-based climb);
  * baseline: hand-written bulk SQL with the same effect, the cutoff computed once by the
    same calendar. PostgreSQL: one statement, ``WITH up AS (UPDATE issues ... RETURNING)``
    feeding the three INSERT ... SELECT (escalations, audit_log, outbox). SQLite (no
    data-modifying CTEs): the three INSERT ... SELECT over the due predicate, then the UPDATE.
After each run the escalation's effects are undone; on PostgreSQL the tables are then
vacuumed and a checkpoint is taken, so neither side pays for the other's (or the data
generation's) dead rows, unset hint bits or dirty buffers. Prints the median wall times,
the median of the per-round ratios, the process's peak RSS and the load average.

    .venv/bin/python bench/sweep.py --sizes 10000,100000 --backend both
    .venv/bin/python bench/sweep.py --sizes 1000000 --backend postgresql
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cep_engine.escalation.policy import load_policy
from cep_engine.escalation.sweep import run_sweep
from cep_engine.services.issues import policy_snapshot_id
from cep_engine.settings import REPO_CONFIG_DIR
from cep_engine.store.db import Store
from cep_engine.store.migrate import upgrade

POLICY = load_policy(REPO_CONFIG_DIR / "escalation.yaml")
CAL = POLICY.business_calendar
AS_OF = datetime(2026, 11, 4, 18, 0, tzinfo=UTC)  # Wednesday 10:00 Pacific
DUE_SHARE = 0.05


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def populate(store: Store, n: int) -> None:
    """One project and ``n`` open critical issues at team level; 5% idle past 2h."""
    now = AS_OF - timedelta(days=10)
    with store.transaction() as s:
        s.execute(text("INSERT INTO projects (key, name, agency, phase, version, created_at, "
                       "updated_at) VALUES ('SDC-001', 'Bench', 'Agency', 'execution', 1, "
                       ":t, :t)"), {"t": now})
        policy_id = policy_snapshot_id(s, POLICY, now)
    fresh = AS_OF - timedelta(minutes=30)
    stale = AS_OF - timedelta(hours=2, minutes=30)
    every = round(1 / DUE_SHARE)
    dialect = store.engine.dialect.name
    series = ("SELECT g AS i FROM generate_series(1, :n) AS g" if dialect == "postgresql"
              else "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n)"
                   " SELECT i FROM s")
    sql = (f"INSERT INTO issues (project_id, number, title, description, priority, status, "
           f"level, policy_id, opened_at, last_activity_at, stale_since, cycle, version) "
           f"SELECT 1, i, 'Issue ' || i, '', 'critical', 'open', 'team', :pid, :stale, "
           f"CASE WHEN i % {every} = 0 THEN :stale ELSE :fresh END, "
           f"CASE WHEN i % {every} = 0 THEN :stale ELSE :fresh END, 0, 1 FROM ({series}) AS q")
    with store.engine.begin() as conn:
        conn.execute(text(sql), {"n": n, "pid": policy_id, "stale": _bind(dialect, stale),
                                 "fresh": _bind(dialect, fresh)})
    settle(store)


def settle(store: Store) -> None:
    """PostgreSQL: vacuum and analyze, then checkpoint, outside the timed runs.

    Without it the first statement to read freshly written rows sets their hint bits and
    writes out the dirty buffers the writer left (the 119 MB table does not fit in the
    default 128 MB of shared buffers), and the second side meets the first's dead rows.
    """
    if store.engine.dialect.name != "postgresql":
        return
    with store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("VACUUM (ANALYZE) issues, escalations, audit_log, outbox"))
        with contextlib.suppress(DBAPIError):  # needs superuser or pg_checkpoint
            conn.execute(text("CHECKPOINT"))


def _bind(dialect: str, instant: datetime) -> object:
    if dialect == "sqlite":
        return instant.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return instant


def undo(store: Store) -> None:
    """Put every escalated issue back at team level and forget the escalations."""
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE issues SET level = 'team' WHERE level <> 'team'"))
        for table in ("escalations", "outbox", "audit_log"):
            conn.execute(text(f"DELETE FROM {table}"))
    settle(store)


def baseline(store: Store, policy_id: int) -> int:
    """The same effect as one sweep rung, written by hand as bulk SQL."""
    cutoff = CAL.subtract(AS_OF, 2 * 3600).astimezone(UTC)
    dialect = store.engine.dialect.name
    p = {"cutoff": _bind(dialect, cutoff), "as_of": _bind(dialect, AS_OF), "pid": policy_id}
    due = ("i.status IN ('open', 'in_progress') AND i.policy_id = :pid AND i.priority = 'critical'"
           " AND i.level = 'team' AND i.stale_since <= :cutoff AND i.snoozed_until IS NULL")
    with store.engine.begin() as conn:
        if dialect == "postgresql":
            return int(conn.execute(text(_PG_BASELINE.format(due=due)), p).scalar_one())
        for statement in _SQLITE_BASELINE:
            result = conn.execute(text(statement.format(due=due)), p)
    return int(result.rowcount)


_ESCALATION = ("INSERT INTO escalations (issue_id, level, cycle, escalated_at, stale_since) "
               "SELECT i.id, 'senior_pm', i.cycle, :as_of, i.stale_since FROM {src}")
_AUDIT = ("INSERT INTO audit_log (at, actor, actor_roles, project_id, entity_type, entity, "
          "trigger, from_state, to_state, accepted, guards, reason) SELECT :as_of, "
          "'cep-engine', 'engine', i.project_id, 'issue', pr.key || '#' || "
          "CAST(i.number AS VARCHAR), 'escalate', 'team', 'senior_pm', true, {roles}, "
          "'baseline' FROM {src} JOIN projects pr ON pr.id = i.project_id")
_OUTBOX = ("INSERT INTO outbox (idempotency_key, kind, project_id, to_roles, cc_roles, "
           "to_addresses, context, status, attempts, next_attempt_at, created_at) SELECT "
           "'escalation:' || CAST(i.id AS VARCHAR) || ':senior_pm:' || CAST(i.cycle AS VARCHAR),"
           " 'escalation', i.project_id, {roles}, {roles}, {roles}, "
           "{build}('issue_id', i.id, 'level', 'senior_pm', 'from_level', 'team', 'cycle', "
           "i.cycle), 'pending', 0, :as_of, :as_of FROM {src} WHERE true "
           "ON CONFLICT (idempotency_key) DO NOTHING")
_PG = {"roles": "CAST('[\"senior_pm\"]' AS JSON)", "build": "json_build_object", "src": "up i"}
_PG_BASELINE = (
    "WITH up AS (UPDATE issues i SET level = 'senior_pm', version = i.version + 1 "
    "WHERE {due} RETURNING i.id, i.project_id, i.number, i.cycle, i.stale_since), "
    f"e AS ({_ESCALATION.format(**_PG)}), a AS ({_AUDIT.format(**_PG)}), "
    f"o AS ({_OUTBOX.format(**_PG)}) SELECT count(*) FROM up"
)
_SQLITE = {"roles": "'[\"senior_pm\"]'", "build": "json_object", "src": "issues i"}
_SQLITE_BASELINE = [
    _ESCALATION.format(**_SQLITE) + " WHERE {due}",
    _AUDIT.format(**_SQLITE) + " WHERE {due}",
    _OUTBOX.format(**_SQLITE).replace("WHERE true", "WHERE {due}"),
    "UPDATE issues AS i SET level = 'senior_pm', version = version + 1 WHERE {due}",
]


def measure(store: Store, n: int, rounds: int) -> dict[str, float]:
    """``rounds`` x (sweep, undo, baseline, undo), alternating which side goes first.

    Returns the median times, the median of the per-round ratios and the peak RSS after
    the sweeps. The calendar is warmed first: loading the holidays package's US-WA module
    costs about 0.5 s once per process (a long-running ``cep serve`` pays it once).
    """
    CAL.subtract(AS_OF, 60)
    with store.engine.connect() as conn:
        policy_id = conn.execute(text("SELECT min(id) FROM escalation_policies")).scalar_one()
    swept: list[float] = []
    based: list[float] = []
    expected = n // round(1 / DUE_SHARE)
    for i in range(rounds):
        for side in (("sweep", "baseline") if i % 2 == 0 else ("baseline", "sweep")):
            t0 = time.perf_counter()
            if side == "sweep":
                count = run_sweep(store, as_of=AS_OF, calendar=CAL).total
                swept.append(time.perf_counter() - t0)
            else:
                count = baseline(store, policy_id)
                based.append(time.perf_counter() - t0)
            assert count == expected, (side, count, expected)
            undo(store)
    ratios = [s / b for s, b in zip(swept, based, strict=True)]
    return {"sweep_s": statistics.median(swept), "baseline_s": statistics.median(based),
            "ratio": statistics.median(ratios), "due": expected, "peak_rss_mb": peak_rss_mb()}


def sqlite_store(tmp: Path) -> Store:
    store = Store.from_url(f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}")
    upgrade(store)
    return store


def pg_store(url: str) -> tuple[Store, str]:
    name = f"cep_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    store = Store.from_url(make_url(url).set(database=name).render_as_string(False))
    upgrade(store)
    return store, name


def drop_pg(url: str, name: str) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3,
                        help="sweep/baseline pairs per size, alternating order (default 3)")
    parser.add_argument("--pg-url", default=os.environ.get(
        "CEP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", *sys.argv]))
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"{'backend':<11}{'issues':>10}{'due':>8}{'populate s':>12}{'sweep s':>10}"
          f"{'baseline s':>12}{'ratio':>8}{'peak RSS MB':>13}  load avg")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            for n in sizes:
                name = None
                if backend == "sqlite":
                    store = sqlite_store(Path(tmp))
                else:
                    store, name = pg_store(args.pg_url)
                try:
                    t0 = time.perf_counter()
                    populate(store, n)
                    filled = time.perf_counter() - t0
                    r = measure(store, n, args.rounds)
                finally:
                    store.dispose()
                    if name:
                        drop_pg(args.pg_url, name)
                load = " ".join(f"{x:.1f}" for x in os.getloadavg())
                print(f"{backend:<11}{n:>10}{r['due']:>8.0f}{filled:>12.1f}{r['sweep_s']:>10.3f}"
                      f"{r['baseline_s']:>12.3f}{r['ratio']:>8.2f}{r['peak_rss_mb']:>13.0f}"
                      f"  {load}", flush=True)


if __name__ == "__main__":
    main()
