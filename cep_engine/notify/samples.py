"""Sample template contexts, for ``cep notify preview KIND`` and the template tests.

Each sample has the shape delivery gives a template: the outbox row's context, enriched
with ``project``, ``to`` and ``cc`` (and, for escalations, the issue and its ladder).
"""

from __future__ import annotations

from typing import Any

_PROJECT = {"key": "SDC-042", "name": "Move agency servers", "agency": "Department of Licensing"}
_LIAISON = {"name": "Lee Liaison", "email": "lee.liaison@cts.wa.gov", "role": "client_liaison"}
_PM = {"name": "Pat Pm", "email": "pat.pm@cts.wa.gov", "role": "assigned_pm"}
_COORD = {"name": "Casey Coord", "email": "casey.coord@dol.wa.gov",
          "role": "implementation_coordinator"}
_SENIOR = {"name": "Sam Senior", "email": "sam.senior@cts.wa.gov", "role": "senior_pm"}
_SPONSOR = {"name": "Cto", "email": "cto@cts.wa.gov", "role": "project_sponsor"}
_CHECKLIST = {"stage": "cutover", "guide_title": "Cutover readiness", "submission_number": 2}

_SAMPLES: dict[str, dict[str, Any]] = {
    "checklist_submitted": {
        **_CHECKLIST, "signer": "Casey Coord", "submitted_by": _COORD["email"],
        "at": "2026-11-02T17:00:00+00:00", "task_count": 12,
        "to": [_PM], "cc": [_LIAISON],
    },
    "checklist_returned": {
        **_CHECKLIST, "reviewer": _PM["email"], "at": "2026-11-03T18:30:00+00:00",
        "comment": "Firewall rules for the DR site are not tested yet.",
        "to": [_COORD], "cc": [_LIAISON],
    },
    "checklist_validated": {
        **_CHECKLIST, "reviewer": _PM["email"], "at": "2026-11-04T16:00:00+00:00",
        "comment": "", "to": [_COORD, _LIAISON], "cc": [],
    },
    "phase_changed": {
        "from_phase": "planning", "to_phase": "execution", "trigger": "advance",
        "actor": _PM["email"], "reason": "Readiness validated for every stage.",
        "at": "2026-11-05T17:00:00+00:00", "to": [_LIAISON, _COORD], "cc": [_SENIOR],
    },
    "escalation": {
        "issue_id": 7, "level": "project_sponsor",
        "issue": {
            "number": 7, "title": "Storage array delivery slipped two weeks",
            "priority": "critical", "status": "open",
            "description": "The vendor moved delivery; cutover date at risk.",
            "opened_at": "2026-11-02T17:00:00+00:00",
            "owner": {"name": "Tess Team", "email": "tess.team@cts.wa.gov"},
        },
        "stale_since": "2026-11-02T17:00:00+00:00",
        "escalated_at": "2026-11-03T18:00:00+00:00",
        "stale_business_hours": "6.0 business hours (0.7 business days)",
        "ladder": [
            {"level": "senior_pm", "at": "2026-11-02T19:00:00+00:00",
             "to": [_SENIOR], "cc": [_PM]},
            {"level": "project_sponsor", "at": "2026-11-03T18:00:00+00:00",
             "to": [_SPONSOR], "cc": [_SENIOR, _PM]},
        ],
        "to": [_SPONSOR], "cc": [_SENIOR, _PM],
    },
    "reminder_due_soon": {
        "item_type": "readiness task", "item_ref": "cutover #4",
        "item_title": "Confirm the DNS change window with the agency",
        "due_date": "2026-11-10", "owner": _COORD["email"], "to": [_COORD], "cc": [],
    },
    "reminder_overdue": {
        "item_type": "action item", "item_ref": "A-12",
        "item_title": "Send the signed interconnect agreement",
        "due_date": "2026-11-01", "owner": _COORD["email"], "to": [_COORD], "cc": [_LIAISON],
    },
    "risk_triggered": {
        "risk_number": 3, "risk_title": "Key DBA unavailable during cutover",
        "score": 16, "probability": 4, "impact": 4,
        "trigger_text": "DBA leave request approved", "issue_number": 8,
        "to": [_PM], "cc": [_SENIOR],
    },
}


def sample_context(kind: str) -> dict[str, Any]:
    """A complete context for template ``kind`` (``digest`` included)."""
    if kind == "digest":
        return {
            "person": _LIAISON, "count": 2, "items": [
                {"kind": "checklist_submitted", "project": _PROJECT,
                 "subject": "[SDC-042] Cutover readiness checklist submitted (version 2)",
                 "text": "Casey Coord submitted the signed checklist."},
                {"kind": "phase_changed", "project": _PROJECT,
                 "subject": "[SDC-042] Phase changed: planning -> execution",
                 "text": "The project moved from planning to execution."},
            ],
        }
    return {"project": _PROJECT, "actor": _PM["email"], **_SAMPLES[kind]}
