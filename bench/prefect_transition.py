"""A phase transition as a Prefect flow run, against the same transition called in-process.

A local Prefect server (SQLite, a temporary PREFECT_HOME) is started the way ``cep up`` starts
it, unless ``PREFECT_API_URL`` names one. On a temporary SQLite cep-engine database, one staffed
project is put on hold and resumed, alternately, N times through ``workflows.phase_transition``
(the async ``phase-transition`` flow: flow run created on the server, states, the service
call, the ``cep.phase.changed`` event, the run renamed and tagged) with the Prefect clients
shared by the runs (``workflows._support.prefect_clients``, as a long-running process does),
N times as flow runs that each build their own clients (as one CLI call does), and N times
through ``services.projects.fire_phase`` directly (the baseline). All run in the same
process, interleaved in chunks, after a warm-up. Reports p50/p99 per transition and the
ratio of p50s.

    .venv/bin/python bench/prefect_transition.py --runs 60
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._prefect import prefect_api
from cep_engine.settings import load_settings
from cep_engine.store.db import Store
from cep_engine.store.migrate import upgrade

PM = "pat.pm@cts.wa.gov"
TRIGGERS = ("hold", "resume")



def _staff(store: Store) -> None:
    from tests.conftest import staff_project

    staff_project(store, "SDC-900")


def _accepted(store: Store) -> int:
    from sqlalchemy import text

    with store.reading() as session:
        return int(session.execute(
            text("SELECT count(*) FROM audit_log WHERE accepted")).scalar_one())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _report(name: str, values: list[float]) -> None:
    print(f"{name:<26} n={len(values):<4} p50 {1000 * statistics.median(values):8.1f} ms"
          f"   p99 {1000 * _pct(values, 0.99):8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="transitions per path")
    parser.add_argument("--chunk", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cep-bench-prefect-"))
    try:
        with prefect_api(work):
            _run(work, args.runs, args.chunk)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, runs: int, chunk: int) -> None:
    from cep_engine.services.projects import fire_phase
    from workflows._support import prefect_clients, using_settings
    from workflows.phase_transition import phase_transition

    url = f"sqlite:///{work / 'cep.db'}"
    store = Store.from_url(url)
    upgrade(store)
    _staff(store)
    fire_phase(store, "SDC-900", "advance", actor=PM, now=datetime.now(UTC))
    settings = load_settings(database_url=url)
    state = {"i": 0}

    def trigger() -> str:
        state["i"] += 1
        return TRIGGERS[(state["i"] - 1) % 2]

    def direct() -> None:
        fire_phase(store, "SDC-900", trigger(), actor=PM, now=datetime.now(UTC))

    async def as_flow() -> float:
        start = time.perf_counter()
        await phase_transition(project="SDC-900", trigger=trigger(), actor=PM)
        return time.perf_counter() - start

    async def flow_chunk(n: int, shared_clients: bool) -> list[float]:
        if not shared_clients:
            return [await as_flow() for _ in range(n)]
        async with prefect_clients():
            return [await as_flow() for _ in range(n)]

    async def bench() -> tuple[list[float], list[float], list[float]]:
        shared: list[float] = []
        own: list[float] = []
        calls: list[float] = []
        with using_settings(settings):
            await flow_chunk(2, True)
            await flow_chunk(2, False)
            while len(shared) < runs:
                n = min(chunk, runs - len(shared))
                shared += await flow_chunk(n, True)
                own += await flow_chunk(n, False)
                for _ in range(n):
                    start = time.perf_counter()
                    direct()
                    calls.append(time.perf_counter() - start)
        return shared, own, calls

    before = _accepted(store)
    shared, own, calls = asyncio.run(bench())
    from workflows._support import flush

    flush()
    count = _accepted(store) - before
    _report("flow run, shared clients", shared)
    _report("flow run, own clients", own)
    _report("in-process service", calls)
    for name, flows in (("shared clients", shared), ("own clients", own)):
        p50 = statistics.median(flows)
        print(f"{name}: ratio of p50s {p50 / statistics.median(calls):.0f}x; goal p50 <= 400 ms "
              f"through Prefect: {'met' if p50 <= 0.4 else 'not met'}")
    expected = 4 + len(shared) + len(own) + len(calls)
    print(f"transitions recorded: {count} of {expected}")
    assert count == expected, (count, expected)
    store.dispose()


if __name__ == "__main__":
    main()
