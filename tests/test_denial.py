"""Handshake answers in process: accept(headers=...), denial responses, refusals choosing their HTTP status."""

import json
import logging
from typing import Any

import pytest
from django.http import HttpResponse, StreamingHttpResponse

from ravyn_channels import DenialResponse, Inject, WebSocket, WebSocketDenial, WebSocketState, websocket
from ravyn_channels.permissions import BasePermission, PermissionRefused
from ravyn_channels.testing import HandshakeRefused, connect
from ravyn_channels.websocket import header_pairs

pytestmark = pytest.mark.django_db


# -- accept(headers=...) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Test": "1", "x-other": "two"},
        {b"x-test": b"1", b"x-other": b"two"},
        [("x-test", "1"), (b"x-other", b"two")],
        (("X-TEST", b"1"), ("x-other", "two")),
    ],
)
async def test_accept_headers_dict_or_pairs(headers: Any) -> None:
    @websocket("/h")
    async def h(websocket: WebSocket) -> None:
        await websocket.accept(headers=headers)
        await websocket.close()

    async with connect(h, "/h") as ws:
        assert ws.response_headers == [(b"x-test", b"1"), (b"x-other", b"two")]


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ("x-test: 1", TypeError),
        ([("x-test",)], TypeError),
        ([("x-test", 1)], TypeError),
        ({"x-test": "1\r\nx-evil: 2"}, ValueError),
        ({"": "1"}, ValueError),
        ({"x-test": "\u20ac"}, ValueError),
    ],
)
def test_bad_headers_are_refused_with_the_fix(headers: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        header_pairs(headers)


# -- send_denial_response -------------------------------------------------------------------


def denying(response: Any, states: list[WebSocketState] | None = None) -> Any:
    @websocket("/deny")
    async def deny(websocket: WebSocket) -> None:
        await websocket.send_denial_response(response)
        if states is not None:
            states.append(websocket.application_state)

    return deny


async def test_denial_response_status_headers_body() -> None:
    states: list[WebSocketState] = []
    response = DenialResponse({"detail": "who are you?"}, status_code=401, headers={"www-authenticate": "Bearer"})
    route = denying(response, states)
    with pytest.raises(HandshakeRefused) as info:
        async with connect(route, "/deny"):
            pass
    refused = info.value
    assert refused.status_code == 401
    assert refused.json() == {"detail": "who are you?"}
    assert (b"www-authenticate", b"Bearer") in refused.headers
    assert (b"content-type", b"application/json") in refused.headers
    assert states == [WebSocketState.DISCONNECTED]


@pytest.mark.parametrize(
    ("content", "media_type", "body", "content_type"),
    [
        ("gone", None, b"gone", b"text/plain; charset=utf-8"),
        (b"\x00", None, b"\x00", b"application/octet-stream"),
        ("<p>no</p>", "text/html", b"<p>no</p>", b"text/html"),
        (None, None, b"", None),
    ],
)
async def test_denial_response_content_types(content: Any, media_type: Any, body: bytes, content_type: Any) -> None:
    with pytest.raises(HandshakeRefused) as info:
        async with connect(denying(DenialResponse(content, status_code=404, media_type=media_type)), "/deny"):
            pass
    assert (info.value.status_code, info.value.body) == (404, body)
    assert dict(info.value.headers).get(b"content-type") == content_type
    assert dict(info.value.headers)[b"content-length"] == str(len(body)).encode()


async def test_django_http_response_with_cookie() -> None:
    response = HttpResponse("slow down", status=429, content_type="text/plain")
    response["Retry-After"] = "30"
    response.set_cookie("seen", "1")
    with pytest.raises(HandshakeRefused) as info:
        async with connect(denying(response), "/deny"):
            pass
    headers = dict(info.value.headers)
    assert (info.value.status_code, info.value.body) == (429, b"slow down")
    assert headers[b"retry-after"] == b"30"
    assert headers[b"set-cookie"].startswith(b"seen=1;")


async def test_starlette_response() -> None:
    responses = pytest.importorskip("starlette.responses")
    with pytest.raises(HandshakeRefused) as info:
        async with connect(denying(responses.PlainTextResponse("nope", status_code=403)), "/deny"):
            pass
    assert (info.value.status_code, info.value.body) == (403, b"nope")


async def test_plain_asgi_http_response_is_prefixed() -> None:
    async def teapot(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"tea", "more_body": True})
        await send({"type": "http.response.body", "body": b"pot"})

    with pytest.raises(HandshakeRefused) as info:
        async with connect(denying(teapot), "/deny"):
            pass
    assert (info.value.status_code, info.value.body) == (418, b"teapot")


