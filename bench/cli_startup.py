"""Whole-process wall time of the CLI's read commands, beside Python's own start-up.

Prepares a SQLite database (10 projects; SDC-001 staffed, advanced once, with an issue and a
risk), then runs each read command ``--runs`` times as a user would (``.venv/bin/cep ...``):
``project show``, ``project list`` and ``history`` with and without ``--json``, and the other
read commands once each, interleaved with three baselines: ``python -c pass``,
``python -c "import sqlalchemy"`` (the Core the reads run on) and
``python -c "import sqlalchemy.orm"``. Reports median and p90 wall time, CPU time of the
children, the ratio to the Core import, and a ``python -X importtime`` summary of what the
start-up spends its time on.

    .venv/bin/python bench/cli_startup.py --runs 10
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

GOAL_S = 0.5
CORE = "python -c 'import sqlalchemy'"
KEY = "SDC-001"
PM = "pat.pm@cts.wa.gov"
STAFF = (
    ("assigned_pm", PM, "Pat Morgan"),
    ("client_liaison", "lee.liaison@cts.wa.gov", "Lee Chen"),
    ("implementation_coordinator", "casey.coord@dol.wa.gov", "Casey Rivera"),
)


OTHER_READS = (
    ["role", "list", KEY], ["phase", "show", KEY], ["checklist", "show", KEY, "cutover"],
    ["issue", "list", KEY], ["issue", "show", KEY, "1"], ["risk", "list", KEY],
    ["risk", "show", KEY, "1"], ["action", "list", KEY], ["outbox", "list"],
)


def prepare(url: str) -> None:
    """A migrated database with ten projects; SDC-001 is staffed and advanced once."""
    from cep_engine.escalation.policy import load_policy
    from cep_engine.guides import load_guides
    from cep_engine.services import issues, projects, risks
    from cep_engine.settings import REPO_CONFIG_DIR
    from cep_engine.store.db import Store
    from cep_engine.store.migrate import upgrade

    now = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)
    store = Store.from_url(url)
    upgrade(store)
    guides = load_guides(REPO_CONFIG_DIR)
    projects.add_person(store, PM, "Pat Morgan", now=now)
    for i in range(1, 11):
        projects.create_project(store, f"SDC-{i:03d}", f"Project {i}", "Department of Licensing",
                                actor=PM, guides=guides, now=now)
    for role, email, name in STAFF:
        projects.assign_role(store, KEY, role, email, actor=PM, now=now,
                             name=None if email == PM else name)
    projects.fire_phase(store, KEY, "advance", actor=PM, now=now)
    projects.fire_phase(store, KEY, "hold", actor=PM, now=now, reason="budget review")
    projects.fire_phase(store, KEY, "resume", actor=PM, now=now)
    policy = load_policy(REPO_CONFIG_DIR / "escalation.yaml")
    issues.open_issue(store, KEY, "Firewall rules missing", priority_name="critical",
                      actor=PM, now=now, policy=policy)
    risks.add_risk(store, KEY, risks.RiskInput.checked("Rack delivery slips", 3, 4, owner=PM),
                   actor=PM, now=now)
    store.dispose()


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and child CPU seconds of one run; the command must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def import_summary(argv: list[str], env: dict[str, str], top: int) -> list[str]:
    """``-X importtime`` of one run, self time summed per top-level package."""
    run = subprocess.run([sys.executable, "-X", "importtime", *argv], env=env, check=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    per_package: dict[str, int] = defaultdict(int)
    total = 0
    for line in run.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not m:
            continue
        self_us, name = int(m.group(1)), m.group(4)
        per_package[name.split(".")[0]] += self_us
        total += self_us
    lines = [f"  all imports: {total / 1e6:.3f} s (self times summed; the run was "
             f"slowed down by -X importtime itself)"]
    for name, us in sorted(per_package.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {name:28} {us / 1e6:7.3f} s  {100 * us / total:5.1f} %")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=15, help="packages in the import summary")
    args = parser.parse_args(argv)
    print(f"$ {shlex.join(sys.orig_argv)}", flush=True)
    print(f"machine: nproc={os.cpu_count()} python={sys.version.split()[0]} "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    cep = str(Path(sys.executable).with_name("cep"))
    with tempfile.TemporaryDirectory(prefix="cep-cli-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'cep.db'}"
        prepare(url)
        env = {**os.environ, "CEP_DATA_DIR": tmp}
        env = {k: v for k, v in env.items() if k not in ("CEP_DATABASE_URL",)}
        base = [cep, "--database-url", url]
        commands: dict[str, list[str]] = {
            "python -c pass": [sys.executable, "-c", "pass"],
            CORE: [sys.executable, "-c", "import sqlalchemy"],
            "python -c 'import sqlalchemy.orm'": [sys.executable, "-c", "import sqlalchemy.orm"],
        }
        for name, rest in (("project show", ["project", "show", KEY]),
                           ("project list", ["project", "list"]),
                           ("history", ["history", KEY])):
            commands[f"cep {name}"] = [*base, *rest]
            commands[f"cep {name} --json"] = [*base, *rest, "--json"]
        for rest in OTHER_READS:
            commands[f"cep {' '.join(rest)}"] = [*base, *rest]
        for argv_ in commands.values():
            timed(argv_, env)
        walls: dict[str, list[float]] = defaultdict(list)
        cpus: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.runs):
            for name, argv_ in commands.items():
                wall, cpu = timed(argv_, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
        print(f"\n{args.runs} runs each, interleaved; seconds")
        print(f"  {'command':36} {'median':>7} {'p90':>7} {'cpu med':>8} {'goal':>6}")
        for name in commands:
            w = walls[name]
            goal = "" if name.startswith("python") else (
                "met" if statistics.median(w) <= GOAL_S else "NOT met")
            print(f"  {name:36} {statistics.median(w):7.3f} {pct(w, 90):7.3f} "
                  f"{statistics.median(cpus[name]):8.3f} {goal:>6}")
        floor = statistics.median(walls[CORE])
        reads = [n for n in commands if n.startswith("cep ")]
        slowest = max(reads, key=lambda n: statistics.median(walls[n]))
        for name in ("cep project show", slowest):
            print(f"  ratio {name} / {CORE}: {statistics.median(walls[name]) / floor:.2f}")
        print("\nwhat `cep project show` imports (python -X importtime, top packages):")
        module_argv = ["-m", "cep_engine.cli", "--database-url", url, "project", "show", KEY]
        for line in import_summary(module_argv, env, args.top):
            print(line)


if __name__ == "__main__":
    main()
