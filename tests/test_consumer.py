"""The close-code table of DESIGN.md, through the test client (no server)."""

import asyncio
import logging

import pytest
from django.test import override_settings

from ravyn_channels import WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.testing import HandshakeRefused, connect

pytestmark = pytest.mark.django_db


@websocket("/echo/{client_id}")
async def echo(websocket: WebSocket, client_id: str) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(f"Message from {client_id}: {data}")
    except WebSocketDisconnect:
        echo.state["gone"] = True  # type: ignore[attr-defined]


echo.state = {}  # type: ignore[attr-defined]


async def test_echo_round_trip() -> None:
    async with connect(echo, "/echo/42") as ws:
        await ws.send_text("hi")
        assert await ws.receive_text() == "Message from 42: hi"


async def test_client_close_raises_disconnect_in_handler() -> None:
    echo.state.clear()  # type: ignore[attr-defined]
    async with connect(echo, "/echo/1") as ws:
        await ws.close()
    assert echo.state == {"gone": True}  # type: ignore[attr-defined]


async def test_unknown_path_is_refused_with_info(rc_logs: pytest.LogCaptureFixture) -> None:
    from ravyn_channels.asgi import websocket_application

    with pytest.raises(HandshakeRefused):
        async with connect(websocket_application([echo]), "/nope"):
            pass
    [record] = [r for r in rc_logs.records if "no route matches" in r.getMessage()]
    assert record.levelno == logging.INFO and record.exc_info is None


