"""Benchmark: the escalation sweep over N open issues, 5% of them due, against hand-made SQL.

For each size, the same database state is swept twice in the same process:
  * cep-engine: ``cep_engine.escalation.sweep.run_sweep`` (cutoffs + set-based climb);
  * baseline: hand-written bulk SQL with the same effect (INSERT ... SELECT into
    escalations, audit_log and outbox, then one UPDATE of issues), with the cutoff
    computed once by the same calendar.
Between the two runs the escalation's effects are undone. Prints wall time, ratio and the
process's peak RSS.

    .venv/bin/python bench/sweep.py --sizes 10000,100000 --backend sqlite
    .venv/bin/python bench/sweep.py --sizes 10000,100000,1000000 --backend postgresql
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

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
        if dialect == "postgresql":
            conn.execute(text("ANALYZE issues"))


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


def baseline(store: Store) -> int:
    """The same effect as one sweep rung, written by hand as bulk SQL."""
    cutoff = CAL.subtract(AS_OF, 2 * 3600).astimezone(UTC)
    dialect = store.engine.dialect.name
    p = {"cutoff": _bind(dialect, cutoff), "as_of": _bind(dialect, AS_OF)}
    due = ("FROM issues i JOIN projects pr ON pr.id = i.project_id WHERE i.status IN "
           "('open', 'in_progress') AND i.priority = 'critical' AND i.level = 'team' "
           "AND i.stale_since <= :cutoff AND i.snoozed_until IS NULL")
    roles = "'[\"senior_pm\"]'"
    json_list = f"CAST({roles} AS JSON)" if dialect == "postgresql" else roles
    build = "json_build_object" if dialect == "postgresql" else "json_object"
    with store.engine.begin() as conn:
        conn.execute(text(f"INSERT INTO escalations (issue_id, level, cycle, escalated_at, "
                          f"stale_since) SELECT i.id, 'senior_pm', i.cycle, :as_of, "
                          f"i.stale_since {due}"), p)
        conn.execute(text(f"INSERT INTO audit_log (at, actor, actor_roles, project_id, "
                          f"entity_type, entity, trigger, from_state, to_state, accepted, "
                          f"guards, reason) SELECT :as_of, 'cep-engine', 'engine', "
                          f"i.project_id, 'issue', pr.key || '#' || CAST(i.number AS VARCHAR), "
                          f"'escalate', 'team', 'senior_pm', true, {json_list}, 'baseline' "
                          f"{due}"), p)
        conn.execute(text(f"INSERT INTO outbox (idempotency_key, kind, project_id, to_roles, "
                          f"cc_roles, to_addresses, context, status, attempts, "
                          f"next_attempt_at, created_at) SELECT 'escalation:' || "
                          f"CAST(i.id AS VARCHAR) || ':senior_pm:0', 'escalation', "
                          f"i.project_id, {json_list}, {json_list}, {json_list}, "
                          f"{build}('issue_id', i.id), 'pending', 0, :as_of, :as_of {due} "
                          f"ON CONFLICT (idempotency_key) DO NOTHING"), p)
        result = conn.execute(text(f"UPDATE issues SET level = 'senior_pm', version = "
                                   f"version + 1 WHERE id IN (SELECT i.id {due})"), p)
    return int(result.rowcount)


def measure(store: Store, n: int) -> dict[str, float]:
    """Sweep, undo, baseline; return times, counts and the ratio.

    The calendar is warmed first: loading the holidays package's US-WA module costs about
    0.5 s once per process (a long-running ``cep serve`` pays it once).
    """
    CAL.subtract(AS_OF, 60)
    t0 = time.perf_counter()
    report = run_sweep(store, as_of=AS_OF, calendar=CAL)
    swept = time.perf_counter() - t0
    rss = peak_rss_mb()
    undo(store)
    t0 = time.perf_counter()
    base_count = baseline(store)
    base = time.perf_counter() - t0
    undo(store)
    assert report.total == base_count == n // round(1 / DUE_SHARE), (report.total, base_count)
    return {"sweep_s": swept, "baseline_s": base, "ratio": swept / base, "due": report.total,
            "peak_rss_mb": rss}


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
    parser.add_argument("--pg-url", default=os.environ.get(
        "CEP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", *sys.argv]))
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"{'backend':<11}{'issues':>10}{'due':>8}{'sweep s':>10}{'baseline s':>12}"
          f"{'ratio':>8}{'peak RSS MB':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            for n in sizes:
                name = None
                if backend == "sqlite":
                    store = sqlite_store(Path(tmp))
                else:
                    store, name = pg_store(args.pg_url)
                try:
                    populate(store, n)
                    r = measure(store, n)
                finally:
                    store.dispose()
                    if name:
                        drop_pg(args.pg_url, name)
                print(f"{backend:<11}{n:>10}{r['due']:>8.0f}{r['sweep_s']:>10.3f}"
                      f"{r['baseline_s']:>12.3f}{r['ratio']:>8.2f}{r['peak_rss_mb']:>13.0f}",
                      flush=True)


if __name__ == "__main__":
    main()
