"""Diagrams and tables generated from the machine tables (``cep diagram``, README)."""

from __future__ import annotations

from cep_engine.errors import InvalidInput
from cep_engine.roles import Role
from cep_engine.states import MACHINES, MachineTable


def render_machine(name: str, fmt: str = "mermaid") -> str:
    """The machine ``name`` as Mermaid (``mermaid``) or as a Markdown table (``markdown``)."""
    table = MACHINES.get(name.strip().lower())
    if table is None:
        raise InvalidInput(f"unknown machine {name!r}; machines are: {', '.join(MACHINES)}")
    if fmt == "mermaid":
        return mermaid(table)
    if fmt == "markdown":
        return markdown(table)
    raise InvalidInput(f"unknown format {fmt!r}; use mermaid or markdown")


def mermaid(table: MachineTable[object]) -> str:
    """A Mermaid ``stateDiagram-v2``: one edge per transition, labelled trigger [guards]."""
    lines = ["stateDiagram-v2", f"    [*] --> {table.initial}"]
    for src, dest, t in table.edges():
        guards = f" [{', '.join(g.name for g in t.guards)}]" if t.guards else ""
        lines.append(f"    {src} --> {dest}: {t.trigger}{guards}")
    lines.extend(f"    {state} --> [*]" for state in sorted(table.final))
    return "\n".join(lines)


def markdown(table: MachineTable[object]) -> str:
    """A Markdown table: trigger, from, to, guards (with what they require) and roles."""
    lines = ["| trigger | from | to | guards | who may fire it |", "|---|---|---|---|---|"]
    for t in table.transitions:
        guards = "; ".join(f"`{g.name}`: {g.doc}" for g in t.guards) or "-"
        allowed = table.allowed_roles(t.trigger)
        if table.engine_only(t.trigger):
            roles = "the engine"
        elif allowed == frozenset(Role):
            roles = "any project member"
        else:
            roles = ", ".join(sorted(allowed))
        lines.append(
            f"| {t.trigger} | {', '.join(t.source)} | {'(same)' if t.dest == '=' else t.dest}"
            f" | {guards} | {roles} |"
        )
    return "\n".join(lines)
