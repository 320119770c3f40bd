"""Same code, two paths: state-changing commands run as Prefect flow runs or in-process.

When a Prefect API is configured (``PREFECT_API_URL``) and ``--local`` is not given, a
command runs the matching flow of :mod:`workflows` in this process as a flow run the API
records (visible in the UI, with its logs and events); otherwise it calls the service
directly. Both paths call the same service function with the same arguments, so they leave
the same database state. Prefect is imported only on the flow path.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cep_engine.cli._prefect_env import api_url, quiet, ui_url

if TYPE_CHECKING:
    from cep_engine.cli._runtime import Runtime

Outcome = tuple[dict[str, Any], str | None]
"""What a command did, and the address of its flow run (``None`` in-process)."""


def use_flows(local: bool) -> bool:
    """Whether a state-changing command runs as a flow run."""
    return not local and api_url() is not None


def phase(runtime: Runtime, key: str, trigger: str, *, actor: str, reason: str,
          local: bool) -> Outcome:
    """Fire a phase trigger; the outcome has ``from`` and ``to``."""
    if use_flows(local):
        _prepare_prefect()
        from workflows.phase_transition import phase_transition

        return _as_flow_run(runtime, phase_transition, project=key, trigger=trigger,
                            actor=actor, reason=reason)
    from cep_engine.cli._runtime import now
    from cep_engine.services import projects

    fired = projects.fire_phase(runtime.store(), key, trigger, actor=actor, now=now(),
                                reason=reason)
    return {"from": fired.source, "to": fired.dest}, None


def checklist(runtime: Runtime, key: str, stage: str, action: str, *, actor: str,
              local: bool, signer: str = "", attestation: str = "",
              comment: str = "") -> Outcome:
    """Submit, validate or return a checklist; a submission's outcome has ``version`` and
    ``signer``."""
    if use_flows(local):
        _prepare_prefect()
        from cep_engine.services.readiness import stage as parse_stage
        from workflows.readiness_review import readiness_review

        return _as_flow_run(runtime, readiness_review, project=key,
                            stage=parse_stage(stage).value, action=action, actor=actor,
                            signer=signer, attestation=attestation, comment=comment)
    from cep_engine.cli._runtime import now
    from cep_engine.services import readiness

    store = runtime.store()
    if action == "submit":
        sub = readiness.submit(store, key, stage, signer=signer, attestation=attestation,
                               actor=actor, now=now())
        return {"version": sub.number, "signer": sub.signer_name, "state": "submitted"}, None
    result = readiness.review(store, key, stage, action, actor=actor, now=now(),
                              comment=comment)
    return {"state": result.decision, "comment": result.comment}, None


def sweep(runtime: Runtime, *, as_of: datetime, dry_run: bool, policy_file: Path | None,
          local: bool) -> Outcome:
    """Run the escalation sweep; the outcome is the sweep report's dict.

    A ``--policy`` file other than the configured one is an experiment on this machine: the
    sweep then runs in-process (the deployment always sweeps with the configured policy).
    """
    if use_flows(local) and policy_file is None:
        _prepare_prefect()
        from workflows.escalation_sweep import escalation_sweep

        return _as_flow_run(runtime, escalation_sweep, as_of=as_of, dry_run=dry_run)
    from cep_engine.services import jobs

    report = jobs.sweep(runtime.store(), runtime.settings, as_of=as_of, dry_run=dry_run,
                        policy_file=policy_file)
    return report.as_dict(), None


def deliver(runtime: Runtime, *, local: bool) -> Outcome:
    """One delivery run; the outcome is the delivery report's dict. As a flow run it is not
    retried: the command reports what happened, as in-process."""
    if use_flows(local):
        _prepare_prefect()
        from workflows.deliver_notifications import deliver_notifications

        return _as_flow_run(runtime, deliver_notifications.with_options(retries=0),
                            failed_ok=True)
    from cep_engine.cli._runtime import now
    from cep_engine.services import jobs

    return jobs.deliver(runtime.store(), runtime.settings, now=now()).as_dict(), None


def remind(runtime: Runtime, *, as_of: datetime, days_before: int, local: bool) -> Outcome:
    """Queue the due reminders; the outcome is the reminder report's dict."""
    if use_flows(local):
        _prepare_prefect()
        from workflows.deadline_reminders import deadline_reminders

        return _as_flow_run(runtime, deadline_reminders, as_of=as_of, days_before=days_before)
    from cep_engine.services import jobs

    report = jobs.remind(runtime.store(), runtime.settings, as_of=as_of,
                         days_before=days_before)
    return report.as_dict(), None


def risk_check(runtime: Runtime, *, as_of: datetime, local: bool) -> Outcome:
    """Trigger the risks whose trigger date has arrived; the outcome has ``triggered``."""
    if use_flows(local):
        _prepare_prefect()
        from workflows.risk_trigger_check import risk_trigger_check

        return _as_flow_run(runtime, risk_trigger_check, as_of=as_of)
    from cep_engine.services import jobs

    fired = jobs.trigger_risks(runtime.store(), runtime.settings, as_of=as_of)
    return {"as_of": as_of.isoformat(), "triggered": fired}, None


def _prepare_prefect() -> None:
    """Before Prefect is imported: no analytics, and no run logs on the console (the
    command prints its one line; the logs are in the UI)."""
    quiet(os.environ)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


def _as_flow_run(runtime: Runtime, flow: Any, *, failed_ok: bool = False,
                 **parameters: Any) -> Outcome:
    from workflows._support import run_in_process

    runtime.store()  # a missing schema fails here, before a flow run is created
    result, run_id = run_in_process(flow, runtime.settings, parameters, failed_ok=failed_ok)
    api = api_url() or ""
    return result, f"{ui_url(api)}/runs/flow-run/{run_id}" if run_id else None
