"""The WebSocket facade: Starlette/Ravyn parity, through the test client."""

import logging
from typing import Any

import pytest

from ravyn_channels import WebSocket, WebSocketDisconnect, WebSocketState, websocket
from ravyn_channels.testing import connect
from ravyn_channels.websocket import Headers

pytestmark = pytest.mark.django_db


async def test_connection_facts() -> None:
    facts: dict[str, Any] = {}

    @websocket("/facts/{room}")
    async def facts_handler(websocket: WebSocket, room: str) -> None:
        facts.update(
            url=str(websocket.url),
            path=websocket.url.path,
            query=websocket.query_params.getlist("tag"),
            page=websocket.query_params.get("page"),
            header=websocket.headers["X-Thing"],
            headers=websocket.headers.getlist("x-multi"),
            cookies=websocket.cookies,
            client=websocket.client,
            subprotocols=websocket.subprotocols,
            user=websocket.user.is_anonymous,
            session=websocket.session.session_key,
            params=websocket.path_params,
            states=(websocket.client_state, websocket.application_state),
        )
        websocket.state.counter = 1
        await websocket.accept()
        facts["after"] = (websocket.client_state, websocket.application_state, websocket.state.counter)
        await websocket.close()

    headers = [
        ("host", "example.test:8000"),
        ("x-thing", "1"),
        ("x-multi", "a"),
        ("x-multi", "b"),
        ("cookie", "a=1; b=two"),
    ]
    async with connect(
        facts_handler,
        "/facts/lobby?tag=x&tag=y&page=2",
        headers=headers,
        subprotocols=["v1", "v2"],
        scope={"client": ("10.1.2.3", 5555)},
    ) as ws:
        await ws.wait_closed()
    assert facts == {
        "url": "ws://example.test:8000/facts/lobby?tag=x&tag=y&page=2",
        "path": "/facts/lobby",
        "query": ["x", "y"],
        "page": "2",
        "header": "1",
        "headers": ["a", "b"],
        "cookies": {"a": "1", "b": "two"},
        "client": ("10.1.2.3", 5555),
        "subprotocols": ["v1", "v2"],
        "user": True,
        "session": None,
        "params": {"room": "lobby"},
        "states": (WebSocketState.CONNECTING, WebSocketState.CONNECTING),
        "after": (WebSocketState.CONNECTED, WebSocketState.CONNECTED, 1),
    }


async def test_accept_with_subprotocol_and_headers() -> None:
    @websocket("/sub")
    async def sub(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol=websocket.subprotocols[-1], headers=[(b"x-served-by", b"ravyn")])
        await websocket.close()

    async with connect(sub, "/sub", subprotocols=["a", "b"]) as ws:
        assert ws.subprotocol == "b"
        assert (b"x-served-by", b"ravyn") in ws.response_headers


async def test_iterators_end_on_disconnect() -> None:
    got: list[Any] = []

    @websocket("/iter")
    async def iterate(websocket: WebSocket) -> None:
        await websocket.accept()
        async for item in websocket.iter_json():
            got.append(item)
        got.append("end")

    async with connect(iterate, "/iter") as ws:
        await ws.send_json([1])
        await ws.send_json({"b": None})
    assert got == [[1], {"b": None}, "end"]


async def test_iter_bytes_and_iter_text() -> None:
    got: list[Any] = []

    @websocket("/iter2")
    async def iterate2(websocket: WebSocket) -> None:
        await websocket.accept()
        async for data in websocket.iter_bytes():
            got.append(data)
            break
        async for text in websocket.iter_text():
            got.append(text)

    async with connect(iterate2, "/iter2") as ws:
        await ws.send_bytes(b"\x01")
        await ws.send_text("t")
    assert got == [b"\x01", "t"]


async def test_json_binary_mode_both_ways() -> None:
    @websocket("/jbin")
    async def jbin(websocket: WebSocket) -> None:
        await websocket.accept()
        data = await websocket.receive_json(mode="binary")
        await websocket.send_json({"echo": data}, mode="binary")

    async with connect(jbin, "/jbin") as ws:
        await ws.send_json({"x": "ü"}, mode="binary")
        assert await ws.receive_bytes() == '{"echo":{"x":"ü"}}'.encode()


async def test_empty_messages_are_delivered() -> None:
    @websocket("/empty")
    async def empty(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.send_bytes(await websocket.receive_bytes())

    async with connect(empty, "/empty") as ws:
        await ws.send_text("")
        assert await ws.receive_text() == ""
        await ws.send_bytes(b"")
        assert await ws.receive_bytes() == b""


async def test_raw_receive_and_send() -> None:
    @websocket("/raw")
    async def raw(websocket: WebSocket) -> None:
        assert (await websocket.receive())["type"] == "websocket.connect"
        await websocket.send({"type": "websocket.accept"})
        message = await websocket.receive()
        await websocket.send({"type": "websocket.send", "text": message["text"].upper()})
        assert (await websocket.receive())["type"] == "websocket.disconnect"
        assert websocket.client_state is WebSocketState.DISCONNECTED

    async with connect(raw, "/raw") as ws:
        await ws.send_text("abc")
        assert await ws.receive_text() == "ABC"


async def test_disconnect_carries_code() -> None:
    codes: list[int] = []

    @websocket("/code")
    async def code(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            codes.append(exc.code)

    async with connect(code, "/code") as ws:
        await ws.close(code=4004)
    assert codes == [4004]


async def test_send_after_close_is_an_error() -> None:
    errors: list[str] = []

    @websocket("/after")
    async def after(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()
        try:
            await websocket.send_text("late")
        except RuntimeError as exc:
            errors.append(str(exc))

    async with connect(after, "/after") as ws:
        await ws.wait_closed()
    assert errors == ['Cannot call "send" once a close message has been sent.']


def test_headers_mapping_is_case_insensitive() -> None:
    h = Headers([(b"Content-Type", b"text/plain"), (b"x-a", b"1"), (b"X-A", b"2")])
    assert h["content-type"] == "text/plain"
    assert h.getlist("X-a") == ["1", "2"]
    assert list(h) == ["content-type", "x-a"] and len(h) == 2


def test_websocket_needs_websocket_scope() -> None:
    async def nothing() -> dict[str, Any]:
        return {}

    async def sink(message: Any) -> None: ...

    with pytest.raises(ValueError, match="needs a 'websocket' scope, got 'http'"):
        WebSocket({"type": "http"}, nothing, sink)



async def test_receive_json_nested_too_deeply_closes_1007_with_a_warning(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/deep-json")
    async def deep_json(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(await websocket.receive_json())

    async with connect(deep_json, "/deep-json") as ws:
        await ws.send_text("[" * 100_000 + "]" * 100_000)
        assert await ws.wait_closed() == 1007
    [record] = [r for r in rc_logs.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "receive_json() got JSON nested too deeply to decode" in record.getMessage()
