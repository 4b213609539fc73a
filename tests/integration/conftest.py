"""Real servers for end-to-end tests: daphne (or uvicorn) subprocesses on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL, require_redis

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One server subprocess; its combined output is in ``log_path``."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], port: int, log_path: Path):
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not listen on {port} within 20 s:\n{self.log()}")

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, since: int = 0) -> str:
        """The output so far; from ``since`` (a ``mark()``) on when given."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def mark(self) -> int:
        """Where the log ends now: ``log(since=mark)`` is what the server wrote after this call."""
        return self.log_path.stat().st_size

    def wait_for_log(self, text: str, timeout: float = 5.0, since: int = 0) -> str:
        """Wait until ``text`` is in the log (from ``since`` on); return that log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log(since)
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in server log after {timeout}s:\n{self.log(since)}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def server_env(settings: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    if settings:
        env["DJANGO_SETTINGS_MODULE"] = settings
    env.update(extra)
    return env


StartServer = Callable[..., Server]


@contextlib.contextmanager
def server_starter(directory: Path) -> Iterator[StartServer]:
    """``start(app, ...)`` writing logs into ``directory``; every server it started is stopped on exit."""
    servers: list[Server] = []

    def start(
        app: str,
        *,
        cwd: Path = ROOT,
        settings: str | None = None,
        server: str = "daphne",
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Server:
        port = port or free_port()
        bindir = Path(sys.executable).parent
        if server == "daphne":
            argv = [str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(port), app]
        elif server == "uvicorn":
            argv = [str(bindir / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", app]
        else:
            argv = [sys.executable, *app.split()]
        log_path = directory / f"{server}-{port}.log"
        s = Server(argv, cwd, server_env(settings, **(env or {})), port, log_path)
        servers.append(s)
        return s

    try:
        yield start
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start ``daphne app`` (or ``server="uvicorn"``); every server is stopped at teardown."""
    with server_starter(tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """``start_server`` for servers shared by a module's independent tests (stopped after the module).

    Such tests read the log from ``server.mark()`` on (``wait_for_log(..., since=mark)``), not
    what earlier tests left in it.
    """
    with server_starter(tmp_path_factory.mktemp("servers")) as start:
        yield start


@pytest.fixture
def ws_connect() -> Callable[..., Any]:
    """``websockets``' client with short timeouts."""
    from websockets.asyncio.client import connect

    def _connect(url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("open_timeout", 5)
        kwargs.setdefault("close_timeout", 5)
        return connect(url, **kwargs)

    return _connect


@pytest.fixture
def redis_ready() -> None:
    """Redis must answer; under CI=true its absence is a failure, elsewhere a skip."""
    require_redis()


REDIS_SETTINGS = """\
from ravyn_channels.layers import redis_channel_layer
SECRET_KEY = "x"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "channels", "ravyn_channels"]
DATABASES = {}
ROOT_URLCONF = "ravyn_channels.standalone"
CHANNEL_LAYERS = {"default": redis_channel_layer(%(url)r, pubsub=%(pubsub)r, prefix=%(prefix)r)}
RAVYN_CHANNELS = {"AUTODISCOVER": []}
"""


def write_redis_settings(directory: Path, url: str = REDIS_URL, pubsub: bool = False) -> str:
    """Write ``redis_settings.py`` (a minimal project on channels-redis) into ``directory``.

    Returns the unique key prefix, so a test can inspect (and not disturb) its own keys.
    """
    prefix = f"rc-test-{uuid.uuid4().hex[:8]}"
    (directory / "redis_settings.py").write_text(REDIS_SETTINGS % {"url": url, "pubsub": pubsub, "prefix": prefix})
    return prefix
