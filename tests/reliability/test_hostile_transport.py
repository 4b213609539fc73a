"""Hostile clients at the transport level, against a real daphne: server closes, fragments, pings, slowloris."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Server, StartServer

from .rawws import frame, open_raw, read_close_code, reset

pytestmark = pytest.mark.integration

APP = "tests.reliability.apps:app"
MIB = 1024  # in KiB, the unit of rss_kib


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


async def stats(ws_connect: Any, server: Server) -> dict[str, int]:
    async with ws_connect(f"{server.ws}/stats") as ws:
        return dict(json.loads(await asyncio.wait_for(ws.recv(), 5)))


def closed_with(sock: socket.socket, timeout: float = 5.0) -> int | None:
    """The close code the server sent, or None if it only dropped the connection."""
    try:
        return read_close_code(sock, timeout)
    except OSError:
        return None


def sync(sock: socket.socket) -> int | None:
    """Ping and wait: None once the server answered (it has processed everything before), else its close code."""
    try:
        sock.sendall(frame(b"sync", opcode=0x9))
    except OSError:
        return closed_with(sock)
    sock.settimeout(20)
    buffer = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return -1  # dropped without a close frame
            buffer += chunk
            while len(buffer) >= 2:
                length = buffer[1] & 0x7F
                if len(buffer) < 2 + length:
                    break
                opcode, payload, buffer = buffer[0] & 0x0F, buffer[2 : 2 + length], buffer[2 + length :]
                if opcode == 0xA and payload == b"sync":
                    return None
                if opcode == 0x8:
                    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    except OSError:
        return -1


def send_until_closed(sock: socket.socket, chunks: Iterator[bytes]) -> bool:
    """Send ``chunks`` until the server has something to say (a close frame); whether all were sent."""
    sock.settimeout(5)
    for chunk in chunks:
        if select.select([sock], [], [], 0)[0]:
            return False
        try:
            sock.sendall(chunk)
        except OSError:
            return False
    return True


async def test_many_fragments_close_1009_and_memory_stays_bounded(start_server: StartServer, ws_connect: Any) -> None:
    """200,000 one-byte continuation frames (1.4 MB on the wire) of one unfinished message."""
    server = start_server(APP)
    before = await stats(ws_connect, server)
    sock = await asyncio.to_thread(open_raw, server.port, "/echo")
    fragments = 200_000
    one = frame(b"c", opcode=0x0, fin=False)
    batch = 2000

    def chunks() -> Iterator[bytes]:
        yield frame(b"s", opcode=0x1, fin=False)
        for _ in range(fragments // batch):
            yield one * batch

    try:
        finished = await asyncio.to_thread(send_until_closed, sock, chunks())
        code = await asyncio.to_thread(sync if finished else closed_with, sock)
        held = await stats(ws_connect, server)  # while the message would still be assembling
    finally:
        sock.close()
    growth = held["rss_kib"] - before["rss_kib"]
    print(
        f"{fragments} one-byte fragments: all sent {finished}; close {code}; "
        f"RSS {before['rss_kib']} -> {held['rss_kib']} KiB (+{growth} KiB)"
    )
    assert code == 1009
    assert growth <= 2 * MIB
    assert server.log().count("fragments") == 1


async def test_fragmented_messages_under_the_bound_arrive_whole(start_server: StartServer, ws_connect: Any) -> None:
    server = start_server(APP)
    parts = ["é" * 10, "x", "ü" * 500] * 100  # 300 fragments
    async with ws_connect(f"{server.ws}/echo", max_size=None) as ws:
        await ws.send(iter(parts))
        assert await asyncio.wait_for(ws.recv(), 5) == "".join(parts)
        await ws.send("after")
        assert await asyncio.wait_for(ws.recv(), 5) == "after"


def drained_to_close(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Read and discard until the server closes the connection (True) or goes quiet for ``timeout`` (False)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 20):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass  # reset: closed
    return True


async def test_ping_flood_without_reading_is_dropped(start_server: StartServer, ws_connect: Any) -> None:
    """A client that sends 13 MB of pings and never reads the pongs."""
    server = start_server(APP)
    before = await stats(ws_connect, server)
    sock = await asyncio.to_thread(open_raw, server.port, "/echo", 5.0, 65536)
    batch = frame(b"p" * 125, opcode=0x9) * 100
    total = 100_000

    def flood() -> int:
        sock.settimeout(5)
        sent = 0
        try:
            while sent < total:
                sock.sendall(batch)
                sent += 100
        except OSError:
            pass
        return sent

    try:
        sent = await asyncio.to_thread(flood)
        held = await stats(ws_connect, server)
        closed = await asyncio.to_thread(drained_to_close, sock)
    finally:
        sock.close()
    growth = held["rss_kib"] - before["rss_kib"]
    print(
        f"ping flood: {sent} x 131 B pings sent before the server stopped us; "
        f"RSS {before['rss_kib']} -> {held['rss_kib']} KiB (+{growth} KiB); closed {closed}"
    )
    assert closed
    assert growth <= 3 * MIB
    assert server.log().count("is not reading pongs") == 1  # one WARNING per dropped client


async def test_slowloris_handshakes_are_closed_after_the_deadline(start_server: StartServer, ws_connect: Any) -> None:
    """100 sockets trickling one header byte a second are all closed shortly after HANDSHAKE_TIMEOUT."""
    deadline = 2.0
    settings = {"RAVYN_CHANNELS": {"AUTODISCOVER": [], "HANDSHAKE_TIMEOUT": deadline}}
    server = start_server(APP, env={"APP_SETTINGS": json.dumps(settings)})
    head = f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n".encode()
    count = 100

    def trickle() -> list[float | None]:
        started = time.monotonic()
        socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(count)]
        closed_at: list[float | None] = [None] * count
        try:
            for second in range(15):
                for i, sock in enumerate(socks):
                    if closed_at[i] is not None:
                        continue
                    try:
                        readable = select.select([sock], [], [], 0)[0]
                        if readable and not sock.recv(1024):
                            raise ConnectionResetError
                        sock.send(head[second : second + 1])
                    except OSError:
                        closed_at[i] = time.monotonic() - started
                if all(t is not None for t in closed_at):
                    break
                time.sleep(1)
        finally:
            for sock in socks:
                sock.close()
        return closed_at

    closed_at = await asyncio.to_thread(trickle)
    open_left = sum(t is None for t in closed_at)
    latest = max((t for t in closed_at if t is not None), default=None)
    print(f"slowloris: {count} trickling handshakes, {open_left} still open after 15 s; last closed at {latest} s")
    assert open_left == 0
    assert latest is not None and latest <= deadline + 4
    async with ws_connect(f"{server.ws}/echo") as ws:  # a real client still gets through
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 5) == "hi"


async def test_protocol_level_close_reaches_the_handler_with_our_code(start_server: StartServer) -> None:
    """daphne closes 1009 for a frame over MAX_MESSAGE_SIZE; the client vanishes instead of replying."""
    server = start_server(APP)

    def attack() -> int | None:
        sock = open_raw(server.port, "/gone/big")
        head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 2 * 1024 * 1024) + b"mask"  # no payload follows
        sock.sendall(head)
        code = read_close_code(sock)  # skips "ready"
        reset(sock)
        return code

    assert await asyncio.to_thread(attack) == 1009
    log = await asyncio.to_thread(server.wait_for_log, "gone big ", 10)
    assert "gone big 1009 " in log, log


async def test_kept_alive_http_connection_gets_the_deadline_again(start_server: StartServer) -> None:
    """After a response, the next request head is due within HANDSHAKE_TIMEOUT too; a prompt one is served."""
    settings = {"RAVYN_CHANNELS": {"AUTODISCOVER": [], "HANDSHAKE_TIMEOUT": 1.0}}
    server = start_server(APP, env={"APP_SETTINGS": json.dumps(settings)})
    request = f"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()

    def exchange() -> tuple[list[bytes], float]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            statuses = []
            for _ in range(2):  # two requests on one connection, the second well within the deadline
                sock.sendall(request)
                response = b""
                while not response.endswith(b"\r\n0\r\n\r\n"):  # daphne sends this 404 chunked
                    response += sock.recv(65536)
                statuses.append(response.split(b" ")[1])
                time.sleep(0.3)
            idle_from = time.monotonic()
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            return statuses, time.monotonic() - idle_from

    statuses, closed_after = await asyncio.to_thread(exchange)
    print(f"kept-alive HTTP: {statuses}; idle connection closed after {closed_after:.2f} s")
    assert statuses == [b"404", b"404"]
    assert closed_after < 5
