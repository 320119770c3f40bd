"""``cep up`` and ``cep serve``: the engine as Prefect deployments.

``cep serve`` serves every deployment of :mod:`workflows.serve` from this process against the
Prefect API in ``PREFECT_API_URL``. ``cep up`` is the whole engine on one machine: it
prepares the data directory, migrates the database, starts a Prefect server on SQLite under
``<data dir>/prefect`` (unless ``PREFECT_API_URL`` names one, or a healthy server already
answers on the port), waits for it, then serves. Ctrl-C stops what it started.

Scale-out instead of one serving process: ``cep deploy --pool NAME`` registers the same
deployments on a process work pool (see :mod:`workflows.pool`), and ``cep worker --pool NAME``,
on as many machines as wanted, runs their flow runs.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from cep_engine.cli._common import rt

if TYPE_CHECKING:
    from cep_engine.cli._prefect_env import LocalServer

Host = Annotated[str, typer.Option(help="Address of the local Prefect server.",
                                   envvar="CEP_PREFECT_HOST")]
Port = Annotated[int, typer.Option(help="Port of the local Prefect server.",
                                   envvar="CEP_PREFECT_PORT")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the server to be healthy.")]
Pool = Annotated[str, typer.Option(help="Name of the process work pool.", envvar="CEP_POOL")]
Limit = Annotated[int | None, typer.Option(min=1, help="Most flow runs this worker runs at once.")]
WorkerName = Annotated[str | None, typer.Option("--name", help="Name of this worker.")]


def serve(ctx: typer.Context) -> None:
    """Serve every cep-engine deployment from this process (needs PREFECT_API_URL)."""
    _serve(ctx, _require_api("start a server with `cep up`, or point PREFECT_API_URL at one"))


def deploy(ctx: typer.Context, pool: Pool = "cep") -> None:
    """Register every deployment on a process work pool (created if missing) for workers."""
    from cep_engine.cli._prefect_env import QUIET, quiet
    from cep_engine.cli._runtime import done

    _require_api()
    runtime = rt(ctx)
    runtime.store().dispose()  # refuses a database `cep init` has not prepared
    quiet(os.environ)
    env = {**QUIET, "CEP_DATABASE_URL": runtime.settings.effective_database_url}
    if config := runtime.config or os.environ.get("CEP_CONFIG"):
        env["CEP_CONFIG"] = str(Path(config).resolve())
    from workflows.pool import deploy_to_pool, ensure_process_pool
    from workflows.serve import SERVED

    created = ensure_process_pool(pool)
    deploy_to_pool(runtime.settings, pool, env)
    names = ", ".join(f"{s.flow.name}/cep" for s in SERVED)
    done(f"{'created' if created else 'using'} work pool {pool!r} (process); deployed {names}. "
         f"Start workers with `cep worker --pool {pool}`.")


def worker(pool: Pool = "cep", limit: Limit = None, name: WorkerName = None) -> None:
    """Run a Prefect worker that starts the flow runs of a work pool (see `cep deploy`)."""
    import sys

    from cep_engine.cli._prefect_env import quiet, work_pool_exists
    from cep_engine.errors import ConfigError

    api = _require_api()
    if not work_pool_exists(api, pool):
        raise ConfigError(f"no work pool {pool!r} at {api}; create it and its deployments "
                          f"with `cep deploy --pool {pool}`")
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type",
           "process", "--install-policy", "never", "--no-create-pool-if-not-found"]
    cmd += ["--limit", str(limit)] if limit else []
    cmd += ["--name", name] if name else []
    sys.stdout.flush()
    os.execve(sys.executable, cmd, dict(quiet(dict(os.environ))))


def _require_api(hint: str = "point it at the Prefect server") -> str:
    """The healthy Prefect API of ``PREFECT_API_URL``, or a ConfigError saying what to do."""
    from cep_engine.cli._prefect_env import api_url, healthy
    from cep_engine.errors import ConfigError

    api = api_url()
    if api is None:
        raise ConfigError(f"PREFECT_API_URL is not set; {hint} (http://HOST:4200/api)")
    if not healthy(api):
        raise ConfigError(f"no healthy Prefect API at PREFECT_API_URL={api}")
    return api


def up(ctx: typer.Context, host: Host = "127.0.0.1", port: Port = 4200,
       timeout: Timeout = 120.0) -> None:
    """Start the whole engine: database, Prefect server and UI, every deployment served."""
    from cep_engine.cli._prefect_env import LocalServer, api_url, quiet
    from cep_engine.cli._runtime import done
    from cep_engine.store.migrate import upgrade

    runtime = rt(ctx)
    data_dir = runtime.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    before, after = upgrade(runtime.store(require_schema=False))
    done(f"database {'at' if before == after else 'migrated to'} schema revision {after}")
    quiet(os.environ)
    server = LocalServer(home=data_dir / "prefect", host=host, port=port)
    os.environ.setdefault("PREFECT_HOME", str(server.home))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        api = api_url() or _local_api(server, timeout)
        _serve(ctx, api)
    except KeyboardInterrupt:
        pass
    finally:
        if server.process is not None:
            done("stopping the Prefect server")
            server.stop()
    done("cep-engine stopped")


def _local_api(server: LocalServer, timeout: float) -> str:
    from cep_engine.cli._prefect_env import check_port_free, healthy
    from cep_engine.cli._runtime import done

    if healthy(server.api):
        done(f"using the Prefect server already running at {server.api}")
    elif (pid := server.running_pid()) is not None:
        done(f"waiting for the Prefect server this data directory started (pid {pid})")
        server.wait_healthy(timeout)
    else:
        check_port_free(server)
        done(f"starting a Prefect server at {server.api} (home {server.home}; "
             f"log {server.log_file})")
        server.start()
        server.wait_healthy(timeout)
    os.environ["PREFECT_API_URL"] = server.api
    return server.api


def _serve(ctx: typer.Context, api: str) -> None:
    from cep_engine.cli._prefect_env import quiet, ui_url
    from cep_engine.cli._runtime import done

    settings = rt(ctx).settings
    quiet(os.environ)
    # Flow runs start in subprocesses: hand them the settings this command resolved.
    os.environ["CEP_DATABASE_URL"] = settings.effective_database_url
    os.environ["CEP_DATA_DIR"] = str(settings.data_dir)
    if runtime_config := rt(ctx).config:
        os.environ["CEP_CONFIG"] = str(runtime_config)
    from workflows.serve import SERVED, serve_all

    names = ", ".join(f"{s.flow.name}/cep" for s in SERVED)
    serve_all(settings, on_ready=lambda: done(
        f"cep-engine is up: Prefect UI at {ui_url(api)}; serving {names}. Ctrl-C stops."))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
