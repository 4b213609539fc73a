"""Random and hostile handshakes against a real daphne: 101 or 403, never a 500 or a traceback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Server, free_port, server_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    port = free_port()
    log = tmp_path_factory.mktemp("hostile") / "daphne.log"
    bindir = Path(__import__("sys").executable).parent
    s = Server([str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(port), "tests.integration.apps.closecodes:app"],
               ROOT, server_env(), port, log)
    yield s
    s.stop()


def handshake_status(port: int, path: str, headers: list[tuple[str, bytes]]) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        extra = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n".encode()
            + extra
            + b"\r\n"
        )
        status_line = b""
        while not status_line.endswith(b"\r\n"):
            chunk = sock.recv(1)
            if not chunk:
                break
            status_line += chunk
    return int(status_line.split()[1]) if status_line.startswith(b"HTTP/1.1 ") else 0


header_names = st.sampled_from(["origin", "cookie", "x-anything", "sec-websocket-protocol", "user-agent"])
header_values = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c not in (0, 10, 13)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.text(max_size=40),
    headers=st.lists(st.tuples(header_names, header_values), max_size=4),
)
@example(path="", headers=[("sec-websocket-protocol", b"\x80")])  # daphne alone: 500 + traceback
def test_random_handshakes_get_101_or_403(server: Server, path: str, headers: list[tuple[str, bytes]]) -> None:
    status = handshake_status(server.port, "/" + quote(path, safe="/?=&"), headers)
    assert status in (101, 400, 403), status
    assert "Traceback" not in server.log()
    assert " 500 " not in server.log()
