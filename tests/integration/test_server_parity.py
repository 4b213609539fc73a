"""Server-facing parity with Starlette on uvicorn: the same behaviour on daphne (adapted) and uvicorn.

Handshake response headers, denial responses (a handler's, a dependency's, a
permission's), the client's close reason, and a handler that keeps sending to a
client whose TCP connection was reset.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from .conftest import Server, StartServer

pytestmark = pytest.mark.integration

APP = "tests.integration.apps.serverparity:app"


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(request: pytest.FixtureRequest, start_module_server: StartServer) -> Server:
    """One server per kind for the module's tests (each reads the log from its mark)."""
    return start_module_server(APP, server=request.param)


def errors_in(log: str) -> list[str]:
    """ERROR lines and tracebacks, except uvicorn's own line after every denial response on its
    default websockets-sansio protocol (it never marks the handshake complete; uvicorn PR #3138)."""
    return [
        line
        for line in log.splitlines()
        if ("ERROR" in line or "Traceback" in line) and "returned without completing handshake" not in line
    ]


async def refused(ws_connect: Any, url: str) -> Any:
    """The HTTP response that refused the handshake (``websockets``' ``Response``)."""
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(url):
            pass
    return info.value.response


# -- 11 and 15: accept(headers=...) ---------------------------------------------------------


async def test_accept_headers_from_a_dict(server: Server, ws_connect: Any) -> None:
    async with ws_connect(f"{server.ws}/headers/dict") as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "ok"
        headers = ws.response.headers
    assert headers["x-test"] == "dict"
    assert headers["x-other"] == "2"


async def test_accept_headers_from_pairs_with_a_subprotocol(server: Server, ws_connect: Any) -> None:
    async with ws_connect(f"{server.ws}/headers/pairs", subprotocols=["chat"]) as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "ok"
        assert ws.subprotocol == "chat"
        assert ws.response.headers.get_all("x-pair") == ["one", "two"]


# -- 12: denial responses -------------------------------------------------------------------


@pytest.mark.parametrize("code", [401, 404, 429])
async def test_handler_denial_response(server: Server, ws_connect: Any, code: int) -> None:
    mark = server.mark()
    response = await refused(ws_connect, f"{server.ws}/deny/{code}")
    assert response.status_code == code
    assert response.headers["x-why"] == "test"
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == {"detail": "nope"}
    await asyncio.sleep(0.2)  # the application has returned
    assert errors_in(server.log(mark)) == []


async def test_django_http_response_as_denial(server: Server, ws_connect: Any) -> None:
    response = await refused(ws_connect, f"{server.ws}/deny-django")
    assert (response.status_code, response.body) == (404, b"no such room")
    assert response.headers["x-room"] == "lobby"


async def test_starlette_response_as_denial(server: Server, ws_connect: Any) -> None:
    pytest.importorskip("starlette")
    response = await refused(ws_connect, f"{server.ws}/deny-starlette")
    assert response.status_code == 429
    assert json.loads(response.body) == {"detail": "slow down"}


async def test_dependency_denial_chooses_status_headers_and_body(server: Server, ws_connect: Any) -> None:
    mark = server.mark()
    response = await refused(ws_connect, f"{server.ws}/dep?token=bad")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert json.loads(response.body) == {"detail": "bad token"}
    assert errors_in(server.wait_for_log("Refused websocket /dep", since=mark)) == []
    async with ws_connect(f"{server.ws}/dep?token=good") as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "good"


async def test_permission_status_code(server: Server, ws_connect: Any) -> None:
    mark = server.mark()
    response = await refused(ws_connect, f"{server.ws}/limited")
    assert response.status_code == 429
    assert json.loads(response.body) == {"detail": "permission denied"}
    assert "too many connections" in server.wait_for_log("Refused websocket /limited", since=mark)


async def test_without_the_extension_denials_are_403(start_server: StartServer, ws_connect: Any) -> None:
    """Unadapted daphne has no denial-response extension: RuntimeError in the handler, 403 for refusals."""
    server = start_server(APP, env={"PATCH_DAPHNE": "0"})
    response = await refused(ws_connect, f"{server.ws}/deny/401")
    assert response.status_code == 403
    server.wait_for_log("doesn't support the WebSocket Denial Response extension")
    response = await refused(ws_connect, f"{server.ws}/dep?token=bad")
    assert response.status_code == 403
    server.wait_for_log("cannot answer the handshake with HTTP 401")


# -- 15: the client's close reason ----------------------------------------------------------


async def test_client_close_reason_reaches_handler(server: Server, ws_connect: Any) -> None:
    mark = server.mark()
    async with ws_connect(f"{server.ws}/reason") as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "ready"
        await ws.close(code=4123, reason="bye for now")
    server.wait_for_log("reason handler saw disconnect 4123 'bye for now'", since=mark)


async def test_close_frame_without_a_code_reads_1005(server: Server, ws_connect: Any) -> None:
    mark = server.mark()
    async with ws_connect(f"{server.ws}/reason") as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "ready"
        await ws.close(code=None)  # type: ignore[arg-type]  # an empty close frame
    server.wait_for_log("reason handler saw disconnect 1005 ''", since=mark)


# -- 14: sending to a client whose TCP connection was reset -------------------------------


@pytest.mark.parametrize("wait", [0.0, 0.3], ids=["sending", "buffer-full"])
async def test_sending_to_a_reset_client_is_a_disconnect_without_errors(
    server: Server, ws_connect: Any, wait: float
) -> None:
    """Reset while the handler sends, or once the send buffer is full (uvicorn: the handler waits in
    send; daphne: SEND_BUFFER_LIMIT drops the client first, with a WARNING)."""
    mark = server.mark()
    async with ws_connect(f"{server.ws}/flood", max_queue=1) as ws:
        await asyncio.wait_for(ws.recv(), 5)
        await asyncio.sleep(wait)
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()  # RST, no close frame
    log = server.wait_for_log("flood saw disconnect", since=mark)
    code = int(log.split("flood saw disconnect ")[1].split()[0])
    # What the server reports for a lost connection: 1006; uvicorn's websockets-sansio protocol says
    # 1005 once the handshake is complete (its connection_lost), and a failed send says 1006 when
    # uvicorn has not queued that yet.
    assert code in ({1006} if "daphne" in server.log_path.name else {1005, 1006})
    await asyncio.sleep(1.5)  # time for a late "Task exception was never retrieved" or ERROR line
    log = server.log(mark)
    assert "Traceback" not in log
    assert "ERROR" not in log
    assert "never retrieved" not in log
    assert log.count("it is not reading") <= 1  # one WARNING per dropped client, not one per send


async def test_client_close_while_the_handler_sends(server: Server, ws_connect: Any) -> None:
    """Sends that race the client's close frame (daphne: autobahn is closing; uvicorn: its
    ClientDisconnected) end in WebSocketDisconnect with the client's code, and no ERROR."""
    mark = server.mark()
    for _ in range(5):
        async with ws_connect(f"{server.ws}/flood", max_queue=None) as ws:  # reads on to the close reply
            await asyncio.wait_for(ws.recv(), 5)
            await ws.close(code=4000, reason="enough")
    server.wait_for_log("flood saw disconnect 4000", since=mark)
    await asyncio.sleep(1.0)
    log = server.log(mark)
    assert log.count("flood saw disconnect") == 5
    assert errors_in(log) == []
