"""Tables for ``cep issue``, ``cep risk``, ``cep action`` and ``cep remind`` (``--json``
bypasses these)."""

from __future__ import annotations

from typing import Any

from cep_engine.cli._runtime import console, short_time, table

Row = dict[str, Any]


def issues(rows: list[Row]) -> None:
    """``cep issue list``."""
    table(None, ["#", "title", "priority", "status", "level", "owner", "last activity"],
          [[r["number"], r["title"], r["priority"], r["status"], r["level"], r["owner"],
            short_time(r["last_activity_at"])] for r in rows])


def issue(data: Row) -> None:
    """``cep issue show``."""
    console.print(f"[bold]{data['project']}#{data['number']}[/bold] {data['title']}")
    console.print(f"priority {data['priority']}   status {data['status']}   owner "
                  f"{data['owner'] or '-'}" + (f"   from risk {data['risk']}" if data["risk"]
                                              else ""))
    if data["description"]:
        console.print(data["description"])
    lad = data["ladder"]
    console.print(f"ladder: level {lad['level']} (cycle {lad['cycle']}), idle since "
                  f"{short_time(lad['stale_since'])}"
                  + (f", snoozed until {short_time(lad['snoozed_until'])}"
                     if lad["snoozed_until"] else ""))
    nxt = lad["next"]
    if nxt:
        console.print(f"  next: {nxt['level']} after {nxt['after']} idle"
                      + (f", due {short_time(nxt['due_at'])}" if nxt["due_at"] else "")
                      + f"; tells {', '.join(nxt['to']) or '(nobody assigned)'}")
    table("escalations", ["level", "cycle", "at", "to", "cc", "notice"],
          [[e["level"], e["cycle"], short_time(e["escalated_at"]), ", ".join(e["to"]),
            ", ".join(e["cc"]), e["notice"]] for e in data["escalations"]])
    table("activity", ["at", "actor", "kind", "change", "text"],
          [[short_time(a["at"]), a["actor"], a["kind"],
            f"{a['from'] or ''} -> {a['to']}" if a["to"] else "", a["text"]]
           for a in data["activity"]])


def risks(rows: list[Row]) -> None:
    """``cep risk list``."""
    table(None, ["risk", "title", "P", "I", "score", "status", "trigger date", "owner",
                 "issue"],
          [[r["ref"], r["title"], r["probability"], r["impact"], r["score"], r["status"],
            r["trigger_date"], r["owner"], f"#{r['issue']}" if r["issue"] else ""]
           for r in rows])


def risk(data: Row) -> None:
    """``cep risk show``."""
    console.print(f"[bold]{data['project']} {data['ref']}[/bold] {data['title']} - "
                  f"[bold]{data['status']}[/bold]")
    console.print(f"probability {data['probability']} x impact {data['impact']} = score "
                  f"{data['score']}   owner {data['owner'] or '-'}")
    console.print(f"trigger: {data['trigger'] or '-'}"
                  + (f" (on {data['trigger_date']})" if data["trigger_date"] else ""))
    console.print(f"mitigation: {data['mitigation'] or '-'}")
    if data["issue"]:
        console.print(f"opened issue #{data['issue']}")
    if data["actions"]:
        actions(data["actions"])


def actions(rows: list[Row]) -> None:
    """``cep action list``."""
    table(None, ["item", "title", "owner", "due", "source", "status"],
          [[r["ref"], r["title"], r["owner"], r["due_date"],
            r["source"] + (f" {r['source_ref']}" if r["source_ref"] else ""), r["status"]]
           for r in rows])


def reminders(data: Row) -> None:
    """``cep remind``."""
    console.print(f"{data['due_soon']} due-soon and {data['overdue']} overdue reminder(s) "
                  f"queued (today {data['today']}; due soon = due by {data['due_soon_until']})")
    if data["queued"]:
        table(None, ["when", "project", "item", "title", "due", "owner"],
              [[q["when"], q["project"], f"{q['item']} {q['ref']}", q["title"], q["due_date"],
                q["owner"]] for q in data["queued"]])
