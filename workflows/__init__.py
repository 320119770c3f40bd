"""Prefect flows of cep-engine: thin wrappers that parse parameters and call a service.

Only this package imports Prefect. Modules:

- :mod:`workflows.phase_transition`: the ``phase-transition`` flow (advance, hold, resume,
  cancel a project).
- :mod:`workflows.readiness_review`: the ``readiness-review`` flow (submit, validate or
  return a readiness checklist).
- :mod:`workflows.escalation_sweep`: the ``escalation-sweep`` flow (every issue idle past
  its next rung climbs, once per rung).
- :mod:`workflows.serve`: every deployment with its schedule, served from one process.

Each flow opens the cep-engine database named by :mod:`cep_engine.settings`, reads the clock
once at its entry (or takes ``as_of``), runs one service call (for the scheduled jobs, the
same :mod:`cep_engine.services.jobs` function the CLI calls), emits the matching ``cep.*``
Prefect events and names its run after what happened; the scheduled ones publish a table
artifact under a stable key. A refused change fails the run with the one-line reason and
changes nothing.
"""
