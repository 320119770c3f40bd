"""Every deployment of cep-engine, with its schedule, served from one process.

:data:`SERVED` is the registry: one line per flow. A scheduled flow names the function that
builds its schedule from the settings (``[schedules]`` in ``config/cep.toml``, or
``CEP_SCHEDULES__*``); a flow people start by hand (from the CLI or the UI's run form) has
none:

=========================  ===========================  ============================
deployment                 schedule (default)           setting
=========================  ===========================  ============================
phase-transition/cep       by hand (CLI or run form)    -
readiness-review/cep       by hand (CLI or run form)    -
escalation-sweep/cep       every 5 minutes              ``sweep_every_minutes``
deliver-notifications/cep  every minute                 ``delivery_every_seconds``
deadline-reminders/cep     daily 07:00 in ``timezone``  ``reminders_cron``
risk-trigger-check/cep     every hour                   ``risk_check_every_minutes``
=========================  ===========================  ============================
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import TerminationSignal
from prefect.logging import get_logger
from prefect.runner import Runner
from prefect.schedules import Cron, Interval, Schedule
from prefect.types.entrypoint import EntrypointType

from cep_engine import __version__
from cep_engine.settings import Settings
from workflows.deadline_reminders import deadline_reminders
from workflows.deliver_notifications import deliver_notifications
from workflows.escalation_sweep import escalation_sweep
from workflows.phase_transition import phase_transition
from workflows.readiness_review import readiness_review
from workflows.risk_trigger_check import risk_trigger_check

DEPLOYMENT = "cep"
"""Every deployment's name; run one as ``<flow name>/cep``, e.g. ``phase-transition/cep``."""

TAGS = ("cep-engine",)


def _anchor(settings: Settings) -> datetime:
    """A fixed start for interval schedules, so a restart does not shift them."""
    return datetime(2026, 1, 1, tzinfo=ZoneInfo(settings.timezone))


def sweep_schedule(settings: Settings) -> Schedule:
    """The escalation sweep: every ``sweep_every_minutes`` (default 5)."""
    every = timedelta(minutes=settings.schedules.sweep_every_minutes)
    return Interval(every, anchor_date=_anchor(settings), timezone=settings.timezone,
                    slug="sweep")


def delivery_schedule(settings: Settings) -> Schedule:
    """Notification delivery: every ``delivery_every_seconds`` (default 60)."""
    every = timedelta(seconds=settings.schedules.delivery_every_seconds)
    return Interval(every, anchor_date=_anchor(settings), timezone=settings.timezone,
                    slug="delivery")


def reminders_schedule(settings: Settings) -> Schedule:
    """Deadline reminders: ``reminders_cron`` (default daily 07:00) in ``timezone``."""
    return Cron(settings.schedules.reminders_cron, timezone=settings.timezone,
                slug="reminders")


def risk_schedule(settings: Settings) -> Schedule:
    """The risk-trigger check: every ``risk_check_every_minutes`` (default 60)."""
    every = timedelta(minutes=settings.schedules.risk_check_every_minutes)
    return Interval(every, anchor_date=_anchor(settings), timezone=settings.timezone,
                    slug="risk-check")


@dataclass(frozen=True)
class Served:
    """One served deployment: a flow and, when it runs on a schedule, how to build it."""

    flow: Flow[..., Any]
    schedule: Callable[[Settings], Schedule] | None = None

    def deployment(self, settings: Settings) -> RunnerDeployment:
        """The deployment of this flow under :data:`DEPLOYMENT`."""
        schedules = [self.schedule(settings)] if self.schedule else []
        deployment = self.flow.to_deployment(
            name=DEPLOYMENT, schedules=schedules, tags=list(TAGS), version=__version__,
            description=self.flow.description, entrypoint_type=EntrypointType.MODULE_PATH,
        )
        assert isinstance(deployment, RunnerDeployment)  # called synchronously
        return deployment


SERVED: list[Served] = [
    Served(phase_transition),
    Served(readiness_review),
    Served(escalation_sweep, sweep_schedule),
    Served(deliver_notifications, delivery_schedule),
    Served(deadline_reminders, reminders_schedule),
    Served(risk_trigger_check, risk_schedule),
]
"""Every deployment ``cep serve`` and ``cep up`` serve."""


def deployments(settings: Settings, served: Sequence[Served] = SERVED) -> list[RunnerDeployment]:
    """The deployments of ``served`` with the schedules ``settings`` give."""
    return [entry.deployment(settings) for entry in served]


def serve_all(settings: Settings, on_ready: Callable[[], None] | None = None) -> None:
    """Register every deployment, call ``on_ready``, then serve until Ctrl-C or SIGTERM.

    Like :func:`prefect.serve`, with the announcement made once the deployments exist.
    """
    runner = Runner(pause_on_shutdown=True)
    for deployment in deployments(settings):
        runner.add_deployment(deployment)
    if on_ready is not None:
        on_ready()
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        get_logger("cep").info("interrupted; deployments paused")
