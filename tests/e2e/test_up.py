"""``cep up`` as a user runs it: it starts a Prefect server, serves the deployments, answers
healthy, does not start a second server on the same port, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cep_engine.cli._prefect_env import QUIET
from tests.conftest import OFFLINE_NOISE

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Up:
    """One ``cep up`` process, its output in files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stdout():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.25)
        pytest.fail(f"no {text!r} from cep up;\nstdout:\n{self.stdout()}\n"
                    f"stderr:\n{self.stderr()[-3000:]}")

    def interrupt(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)


def start_up(data_dir: Path, port: int, name: str) -> Up:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"CEP_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    out, err = data_dir.parent / f"{name}.out", data_dir.parent / f"{name}.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cep_engine.cli", "up", "--port", str(port)],
            env=env, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
        )
    return Up(proc, out, err)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def healthy(api: str) -> bool:
    try:
        return get(f"{api}/health") is True
    except OSError:
        return False


@pytest.fixture
def ups(tmp_path: Path) -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in reversed(started):
        if up.proc.poll() is None:
            up.proc.terminate()
            up.proc.wait(60)


def _no_traceback(up: Up) -> None:
    assert "Traceback" not in up.stderr() + up.stdout(), up.stderr()[-3000:]


def _environ(pid: str) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def _offline_quiet(data_dir: Path, *ups: Up) -> None:
    logs = (data_dir / "prefect" / "server.log").read_text(errors="replace")
    logs += "".join(up.stdout() + up.stderr() for up in ups)
    assert not [noise for noise in OFFLINE_NOISE if noise in logs], logs[-3000:]


def _served(api: str) -> dict[str, Any]:
    deployments = post(f"{api}/deployments/filter", {})
    flows = {f["id"]: f["name"] for f in post(f"{api}/flows/filter", {})}
    return {f"{flows[d['flow_id']]}/{d['name']}": d for d in deployments}


def test_up_serves_then_stops_cleanly_and_never_starts_two_servers(
    tmp_path: Path, ups: list[Up]
) -> None:
    port, data_dir = free_port(), tmp_path / "data"
    api = f"http://127.0.0.1:{port}/api"
    first = start_up(data_dir, port, "first")
    ups.append(first)
    first.wait_for("cep-engine is up", timeout=300)
    assert f"Prefect UI at http://127.0.0.1:{port}" in first.stdout()
    assert "starting a Prefect server" in first.stdout()
    assert healthy(api)
    assert (data_dir / "cep.db").exists() and (data_dir / "prefect" / "prefect.db").exists()
    served = _served(api)
    assert {"phase-transition/cep", "readiness-review/cep"} <= set(served)
    assert not any(d["paused"] for d in served.values())
    server_pid = (data_dir / "prefect" / "server.pid").read_text().split()[0]
    server_env = _environ(server_pid)
    assert {name: server_env.get(name) for name in QUIET} == QUIET

    second = start_up(data_dir, port, "second")
    ups.append(second)
    second.wait_for("cep-engine is up", timeout=180)
    assert "using the Prefect server already running" in second.stdout()
    assert "starting a Prefect server" not in second.stdout()
    assert (data_dir / "prefect" / "server.pid").read_text().split()[0] == server_pid
    assert second.interrupt() == 0
    _no_traceback(second)
    assert healthy(api), "the second cep up stopped a server it did not start"

    assert first.interrupt() == 0
    _no_traceback(first)
    assert "cep-engine stopped" in first.stdout()
    assert not healthy(api)
    assert not (data_dir / "prefect" / "server.pid").exists()
    _offline_quiet(data_dir, first, second)


def test_up_refuses_a_port_held_by_something_else(tmp_path: Path, ups: list[Up]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        up = start_up(tmp_path / "data", port, "busy")
        ups.append(up)
        assert up.proc.wait(120) == 2
    assert f"port {port}" in up.stderr() and "not a healthy Prefect server" in up.stderr()
    _no_traceback(up)
