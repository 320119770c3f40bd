"""Prefect flows of cep-engine: thin wrappers that parse parameters and call a service.

Only this package imports Prefect. Modules:

- :mod:`workflows.phase_transition`: the ``phase-transition`` flow (advance, hold, resume,
  cancel a project).
- :mod:`workflows.readiness_review`: the ``readiness-review`` flow (submit, validate or
  return a readiness checklist).
- :mod:`workflows.serve`: every deployment with its schedule, served from one process.

Each flow opens the cep-engine database named by :mod:`cep_engine.settings`, reads the clock
once at its entry, runs one service call (one transaction), emits the matching ``cep.*``
Prefect event and names its run after what happened. A refused change fails the run with the
one-line reason and changes nothing.
"""
