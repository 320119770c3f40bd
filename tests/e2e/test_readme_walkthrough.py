"""The README's walk-through is executed: every ``$ cep ...`` command of "A project's life,
step by step" runs in order on a fresh data directory (in-process, through the same app the
``cep`` script runs), and every line of output the README shows must be printed, apart from
tables, elisions (``…``) and the instants, which differ from run to run."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cep_engine.cli.app import app
from cep_engine.errors import CepError
from cep_engine.settings import REPO_CONFIG_DIR

README = REPO_CONFIG_DIR.parent / "README.md"
SECTION = ("## A project's life, step by step", "**The demo.**")
README_DATA_DIR = "/tmp/walk/data"
INSTANT = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?")
TABLE = tuple("┏┃┡│└")
LOOP = re.compile(r"^for n in ([\d ]+); do (.+) \$n (.*); done$")


@dataclass
class Step:
    """One ``$`` command of the README and the lines it shows."""

    command: str
    shown: list[str] = field(default_factory=list)


def walkthrough_steps() -> list[Step]:
    text = README.read_text(encoding="utf-8")
    section = text.split(SECTION[0], 1)[1].split(SECTION[1], 1)[0]
    steps: list[Step] = []
    for block in re.findall(r"```\n(.*?)```", section, flags=re.S):
        lines = block.splitlines()
        while lines:
            line = lines.pop(0)
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):
                    command = command[:-1] + " " + lines.pop(0).strip()
                steps.append(Step(command))
            elif steps:
                steps[-1].shown.append(line)
    return steps


def _normal(line: str) -> str:
    return INSTANT.sub("<instant>", line).rstrip()


def _commands(command: str) -> list[list[str]]:
    """A command line as argument lists (a ``for n in ...`` loop gives one per value)."""
    loop = LOOP.match(command)
    if loop:
        values, head, tail = loop.groups()
        return [shlex.split(f"{head} {n} {tail}")[1:] for n in values.split()]
    return [shlex.split(command)[1:]]


def _run(runner: CliRunner, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = runner.invoke(app, args, env=env)
    output = result.output
    if isinstance(result.exception, CepError):
        return result.exception.exit_code, output + f"error: {result.exception.message}\n"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args, result.exception)
    return result.exit_code, output


@pytest.mark.slow
def test_the_walkthrough_prints_what_the_readme_shows(tmp_path: Path) -> None:
    steps = walkthrough_steps()
    assert len(steps) > 40 and steps[0].command == "cep init"
    data_dir = tmp_path / "data"
    env = {"CEP_DATA_DIR": str(data_dir), "PREFECT_API_URL": ""}
    runner = CliRunner()
    last_code = 0
    for step in steps:
        if step.command == "echo $?":
            assert step.shown == [str(last_code)], step
            continue
        printed: list[str] = []
        for args in _commands(step.command):
            last_code, output = _run(runner, args, env)
            printed += output.replace(str(data_dir), README_DATA_DIR).splitlines()
        got = {_normal(line) for line in printed}
        for line in step.shown:
            if "…" in line or line.lstrip().startswith(TABLE) or not line.strip():
                continue
            assert _normal(line) in got, (step.command, line, printed)
