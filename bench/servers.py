"""Server and client processes for the benchmarks: daphne or uvicorn on 127.0.0.1, pinned.

Only processes started here are ever stopped, by their own PID.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: ``module:attribute`` of each variant's ASGI application.
APPS = {
    "ref": "bench.apps.ref:application",
    "raw": "bench.apps.raw:application",
    "ravyn": "bench.apps.ravyn:application",
    "listloop": "bench.apps.listloop:application",
    "topics": "bench.apps.topics:application",
    "presence": "bench.apps.presence:application",
    "history": "bench.apps.history:application",
    "metrics": "bench.apps.metrics:application",
}


def cpus() -> tuple[str | None, str | None]:
    """(server cores, client core) for ``taskset``, or ``(None, None)`` when pinning cannot help."""
    count = os.cpu_count() or 1
    if count < 2 or shutil.which("taskset") is None:
        return None, None
    return ("0" if count < 4 else f"0-{count // 2 - 1}"), str(count - 1)


def pinned(argv: list[str], cores: str | None) -> list[str]:
    return ["taskset", "-c", cores, *argv] if cores else argv


def pin(pid: int, cores: str | None) -> None:
    """Pin every thread of ``pid`` to ``cores`` (``"0"`` or ``"0-3"``), as ``taskset -a -p`` does."""
    if not cores:
        return
    first, _, last = cores.partition("-")
    cpu_set = set(range(int(first), int(last or first) + 1))
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpu_set)
        except OSError:  # a thread that has just ended
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """One daphne or uvicorn process serving one variant."""

    def __init__(
        self, variant: str, server: str, layer: str, prefix: str, logdir: Path, app: str | None = None,
        path: str | None = None, backlog: int | None = None,
    ):  # fmt: skip
        self.variant, self.server, self.layer = variant, server, layer
        self.port = free_port()
        app = app or APPS[variant]
        if server == "daphne" and backlog:  # daphne's -b/-p listen with Twisted's default backlog, 50
            endpoint = f"tcp:port={self.port}:interface=127.0.0.1:backlog={backlog}"
            argv = [str(BIN / "daphne"), "-v", "0", "-e", endpoint, app]
        elif server == "daphne":
            argv = [str(BIN / "daphne"), "-v", "0", "-b", "127.0.0.1", "-p", str(self.port), app]
        elif server == "uvicorn":  # (uvicorn's --backlog defaults to 2048)
            argv = [
                str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(self.port),
                "--lifespan", "off", "--log-level", "warning", "--no-access-log", app,
            ]  # fmt: skip
        else:
            raise ValueError(f"server must be daphne or uvicorn, got {server!r}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update(
            PYTHONPATH=os.pathsep.join(p for p in (path, str(ROOT), env.get("PYTHONPATH", "")) if p),
            DJANGO_SETTINGS_MODULE="bench.apps.settings",
            BENCH_LAYER=layer,
            BENCH_APP=variant,
            BENCH_PREFIX=prefix,
            PYTHONUNBUFFERED="1",
        )
        self.env = env
        self.log_path = logdir / f"{server}-{variant}-{layer}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv, cwd=path or ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_raise_fd_limit,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.1)
                continue
            # Start-up (imports, Django set-up) may use every core; the measurement may not.
            pin(self.pid, cpus()[0])
            return
        raise RuntimeError(f"{self} did not listen within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        terminate(self.proc)
        self._log.close()

    def __repr__(self) -> str:
        return f"<{self.server} {self.variant} ({self.layer}) :{self.port} pid {self.proc.pid}>"


def terminate(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM a process this run started, SIGKILL it after 10 s, and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_client(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one workload in a separate, pinned client process; its JSON result."""
    spec = dict(spec, timeout=timeout)
    argv = pinned([sys.executable, "-m", "bench.client", json.dumps(spec)], cpus()[1])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_raise_fd_limit
    )
    try:
        out, err = proc.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": f"client did not finish within {timeout + 30:.0f} s"}
    lines = out.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"client exited with {proc.returncode}: {err.decode()[-2000:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result
