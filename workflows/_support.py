"""What the flows share: settings and store, run naming, events, artifacts and refusals."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar
from uuid import UUID

from prefect import get_client
from prefect.artifacts import acreate_table_artifact
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import State
from prefect.context import AsyncClientContext, FlowRunContext, SyncClientContext
from prefect.events import emit_event
from prefect.logging import get_run_logger
from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY
from prefect.states import Failed

from cep_engine.errors import CepError, InvalidInput
from cep_engine.services import configure
from cep_engine.settings import Settings, load_settings
from cep_engine.store.db import Store

_settings: ContextVar[Settings | None] = ContextVar("cep_flow_settings", default=None)


@contextmanager
def using_settings(settings: Settings) -> Iterator[None]:
    """Run flows called in this context with ``settings`` (the CLI passes its flags this way)."""
    token = _settings.set(settings)
    try:
        yield
    finally:
        _settings.reset(token)


def flow_settings() -> Settings:
    """The settings of this run: the caller's (see :func:`using_settings`), else loaded;
    applied to the use cases."""
    settings = _settings.get() or load_settings()
    configure(settings)
    return settings


@lru_cache(maxsize=8)
def _store_for(url: str) -> Store:
    store = Store.from_url(url)
    store.require_schema()
    return store


def flow_store() -> Store:
    """The cep-engine store of this run, one engine per database URL and process."""
    return _store_for(flow_settings().effective_database_url)


def project_resource(key: str) -> dict[str, str]:
    """A project as a Prefect event resource."""
    return {"prefect.resource.id": f"cep.project.{key}", "prefect.resource.name": key}


def emit(event: str, key: str, payload: Mapping[str, Any],
         related: Sequence[Mapping[str, str]] = ()) -> None:
    """Emit a domain event about project ``key``."""
    about(event, project_resource(key), payload, related)


async def label_run(name: str, tags: Sequence[str]) -> None:
    """Rename the current flow run after what happened and add ``tags`` to it."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    run = ctx.flow_run
    merged = list(dict.fromkeys([*run.tags, *tags]))
    if isinstance(ctx.client, PrefectClient):
        await ctx.client.update_flow_run(run.id, name=name, tags=merged)
        return
    async with get_client() as client:
        await client.update_flow_run(run.id, name=name, tags=merged)


def refused(exc: CepError) -> State[Any]:
    """The final state of a run whose change was refused: Failed, with the one-line reason.

    Returning the state (instead of raising) keeps tracebacks out of the run's logs; a caller
    in the same process still gets ``exc`` back from the run's result.
    """
    get_run_logger().error("%s: %s", type(exc).__name__, exc.message)
    return Failed(message=exc.message, data=exc)


@asynccontextmanager
async def prefect_clients() -> AsyncIterator[None]:
    """Share one async and one sync Prefect API client among the flow runs in this block.

    Without it every flow run builds its own clients: a CSRF-token request and fresh
    connections each, and an SSL context each; Prefect also opens a sync client per read of
    the server's default result storage. The clients made here reuse this process's SSL
    context (see :func:`_tls_context`), so a block costs no CA-bundle load after the first.
    A process that runs flows in-process wraps them in this.
    """
    async with _async_clients():
        with _sync_clients():
            yield


@asynccontextmanager
async def _async_clients() -> AsyncIterator[None]:
    ctx = AsyncClientContext.get()
    if ctx and ctx.client.loop is asyncio.get_running_loop():
        yield
        return
    async with _default_like(AsyncClientContext(httpx_settings=_tls_settings())):
        yield


@contextmanager
def _sync_clients() -> Iterator[None]:
    if SyncClientContext.get():
        yield
        return
    with _default_like(SyncClientContext(httpx_settings=_tls_settings())):
        yield


def _tls_settings() -> dict[str, Any]:
    return {"verify": _tls_context(PREFECT_API_SSL_CERT_FILE.value() or None,
                                   bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()))}


@lru_cache(maxsize=4)
def _tls_context(cafile: str | None, insecure: bool) -> ssl.SSLContext:
    """The SSL context each Prefect client would build for itself (loading the CA bundle:
    ~25 ms of CPU here, even for a plain ``http://`` API), built once per process."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    import certifi

    return ssl.create_default_context(cafile=cafile or certifi.where())


_Ctx = TypeVar("_Ctx", AsyncClientContext, SyncClientContext)


def _default_like(ctx: _Ctx) -> _Ctx:
    """``ctx``, marked as holding clients of default settings: its clients differ from the
    ones Prefect makes only in reusing :func:`_tls_context`, and Prefect's own
    ``get_client()`` calls (default settings) must find them."""
    ctx._httpx_settings = None
    return ctx


def run_in_process(
    flow: Callable[..., Awaitable[Any]], settings: Settings, parameters: Mapping[str, Any],
    *, failed_ok: bool = False,
) -> tuple[Any, UUID | None]:
    """Run an async ``flow`` here, against the configured Prefect API, with ``settings``.

    Returns the flow's result and the flow run's id; a refused change raises its
    :class:`~cep_engine.errors.CepError` as the service raised it. With ``failed_ok``, a run
    that failed with a result (a delivery that could not reach the mail server) returns it.
    """

    async def go() -> tuple[Any, UUID | None]:
        async with prefect_clients():
            with using_settings(settings):
                state = await flow(**parameters, return_state=True)
        result = await state.aresult(raise_on_failure=not failed_ok)
        return result, state.state_details.flow_run_id

    return asyncio.run(go())


def flush() -> None:
    """Send the run logs and events still queued in this process (before its API goes)."""
    from prefect._internal.concurrency.services import QueueService
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        assert issubclass(service, QueueService)
        service.drain_all(timeout=10)


def about(event: str, resource: Mapping[str, str], payload: Mapping[str, Any],
          related: Sequence[Mapping[str, str]] = ()) -> None:
    """Emit a domain event about any ``resource`` (an issue, a risk, a message)."""
    emit_event(event=event, resource=dict(resource), payload=dict(payload),
               related=[dict(r) for r in related])


def related_project(key: str) -> dict[str, str]:
    """Project ``key`` as the related resource of an event about one of its entries."""
    return {**project_resource(key), "prefect.resource.role": "project"}


def instant(as_of: datetime | None) -> datetime:
    """``as_of``, else now (the clock read at the flow's entry); a naive time is refused."""
    if as_of is None:
        return datetime.now(UTC)
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise InvalidInput(f"as_of {as_of.isoformat()} has no time zone; give one such as "
                           "2026-12-01T10:00-08:00 or 2026-12-01T18:00Z")
    return as_of


def stamp(at: datetime) -> str:
    """``at`` in UTC to the minute, for run names: ``2026-11-26T10:00Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


async def publish_table(key: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                        description: str) -> None:
    """Publish ``rows`` as the table artifact ``key`` (its columns shown even when empty)."""
    table: dict[str, list[Any]] = {c: [row.get(c) for row in rows] for c in columns}
    await acreate_table_artifact(table=table, key=key, description=description)
