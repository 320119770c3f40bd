"""What the Prefect benchmarks share: a quiet local Prefect server for the run."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cep_engine.cli._prefect_env import LocalServer, api_url, quiet


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prefect_api(work: Path) -> Iterator[str]:
    """The Prefect API to benchmark against: ``PREFECT_API_URL`` when set, else a local
    server (its home under ``work``) started here and stopped on exit. Analytics off and
    console logs at WARNING, as ``cep up`` runs it."""
    quiet(os.environ)
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
    os.environ.setdefault("PREFECT_HOME", str(work / "client"))
    server: LocalServer | None = None
    try:
        if api_url() is None:
            server = LocalServer(home=work / "server", port=free_port())
            server.start()
            server.wait_healthy(300)
            os.environ["PREFECT_API_URL"] = server.api
        print(f"Prefect API {os.environ['PREFECT_API_URL']}")
        yield os.environ["PREFECT_API_URL"]
    finally:
        if server is not None:
            server.stop()
