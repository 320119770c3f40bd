"""The engine's recurring jobs, built from the settings: what the CLI and the flows both run.

``cep escalate``, ``cep notify deliver``, ``cep remind`` and ``cep risk sweep`` call these
in-process; the ``escalation-sweep``, ``deliver-notifications``, ``deadline-reminders`` and
``risk-trigger-check`` flows call the same functions. Each takes the store, the settings and
the instant (``as_of`` or ``now``) and turns the settings into the service's inputs: the
escalation policy and its business calendar (``escalation.yaml`` in the config folder), the
SMTP mailer and delivery settings (``[notify]``). Every job is idempotent: run again, it
does nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cep_engine.escalation.policy import EscalationPolicy
    from cep_engine.escalation.sweep import SweepReport
    from cep_engine.notify.deliver import DeliveryReport
    from cep_engine.services.reminders import ReminderReport
    from cep_engine.settings import Settings
    from cep_engine.store.db import Store

REMINDER_DAYS_BEFORE = 2
"""Business days before a due date when the due-soon reminder goes out, by default."""


def policy(settings: Settings, path: Path | None = None) -> EscalationPolicy:
    """The escalation policy in force: ``path``, else ``escalation.yaml`` in the config
    folder."""
    from cep_engine.escalation.policy import load_policy

    return load_policy(path or settings.config_dir / "escalation.yaml")


def sweep(store: Store, settings: Settings, *, as_of: datetime, dry_run: bool = False,
          policy_file: Path | None = None, detail: int = 0) -> SweepReport:
    """Escalate every issue idle past its next rung's threshold as of ``as_of``, once per
    rung (see :func:`cep_engine.escalation.sweep.run_sweep`)."""
    from cep_engine.escalation.sweep import run_sweep

    calendar = policy(settings, policy_file).business_calendar
    return run_sweep(store, as_of=as_of, calendar=calendar, dry_run=dry_run, detail=detail)


def deliver(store: Store, settings: Settings, *, now: datetime) -> DeliveryReport:
    """One delivery run over the configured SMTP server (see
    :func:`cep_engine.notify.deliver.deliver`)."""
    from cep_engine.notify.deliver import deliver as run
    from cep_engine.notify.mailer import SmtpMailer

    return run(store, SmtpMailer(settings.notify), now=now, settings=settings.notify,
               timezone=settings.timezone)


def remind(store: Store, settings: Settings, *, as_of: datetime,
           days_before: int = REMINDER_DAYS_BEFORE) -> ReminderReport:
    """Queue the due-soon and overdue reminders not queued yet, in the policy's calendar
    (see :func:`cep_engine.services.reminders.run_reminders`)."""
    from cep_engine.services.reminders import run_reminders

    return run_reminders(store, as_of=as_of, calendar=policy(settings).business_calendar,
                         days_before=days_before)


def trigger_risks(store: Store, settings: Settings, *, as_of: datetime) -> list[str]:
    """Trigger every risk whose trigger date has arrived; their names, e.g. ``SDC-042 R-3``
    (see :func:`cep_engine.services.risks.trigger_due_risks`)."""
    from cep_engine.services.risks import trigger_due_risks

    return trigger_due_risks(store, as_of=as_of, policy=policy(settings))


def triggered(store: Store, names: list[str]) -> list[dict[str, Any]]:
    """The risks ``names`` (as :func:`trigger_risks` returns them) with the issue each opened
    and its action items, for reports."""
    from cep_engine.services.log_queries import show_risk

    out = []
    with store.connect() as conn:
        for name in names:
            key, _, number = name.partition(" R-")
            out.append(show_risk(conn, key, int(number)))
    return out
