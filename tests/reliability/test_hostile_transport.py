"""Hostile clients at the transport level, against a real daphne: server closes, fragments, pings, slowloris."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.integration.conftest import StartServer

from .rawws import frame, open_raw, read_close_code

pytestmark = pytest.mark.integration

APP = "tests.reliability.apps:app"


async def test_server_close_reaches_the_handler_as_disconnect(start_server: StartServer) -> None:
    """A 1009 sent while the handler is busy after accept ends its loop with WebSocketDisconnect(1009)."""
    server = start_server(APP)
    tries = 20

    def one() -> int | None:
        sock = open_raw(server.port, "/small")
        try:
            sock.sendall(frame(b"x" * 5000))  # over the route's 1000 bytes, right after the handshake
            return read_close_code(sock)
        finally:
            sock.close()

    codes = [await asyncio.to_thread(one) for _ in range(tries)]
    assert codes == [1009] * tries
    for _ in range(100):  # every handler finishes within a second of its close
        if (log := server.log()).count("small left") >= tries:
            break
        await asyncio.to_thread(time.sleep, 0.1)
    print(f"{tries} oversize frames right after the handshake: handler ended {log.count('small left 1009 send 1009')}")
    assert log.count("small left 1009 send 1009") == tries, log
    assert "Traceback" not in log
    assert "not connected" not in log


async def test_shutdown_reaches_a_busy_handler_as_disconnect(start_server: StartServer, ws_connect: Any) -> None:
    """SIGTERM while the handler is busy (not reading): its next read ends its loop (1001), no traceback."""
    server = start_server(APP)
    async with ws_connect(f"{server.ws}/hold/0.5"):
        await asyncio.to_thread(server.stop)
    log = server.log()
    assert "hold counted 0" in log, log
    assert "Traceback" not in log
