"""The Prefect side of the CLI, without importing Prefect: environment, health, local server.

``import prefect`` costs more than a second, so the CLI decides everything it can (is an API
configured? is a server healthy?) from the environment and plain HTTP, and imports
:mod:`workflows` (the only package that imports Prefect) only when it runs a flow.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from cep_engine.errors import CepError, ConfigError

QUIET: dict[str, str] = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
}
"""Settings that keep Prefect off the network: no analytics, telemetry or promotions."""


def quiet(environ: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add :data:`QUIET` to ``environ`` where it does not say otherwise; return it."""
    for name, value in QUIET.items():
        environ.setdefault(name, value)
    return environ


def api_url() -> str | None:
    """The Prefect API the user configured (``PREFECT_API_URL``), if any."""
    return os.environ.get("PREFECT_API_URL", "").strip().rstrip("/") or None


def ui_url(api: str) -> str:
    """The UI address of a self-hosted Prefect API."""
    return api.removesuffix("/api")


def healthy(api: str, timeout: float = 1.0) -> bool:
    """Whether ``GET {api}/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def work_pool_exists(api: str, name: str, timeout: float = 5.0) -> bool:
    """Whether the Prefect API at ``api`` has a work pool ``name`` (``GET /work_pools/NAME``)."""
    url = f"{api}/work_pools/{urllib.parse.quote(name, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise ConfigError(f"the Prefect API at {api} answered {exc.code} for work pool "
                          f"{name!r}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach the Prefect API at {api}: {exc}") from exc


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class LocalServer:
    """A Prefect server on SQLite that ``cep up`` runs under ``home`` (its PREFECT_HOME)."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 4200
    process: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        """The server's API address."""
        return f"http://{self.host}:{self.port}/api"

    @property
    def pid_file(self) -> Path:
        """Holds the pid of the server this data directory runs."""
        return self.home / "server.pid"

    @property
    def log_file(self) -> Path:
        """Where the server's own output goes."""
        return self.home / "server.log"

    def running_pid(self) -> int | None:
        """The pid of a live server started for this data directory, from the pid file."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def start(self) -> None:
        """Start ``prefect server start`` in its own session, its output in :attr:`log_file`."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = quiet(dict(os.environ))
        env.pop("PREFECT_API_URL", None)
        env["PREFECT_HOME"] = str(self.home)
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", self.host,
               "--port", str(self.port), "--analytics-off"]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self.process.pid} {self.port}\n")

    def wait_healthy(self, timeout: float) -> None:
        """Wait until the API answers; raise with the end of the log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if healthy(self.api):
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.25)
        raise CepError(
            f"the Prefect server at {self.api} did not become healthy within {timeout:.0f} s; "
            f"last lines of {self.log_file}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server's log."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server this object started (its whole process group) and remove the pid
        file."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.pid_file.unlink(missing_ok=True)
        self.process = None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def check_port_free(server: LocalServer) -> None:
    """Refuse to start a server on a port that something other than Prefect holds."""
    if port_in_use(server.host, server.port):
        raise ConfigError(
            f"port {server.port} on {server.host} is in use by something that is not a healthy "
            "Prefect server; pass --port or stop it"
        )