async def test_without_the_extension_it_raises_runtime_error_and_refuses_with_403() -> None:
    errors: list[str] = []

    @websocket("/deny")
    async def deny(websocket: WebSocket) -> None:
        try:
            await websocket.send_denial_response(DenialResponse(status_code=401))
        except RuntimeError as exc:
            errors.append(str(exc))
            await websocket.close()

    with pytest.raises(HandshakeRefused) as info:
        async with connect(deny, "/deny", scope={"extensions": {}}):
            pass
    assert info.value.status_code == 403
    assert "doesn't support the WebSocket Denial Response extension" in errors[0]


async def test_denial_after_accept_is_an_error() -> None:
    errors: list[str] = []

    @websocket("/late")
    async def late(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.send_denial_response(DenialResponse(status_code=401))
        except RuntimeError as exc:
            errors.append(str(exc))

    async with connect(late, "/late") as ws:
        await ws.wait_closed()
    assert "must come before accept()" in errors[0]


def test_unsendable_denials_fail_where_they_are_made() -> None:
    with pytest.raises(ValueError, match="300-599"):
        DenialResponse(status_code=200)
    with pytest.raises(ValueError, match="300-599"):
        WebSocketDenial(101)
    with pytest.raises(TypeError, match="Cannot send 42 as a denial response"):
        WebSocketDenial(response=42)
    with pytest.raises(TypeError, match="streaming"):
        WebSocketDenial(response=StreamingHttpResponse(iter([b"x"])))


# -- refusals choosing their status ---------------------------------------------------------


def token(websocket: WebSocket) -> str:
    if websocket.query_params.get("token") != "good":
        raise WebSocketDenial(401, "bad token", headers={"WWW-Authenticate": "Bearer"})
    return "good"


async def test_dependency_raises_denial(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/dep")
    async def dep(websocket: WebSocket, t: str = Inject(token)) -> None:
        await websocket.accept()
        await websocket.send_text(t)

    with pytest.raises(HandshakeRefused) as info:
        async with connect(dep, "/dep?token=bad"):
            pass
    assert info.value.status_code == 401
    assert info.value.json() == {"detail": "bad token"}
    assert (b"www-authenticate", b"Bearer") in info.value.headers
    assert [r.levelno for r in rc_logs.records] == [logging.INFO]
    assert "HTTP 401: bad token" in rc_logs.records[0].getMessage()
    async with connect(dep, "/dep?token=good") as ws:
        assert await ws.receive_text() == "good"


async def test_handler_raises_denial_before_accept() -> None:
    @websocket("/h")
    async def h(websocket: WebSocket) -> None:
        raise WebSocketDenial(404, response=HttpResponse("no room", status=404))

    with pytest.raises(HandshakeRefused) as info:
        async with connect(h, "/h"):
            pass
    assert (info.value.status_code, info.value.body) == (404, b"no room")


async def test_handler_raises_denial_after_accept_closes_1008() -> None:
    @websocket("/h")
    async def h(websocket: WebSocket) -> None:
        await websocket.accept()
        raise WebSocketDenial(401, reason="session expired")

    async with connect(h, "/h") as ws:
        assert await ws.wait_closed() == 1008
        assert ws.close_reason == "session expired"


class Crowded(BasePermission):
    status_code = 429
    message = "room is full"

    async def has_permission(self, websocket: WebSocket) -> bool:
        return False


class Nobody(BasePermission):
    async def has_permission(self, websocket: WebSocket) -> bool:
        return False


async def test_permission_status_code(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/p", permissions=[Crowded])
    async def p(websocket: WebSocket) -> None:
        await websocket.accept()

    with pytest.raises(HandshakeRefused) as info:
        async with connect(p, "/p"):
            pass
    assert info.value.status_code == 429
    assert info.value.json() == {"detail": "permission denied"}
    assert "room is full" in rc_logs.text


async def test_permission_without_status_code_is_a_plain_403() -> None:
    @websocket("/p", permissions=[Nobody])
    async def p(websocket: WebSocket) -> None:
        await websocket.accept()

    with pytest.raises(HandshakeRefused) as info:
        async with connect(p, "/p"):
            pass
    assert (info.value.status_code, info.value.body) == (403, b"")
    assert PermissionRefused(Nobody()).response is None


def test_permission_status_code_is_checked_at_decoration() -> None:
    class Odd(BasePermission):
        status_code = 200

    with pytest.raises(ValueError, match="status_code=200; give an HTTP status from 300 to 599"):

        @websocket("/odd", permissions=[Odd])
        async def odd(websocket: WebSocket) -> None:
            await websocket.accept()


async def test_denial_is_403_when_the_server_cannot_send_it(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/p", permissions=[Crowded])
    async def p(websocket: WebSocket) -> None:
        await websocket.accept()

    with pytest.raises(HandshakeRefused) as info:
        async with connect(p, "/p", scope={"extensions": {}}):
            pass
    assert info.value.status_code == 403
    assert "cannot answer the handshake with HTTP 429" in rc_logs.text


def test_denial_str_names_the_status() -> None:
    assert str(WebSocketDenial(404)) == "HTTP 404: Not Found"
    assert json.loads(DenialResponse([1, "é"]).body) == [1, "é"]