async def test_converter_mismatch_is_refused_like_unknown_path(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/num/{n:int}")
    async def num(websocket: WebSocket, n: int) -> None:
        await websocket.accept()

    from ravyn_channels.asgi import websocket_application

    with pytest.raises(HandshakeRefused):
        async with connect(websocket_application([num]), "/num/abc"):
            pass
    assert any("no route matches" in r.getMessage() for r in rc_logs.records)


async def test_path_values_are_converted() -> None:
    seen = {}

    @websocket("/conv/{n:int}/{x:float}")
    async def conv(websocket: WebSocket, n: int, x: float) -> None:
        seen.update(n=n, x=x, params=websocket.path_params)
        await websocket.accept()
        await websocket.close()

    async with connect(conv, "/conv/3/2.5") as ws:
        assert await ws.wait_closed() == 1000
    assert seen == {"n": 3, "x": 2.5, "params": {"n": 3, "x": 2.5}}


async def test_handler_returns_without_accept_is_refused(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/lazy")
    async def lazy_handler(websocket: WebSocket) -> None:
        return None

    with pytest.raises(HandshakeRefused):
        async with connect(lazy_handler, "/lazy"):
            pass
    [record] = [r for r in rc_logs.records if "without calling websocket.accept()" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "lazy_handler" in record.getMessage()


async def test_receive_before_accept_is_refused(rc_logs: pytest.LogCaptureFixture) -> None:
    errors = []

    @websocket("/eager")
    async def eager_handler(websocket: WebSocket) -> None:
        try:
            await websocket.receive_text()
        except RuntimeError as exc:
            errors.append(str(exc))

    with pytest.raises(HandshakeRefused):
        async with connect(eager_handler, "/eager"):
            pass
    assert errors == ['WebSocket is not connected. Need to call "accept" first, before receive_text().']
    warning = [r for r in rc_logs.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "eager_handler called receive_text()" in warning[0].getMessage()


async def test_handler_return_closes_1000() -> None:
    @websocket("/once")
    async def once(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("bye")

    async with connect(once, "/once") as ws:
        assert await ws.receive_text() == "bye"
        assert await ws.wait_closed() == 1000


async def test_handler_raise_closes_1011_and_logs_traceback(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/boom")
    async def boom_handler(websocket: WebSocket) -> None:
        await websocket.accept()
        raise ZeroDivisionError("boom")

    async with connect(boom_handler, "/boom") as ws:
        assert await ws.wait_closed() == 1011
    [record] = [r for r in rc_logs.records if r.levelno == logging.ERROR]
    assert "boom_handler raised" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


async def test_handler_raise_before_accept_refuses(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/early-boom")
    async def early_boom(websocket: WebSocket) -> None:
        raise KeyError("x")

    with pytest.raises(HandshakeRefused):
        async with connect(early_boom, "/early-boom"):
            pass
    assert any(r.levelno == logging.ERROR and "before accepting" in r.getMessage() for r in rc_logs.records)


async def test_invalid_json_uncaught_closes_1007(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/json")
    async def json_handler(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.send_json({"got": await websocket.receive_json()})

    async with connect(json_handler, "/json") as ws:
        await ws.send_json({"a": [1, "é"]})
        assert await ws.receive_json() == {"got": {"a": [1, "é"]}}
        await ws.send_text("{not json")
        assert await ws.wait_closed() == 1007
    [record] = [r for r in rc_logs.records if r.levelno == logging.WARNING]
    assert "invalid JSON" in record.getMessage() and record.exc_info is None


async def test_binary_frame_for_receive_text_closes_1003(rc_logs: pytest.LogCaptureFixture) -> None:
    async with connect(echo, "/echo/7") as ws:
        await ws.send_bytes(b"\x00\x01")
        assert await ws.wait_closed() == 1003
    assert any("got a binary frame" in r.getMessage() for r in rc_logs.records)


async def test_text_frame_for_receive_bytes_closes_1003() -> None:
    @websocket("/bytes")
    async def bytes_handler(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.send_bytes(await websocket.receive_bytes())

    async with connect(bytes_handler, "/bytes") as ws:
        await ws.send_bytes(b"\x00")
        assert await ws.receive_bytes() == b"\x00"
        await ws.send_text("x")
        assert await ws.wait_closed() == 1003


@override_settings(RAVYN_CHANNELS={"MAX_MESSAGE_SIZE": 10})
async def test_oversized_message_closes_1009(rc_logs: pytest.LogCaptureFixture) -> None:
    async with connect(echo, "/echo/9") as ws:
        await ws.send_text("0123456789")
        assert await ws.receive_text() == "Message from 9: 0123456789"
        await ws.send_text("é" * 6)  # 12 bytes in UTF-8
        assert await ws.wait_closed() == 1009
    assert any("over the 10-byte limit" in r.getMessage() for r in rc_logs.records)


async def test_route_max_message_size_overrides_setting() -> None:
    @websocket("/small", max_message_size=4)
    async def small(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.receive_bytes()

    async with connect(small, "/small") as ws:
        await ws.send_bytes(b"12345")
        assert await ws.wait_closed() == 1009


async def test_inbox_overflow_closes_1013(rc_logs: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    @websocket("/slow", inbox_size=3)
    async def slow(websocket: WebSocket) -> None:
        await websocket.accept()
        await release.wait()
        async for _ in websocket.iter_text():
            pass

    async with connect(slow, "/slow") as ws:
        for i in range(4):
            await ws.send_text(str(i))
        assert await ws.wait_closed() == 1013
        release.set()
    assert any("3 unread messages" in r.getMessage() for r in rc_logs.records)


async def test_server_close_reaches_the_handler_as_disconnect(rc_logs: pytest.LogCaptureFixture) -> None:
    """After a 1013 the handler reads what was queued, then WebSocketDisconnect(1013); sends raise the same."""
    release = asyncio.Event()
    seen: list[object] = []

    @websocket("/busy", inbox_size=2)
    async def busy(websocket: WebSocket) -> None:
        await websocket.accept()
        await release.wait()
        try:
            while True:
                seen.append(await websocket.receive_text())
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
        try:
            await websocket.send_text("late")
        except WebSocketDisconnect as exc:
            seen.append(("send", exc.code))

    async with connect(busy, "/busy") as ws:
        for i in range(3):
            await ws.send_text(str(i))
        assert await ws.wait_closed() == 1013
        release.set()
        await asyncio.sleep(0.1)
    assert seen == ["0", "1", 1013, ("send", 1013)]
    assert not [r for r in rc_logs.records if r.levelno >= logging.ERROR]


async def test_inbox_backpressure_loses_nothing() -> None:
    got: list[str] = []

    @websocket("/bp", inbox_size=2, inbox_overflow="backpressure")
    async def bp(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await asyncio.sleep(0.001)
            got.append(text)

    async with connect(bp, "/bp") as ws:
        for i in range(20):
            await ws.send_text(str(i))
    assert got == [str(i) for i in range(20)]  # connect() returned once the handler had read them all


async def test_messages_sent_before_close_are_still_read() -> None:
    got: list[str] = []

    @websocket("/drain")
    async def drain(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            got.append(text)

    async with connect(drain, "/drain") as ws:
        for i in range(5):
            await ws.send_text(str(i))
        await ws.close()
    assert got == ["0", "1", "2", "3", "4"]


async def test_send_to_gone_client_raises_disconnect() -> None:
    outcome: list[object] = []
    started = asyncio.Event()

    @websocket("/gone")
    async def gone(websocket: WebSocket) -> None:
        await websocket.accept()
        started.set()
        await asyncio.sleep(0.1)  # the client leaves meanwhile
        try:
            await websocket.send_text("anyone?")
        except WebSocketDisconnect as exc:
            outcome.append(exc.code)

    async with connect(gone, "/gone") as ws:
        await started.wait()
        await ws.close(code=4321)
    assert outcome == [4321]


async def test_handler_ignoring_disconnect_is_cancelled_after_grace(rc_logs: pytest.LogCaptureFixture) -> None:
    cancelled = asyncio.Event()

    @websocket("/stubborn")
    async def stubborn(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with connect(stubborn, "/stubborn") as ws:
        await ws.close()
    assert cancelled.is_set()
    assert any("still running 0.5s after its client left" in r.getMessage() for r in rc_logs.records)


async def test_close_with_code_and_reason() -> None:
    @websocket("/closer")
    async def closer(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(code=4000, reason="done here")

    async with connect(closer, "/closer") as ws:
        assert await ws.wait_closed() == 4000
        assert ws.close_reason == "done here"


async def test_close_with_reserved_code_is_refused() -> None:
    errors: list[str] = []

    @websocket("/reserved")
    async def reserved(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.close(code=1006)
        except ValueError as exc:
            errors.append(str(exc))

    async with connect(reserved, "/reserved") as ws:
        assert await ws.wait_closed() == 1000
    assert errors and "1006 is not a close code a server may send" in errors[0]


async def test_client_leaving_before_accept_is_not_a_handler_bug(rc_logs: pytest.LogCaptureFixture) -> None:
    # The client (or the server's handshake timeout) gives up while the handler is still busy
    # before accept: accept() finds it gone, the handler ends, and no WARNING blames the handler.
    from channels.testing import WebsocketCommunicator

    from ravyn_channels.asgi import websocket_application

    ended = asyncio.Event()

    @websocket("/slow-accept")
    async def slow_accept(websocket: WebSocket) -> None:
        await asyncio.sleep(0.05)  # a slow dependency, a busy process
        try:
            await websocket.accept()
            await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            ended.set()

    communicator = WebsocketCommunicator(websocket_application([slow_accept]), "/slow-accept")
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await asyncio.wait_for(ended.wait(), 5)
    await communicator.wait(2)
    assert [r for r in rc_logs.records if r.levelno >= logging.WARNING] == []
