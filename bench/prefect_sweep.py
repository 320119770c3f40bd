"""The escalation sweep as a Prefect flow run, against the same sweep called in-process.

The data of ``bench/sweep.py`` (one project, N open critical issues at team level, 5% of them
idle past the 2-hour rung) on a temporary SQLite database (or a fresh PostgreSQL database with
``--pg-url``). A local Prefect server (SQLite, a temporary PREFECT_HOME) is started the way
``cep up`` starts it, unless ``PREFECT_API_URL`` names one. Each round sweeps the same state
twice, undoing the escalations after each:

  * flow: ``workflows.escalation_sweep`` as a flow run in this process (run created on the
    server, states, the sweep in a worker thread, the table artifact, one
    ``cep.issues.escalated`` event per (project, level) queued naming up to 50 of its issues,
    the run renamed and tagged, its logs);
  * direct: ``services.jobs.sweep`` with the same arguments the flow passes (the baseline).

Rounds alternate which goes first. Reports each time, the median of each and their ratio
(goal: flow <= 1.3 x direct). ``--issues-per-event`` measures what another cap on the issues
an event names would give (the flow reads the module's ``ISSUES_PER_EVENT`` at each run; the
direct sweep lists as many). The logs and events a flow run queued are sent before the next
measurement (untimed; "event drain").

    .venv/bin/python bench/prefect_sweep.py --issues 100000 --rounds 5
    .venv/bin/python bench/prefect_sweep.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._prefect import prefect_api
from bench.sweep import AS_OF, DUE_SHARE, drop_pg, pg_store, populate, undo
from cep_engine.settings import load_settings
from cep_engine.store.db import Store
from cep_engine.store.migrate import upgrade


def _escalated(store: Store) -> int:
    from sqlalchemy import text

    with store.reading() as session:
        return int(session.execute(text("SELECT count(*) FROM escalations")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", default="", help="sweep a fresh database on this server")
    parser.add_argument("--issues-per-event", type=int, default=None,
                        help="what-if: the flow's cap on issues named per event (default: the "
                             "flow's own, workflows.escalation_sweep.ISSUES_PER_EVENT)")
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", *sys.argv]))
    work = Path(tempfile.mkdtemp(prefix="cep-bench-prefect-sweep-"))
    pg_name = None
    try:
        with prefect_api(work):
            if args.pg_url:
                store, pg_name = pg_store(args.pg_url)
            else:
                store = Store.from_url(f"sqlite:///{work / 'cep.db'}")
                upgrade(store)
            try:
                _run(store, args.issues, args.rounds, args.issues_per_event)
            finally:
                store.dispose()
    finally:
        if pg_name:
            drop_pg(args.pg_url, pg_name)
        shutil.rmtree(work, ignore_errors=True)


def _run(store: Store, issues: int, rounds: int, per_event: int | None) -> None:
    import workflows.escalation_sweep as module
    from cep_engine.services import jobs
    from workflows._support import flush, prefect_clients, using_settings
    from workflows.escalation_sweep import escalation_sweep

    if per_event is not None:
        module.ISSUES_PER_EVENT = per_event
    detail = module.ISSUES_PER_EVENT
    print(f"{module.EVENT}: one per (project, level), naming at most {detail} issues")

    t0 = time.perf_counter()
    populate(store, issues)
    due = issues // round(1 / DUE_SHARE)
    print(f"backend {store.engine.dialect.name}: {issues} issues, {due} due "
          f"(populated in {time.perf_counter() - t0:.1f} s)")
    settings = load_settings(database_url=store.engine.url.render_as_string(False))
    jobs.policy(settings).business_calendar.subtract(AS_OF, 60)  # warm the holidays module

    def direct() -> None:
        report = jobs.sweep(store, settings, as_of=AS_OF, detail=detail)
        assert report.total == due, report.total

    async def as_flow() -> None:
        async with prefect_clients():
            state = await escalation_sweep(as_of=AS_OF, return_state=True)
        out = await state.aresult()
        assert out["total"] == due, out

    def timed(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        assert _escalated(store) == due
        undo(store)
        return elapsed

    flows: list[float] = []
    calls: list[float] = []
    drains: list[float] = []
    with using_settings(settings):
        asyncio.run(as_flow())  # untimed: the first run pays for imports and registration
        undo(store)
        for r in range(rounds):
            order = ("flow", "direct") if r % 2 == 0 else ("direct", "flow")
            for which in order:
                if which == "flow":
                    flows.append(timed(lambda: asyncio.run(as_flow())))
                    start = time.perf_counter()
                    flush()
                    drains.append(time.perf_counter() - start)
                else:
                    calls.append(timed(direct))
            print(f"round {r + 1}: flow {flows[-1]:.2f} s, direct {calls[-1]:.2f} s, "
                  f"event drain {drains[-1]:.2f} s", flush=True)
    flow_s, call_s = statistics.median(flows), statistics.median(calls)
    print(f"median: flow run {flow_s:.2f} s, direct {call_s:.2f} s; ratio {flow_s / call_s:.2f} "
          f"(goal <= 1.3: {'met' if flow_s / call_s <= 1.3 else 'not met'})")


if __name__ == "__main__":
    main()
