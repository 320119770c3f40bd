"""Tables for the read commands (``--json`` bypasses these)."""

from __future__ import annotations

from typing import Any

from cep_engine.cli._runtime import console, short_time, table

Row = dict[str, Any]


def projects(rows: list[Row]) -> None:
    """``cep project list``."""
    table(None, ["key", "name", "agency", "phase", "updated"],
          [[r["key"], r["name"], r["agency"], _phase(r), short_time(r["updated_at"])]
           for r in rows])


def _phase(r: Row) -> str:
    return f"on_hold (from {r['held_from']})" if r["held_from"] else str(r["phase"])


def project(data: Row) -> None:
    """``cep project show``."""
    console.print(f"[bold]{data['key']}[/bold] {data['name']} ({data['agency']})")
    console.print(f"phase: {_phase(data)}   version: {data['version']}")
    roles(data["roles"])
    table("readiness guides", ["stage", "state", "done"],
          [[g["stage"], g["state"], f"{g['done']}/{g['tasks']}"] for g in data["guides"]])
    phase(data)


def phase(data: Row) -> None:
    """``cep phase show``: the phase, what may be fired, and the next gate."""
    console.print(f"{data['key']}: {_phase(data)}; triggers now: "
                  f"{', '.join(data['triggers']) or 'none (final)'}")
    for g in data["next_advance"]:
        mark = "[green]pass[/green]" if g["passed"] else "[red]FAIL[/red]"
        console.print(f"  advance guard {g['guard']}: {mark}"
                      + (f" - {g['detail']}" if g["detail"] else ""))


def roles(rows: list[Row]) -> None:
    """``cep role list``."""
    table("roles", ["role", "email", "name"], [[r["role"], r["email"], r["name"]] for r in rows])


def checklist(data: Row) -> None:
    """``cep checklist show``."""
    console.print(f"{data['project']}/{data['stage']}: {data['title']} - [bold]{data['state']}"
                  "[/bold]")
    table(None, ["#", "task", "party", "owner", "due", "done by", "done at"],
          [[t["number"], t["text"], t["party"], t["owner"], t["due_date"], t["done_by"],
            short_time(t["done_at"])] for t in data["tasks"]])
    for s in data["submissions"]:
        review = s["review"]
        verdict = (f"{review['decision']} by {review['reviewer']} "
                   f"{short_time(review['reviewed_at'])}"
                   + (f": {review['comment']}" if review["comment"] else "")
                   if review else "awaiting review")
        console.print(f"  version {s['version']}: signed by {s['signer_name']} "
                      f"({s['submitted_by']}) {short_time(s['submitted_at'])} - {verdict}")


def history(rows: list[Row]) -> None:
    """``cep history``."""
    table(None, ["#", "at", "actor", "roles", "entity", "trigger", "from", "to", "ok", "note"],
          [[r["id"], short_time(r["at"]), r["actor"], ",".join(r["actor_roles"]), r["entity"],
            r["trigger"], r["from"], r["to"], "yes" if r["accepted"] else "REFUSED",
            r["reason"]] for r in rows])
