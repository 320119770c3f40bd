"""The generated documentation stays what the tables say: docs/machines.md and the README's
Configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from cep_engine.cli.app import app
from cep_engine.docs import MACHINES_DOC, machines_document
from cep_engine.errors import CepError
from cep_engine.roles import Role
from cep_engine.settings import REPO_CONFIG_DIR, Settings
from cep_engine.states import MACHINES

ROOT = REPO_CONFIG_DIR.parent


def test_committed_machines_md_is_the_generated_one() -> None:
    committed = (ROOT / MACHINES_DOC).read_text(encoding="utf-8")
    assert committed == machines_document(), "docs/machines.md is stale: run `cep docs`"


def test_machines_md_names_every_state_trigger_guard_and_role() -> None:
    text = machines_document()
    for name, table in MACHINES.items():
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert all(f"`{s.value}`" in section for s in table.states), name
        assert all(f"| {t} |" in section for t in table.triggers), name
        for t in table.transitions:
            for guard in t.guards:
                assert f"- `{guard.name}`: " in section
            allowed = table.allowed_roles(t.trigger)
            if allowed == frozenset(Role):
                assert "any project member" in section
            else:
                assert all(r.value in section for r in allowed), (name, t.trigger)
        assert "```mermaid\nstateDiagram-v2\n" in section


def test_cep_docs_writes_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "machines.md"
    runner = CliRunner()
    stale = runner.invoke(app, ["docs", "--check", "--output", str(target)])
    assert isinstance(stale.exception, CepError) and "run `cep docs`" in str(stale.exception)
    assert not target.exists()
    assert runner.invoke(app, ["docs", "--output", str(target)]).exit_code == 0
    assert target.read_text(encoding="utf-8") == machines_document()
    checked = runner.invoke(app, ["docs", "--check", "--output", str(target)])
    assert checked.exit_code == 0 and "up to date" in checked.output


def _setting_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    names: list[str] = []
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names += _setting_names(kind, f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def _readme_config_rows() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {re.match(r"\| `([^`]+)`", row).group(1): row for row in rows}  # type: ignore[union-attr]


def test_readme_configuration_table_lists_every_setting() -> None:
    rows = _readme_config_rows()
    assert sorted(rows) == sorted(_setting_names(Settings))


@pytest.mark.parametrize("name", _setting_names(Settings))
def test_readme_names_the_environment_variable_of_each_setting(name: str) -> None:
    env = "CEP_" + name.replace(".", "__").upper()
    assert f"`{env}`" in _readme_config_rows()[name]
