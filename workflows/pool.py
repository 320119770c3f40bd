"""Scale-out: every deployment on a process work pool, its flow runs started by Prefect workers.

``cep deploy --pool NAME`` registers the deployments of :mod:`workflows.serve` (same names and
schedules as ``cep serve``) on a work pool of type ``process``, created if missing, instead of
serving them from one process. Each ``cep worker --pool NAME`` (on any machine that can reach
the Prefect API and the database) polls the pool and runs each flow run in a subprocess that
imports the flow by its module path from the installed package: nothing is built, pushed or
pulled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from cep_engine.errors import ConfigError
from cep_engine.settings import Settings
from workflows.serve import SERVED, Served

POOL_TYPE = "process"


def ensure_process_pool(name: str) -> bool:
    """Create the work pool ``name`` of type ``process`` unless it exists; True if created.

    A pool of that name and another type is refused: its workers could not run these flows.
    """
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(WorkPoolCreate(name=name, type=POOL_TYPE,
                                                   base_job_template=template))
            return True
    if pool.type != POOL_TYPE:
        raise ConfigError(f"work pool {name!r} is of type {pool.type!r}, not {POOL_TYPE!r}; "
                          "pass --pool with another name")
    return False


def deploy_to_pool(settings: Settings, pool: str, env: Mapping[str, str],
                   served: Sequence[Served] = SERVED) -> list[UUID]:
    """Register ``served`` on ``pool``; each flow run gets ``env`` in its environment.

    ``env`` carries what the runs need to find the cep-engine database
    (``CEP_DATABASE_URL``, ``CEP_CONFIG``); it is stored with each deployment.
    """
    ids = []
    for entry in served:
        deployment = entry.deployment(settings)
        deployment.job_variables = {"env": dict(env)}
        deployment_id = deployment.apply(work_pool_name=pool)
        assert isinstance(deployment_id, UUID)  # called synchronously
        ids.append(deployment_id)
    return ids
