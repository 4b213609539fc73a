"""Starlette/FastAPI/Ravyn parity of handler signatures, the WebSocket object and the test client (issue 13)."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import pytest

from ravyn_channels import Header, Inject, WebSocket, WebSocketDisconnect, WebSocketException, websocket
from ravyn_channels.params import ParameterError
from ravyn_channels.testing import HandshakeRefused, connect
from ravyn_channels.websocket import QueryParams

pytestmark = pytest.mark.django_db


async def _noop_receive() -> Any:
    raise AssertionError("not called")


async def _noop_send(message: Any) -> None:
    raise AssertionError("not called")


# -- 1. a plain parameter is a query parameter --------------------------------------------


async def test_plain_parameter_without_default_is_a_required_query_parameter() -> None:
    @websocket("/plain/{room}")
    async def plain(websocket: WebSocket, room: str, q: str, n: int, flag: bool = False) -> None:
        await websocket.accept()
        await websocket.send_json({"room": room, "q": q, "n": n, "flag": flag})

    async with connect(plain, "/plain/lobby?q=hi&n=3&room=ignored") as ws:
        assert await ws.receive_json() == {"room": "lobby", "q": "hi", "n": 3, "flag": False}
    for path in ("/plain/lobby?n=3", "/plain/lobby?q=hi&n=three"):
        with pytest.raises(HandshakeRefused) as info:
            async with connect(plain, path):
                pass
        assert info.value.code == 1008


async def test_plain_parameter_refusal_names_the_parameter() -> None:
    async def h(websocket: WebSocket, token: str) -> None: ...

    with pytest.raises(ParameterError, match="parameter 'token': missing query parameter 'token'"):
        await websocket("/plain-msg")(h).plan.resolve(WebSocket(_scope(b""), _noop_receive, _noop_send), {})


async def test_plain_parameter_of_a_dependency_is_a_query_parameter() -> None:
    def limit_of(query_param: int) -> int:
        return query_param * 2

    @websocket("/plain-dep")
    async def with_dep(websocket: WebSocket, limit: int = Inject(limit_of)) -> None:
        await websocket.accept()
        await websocket.send_json(limit)

    async with connect(with_dep, "/plain-dep?query_param=21") as ws:
        assert await ws.receive_json() == 42
    with pytest.raises(HandshakeRefused) as info:
        async with connect(with_dep, "/plain-dep"):
            pass
    assert info.value.code == 1008 and "missing query parameter 'query_param'" in info.value.reason


def test_a_parameter_no_query_can_carry_still_fails_decoration() -> None:
    async def h(websocket: WebSocket, registry: dict[str, int]) -> None: ...

    with pytest.raises(TypeError, match="parameter 'registry' cannot be filled: dict\\[str, int\\] is not a type"):
        websocket("/no-query")(h)


# -- 2. Ravyn's reserved parameters ----------------------------------------------------------


async def test_reserved_headers_query_and_cookies_parameters() -> None:
    @websocket("/reserved")
    async def reserved(websocket: WebSocket, headers: dict, query: dict, cookies: dict) -> None:  # type: ignore[type-arg]
        await websocket.accept()
        await websocket.send_json({"agent": headers["X-Agent"], "query": query, "cookies": cookies})

    headers = [("x-agent", "tests"), ("cookie", "a=1; b=2")]
    async with connect(reserved, "/reserved?a=1&a=2&b=x", headers=headers) as ws:
        expected = {"agent": "tests", "query": {"a": "2", "b": "x"}, "cookies": {"a": "1", "b": "2"}}
        assert await ws.receive_json() == expected
    assert reserved.plan.describe()["headers"] == "all headers"


async def test_reserved_name_with_a_scalar_annotation_is_a_query_parameter() -> None:
    @websocket("/reserved-scalar")
    async def scalar(websocket: WebSocket, query: str) -> None:
        await websocket.accept()
        await websocket.send_text(query)

    async with connect(scalar, "/reserved-scalar?query=find+me") as ws:
        assert await ws.receive_text() == "find me"


# -- 3. functools.partial endpoints ------------------------------------------------------------


async def greet(websocket: WebSocket, greeting: str, who: str) -> None:
    """Greets someone."""
    await websocket.accept()
    await websocket.send_text(f"{greeting}, {who}")


@pytest.mark.parametrize("name", [None, "greeter"])
async def test_partial_endpoint_decorates_and_runs(name: str | None) -> None:
    route = websocket("/partial", name=name)(functools.partial(greet, greeting="hello"))
    assert route.name == (name or "greet")
    assert route.consumer.__name__ == "GreetConsumer" and route.consumer.__doc__ == "Greets someone."
    assert route.qualname == "tests.test_parity.greet"
    from types import SimpleNamespace

    from ravyn_channels.checks import _routes, check_routes

    assert check_routes(routes=[route]) == []
    assert _routes([SimpleNamespace(name="tests")], [route]) == [route]  # checked with the function's app
    async with connect(route, "/partial?who=ada&greeting=ignored") as ws:
        assert await ws.receive_text() == "hello, ada"  # a bound keyword is never read from the client


# -- 4. refusals close with the refusal's code in process --------------------------------------


async def test_dependency_refusal_is_1008_in_process(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/refuse-header")
    async def needs_header(websocket: WebSocket, x_token: str = Header()) -> None:
        await websocket.accept()

    with pytest.raises(WebSocketDisconnect) as info:  # FastAPI's TestClient raises WebSocketDisconnect too
        async with connect(needs_header, "/refuse-header"):
            pass
    assert isinstance(info.value, HandshakeRefused)
    assert info.value.code == 1008
    assert info.value.reason == "parameter 'x_token': missing header 'x-token'"


async def test_origin_refusal_is_1008_in_process() -> None:
    @websocket("/refuse-origin")
    async def origin(websocket: WebSocket) -> None:
        await websocket.accept()

    with pytest.raises(HandshakeRefused) as info:
        async with connect(origin, "/refuse-origin", headers={"origin": "https://evil.example"}):
            pass
    assert info.value.code == 1008


async def test_handler_refusing_before_accept_sends_its_code() -> None:
    @websocket("/refuse-own")
    async def own(websocket: WebSocket) -> None:
        raise WebSocketException(4403, "go away")

    with pytest.raises(HandshakeRefused) as info:
        async with connect(own, "/refuse-own"):
            pass
    assert (info.value.code, info.value.reason) == (4403, "go away")


# -- 5. scope["route"] -------------------------------------------------------------------------


async def test_scope_route_is_the_matched_route() -> None:
    async def matched_fn(websocket: WebSocket, item_id: int) -> None:
        await websocket.accept()
        scope = websocket.scope
        await websocket.send_json([scope["route"].path, scope["route"] is matched, scope["endpoint"] is matched_fn])

    matched = websocket("/matched/{item_id:int}")(matched_fn)
    async with connect(matched, "/matched/7") as ws:
        assert await ws.receive_json() == ["/matched/{item_id:int}", True, True]


# -- 6. query_params ---------------------------------------------------------------------------


def test_query_params_multi_dict() -> None:
    params = QueryParams(b"a=1&b=x&a=2&empty=")
    assert dict(params) == {"a": "2", "b": "x", "empty": ""}
    assert params["a"] == "2" and params.get("a") == "2" and params.get("zz", "d") == "d"
    assert params.getlist("a") == ["1", "2"] and params.getlist("zz") == []
    assert params.multi_items() == [("a", "1"), ("b", "x"), ("a", "2"), ("empty", "")]
    assert params.lists() == [("a", ["1", "2"]), ("b", ["x"]), ("empty", [""])]
    assert params.urlencode() == str(params) == "a=1&b=x&a=2&empty="
    assert len(params) == 3 and list(params) == ["a", "b", "empty"] and "b" in params
    assert params == QueryParams("a=1&a=2&b=x&empty=") and params != QueryParams("a=1")


def test_query_params_are_bounded_like_django_querydict() -> None:
    from django.core.exceptions import TooManyFieldsSent
    from django.test import override_settings

    with override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=2):
        assert QueryParams("a=1&b=2").getlist("b") == ["2"]
        with pytest.raises(TooManyFieldsSent, match="more than 2 parameters"):
            QueryParams("a=1&b=2&c=3")


async def test_websocket_query_params_dict_is_last_value_per_key() -> None:
    @websocket("/qp")
    async def qp(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(dict(websocket.query_params))

    async with connect(qp, "/qp?a=abc&b=456&b=789") as ws:
        assert await ws.receive_json() == {"a": "abc", "b": "789"}


# -- 7. the Mapping interface over the scope ---------------------------------------------------


def test_websocket_is_a_mapping_over_its_scope() -> None:
    scope = {"type": "websocket", "path": "/abc/", "headers": [], "subprotocols": ["soap", "wamp"]}
    ws = WebSocket(scope, _noop_receive, _noop_send)
    assert ws["subprotocols"] == ["soap", "wamp"]
    assert dict(ws) == scope and len(ws) == 4 and list(ws) == list(scope)
    other = WebSocket(dict(scope), _noop_receive, _noop_send)
    assert ws != other and ws == ws and {ws, other} == {ws, other} and len({ws, other}) == 2


# -- 8. Starlette's RuntimeErrors ---------------------------------------------------------------


async def test_invalid_json_mode_raises_runtime_error() -> None:
    errors: list[str] = []

    @websocket("/bad-mode")
    async def bad_mode(websocket: WebSocket) -> None:
        await websocket.accept()
        for call in (lambda: websocket.send_json({}, mode="invalid"), lambda: websocket.receive_json(mode="invalid")):  # type: ignore[arg-type]
            try:
                await call()
            except RuntimeError as exc:
                errors.append(str(exc))
        await websocket.close()

    async with connect(bad_mode, "/bad-mode") as ws:
        await ws.wait_closed()
    assert errors == [
        "send_json(mode=...) takes \"text\" or \"binary\", got 'invalid'.",
        "receive_json(mode=...) takes \"text\" or \"binary\", got 'invalid'.",
    ]


async def test_receive_after_accept_refuses_a_second_connect_message() -> None:
    messages = [{"type": "websocket.connect"}, {"type": "websocket.connect"}]

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        pass

    ws = WebSocket(_scope(b""), receive, send)
    await ws.accept()
    expected = "Expected \"websocket.receive\" or \"websocket.disconnect\", got 'websocket.connect'."
    with pytest.raises(RuntimeError, match=re.escape(expected)):
        await ws.receive()


async def test_unexpected_message_reaches_the_handler_as_runtime_error(rc_logs: pytest.LogCaptureFixture) -> None:
    @websocket("/wrong-type")
    async def wrong_type(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive()

    async with connect(wrong_type, "/wrong-type") as ws:
        await ws.send({"type": "websocket.connect"})
        assert await ws.wait_closed() == 1011
    [line] = [r for r in rc_logs.records if r.levelno == logging.ERROR]
    assert line.exc_info is not None and isinstance(line.exc_info[1], RuntimeError)


# -- 9. WebSocketException's str -----------------------------------------------------------------


def test_websocket_exception_str_is_starlettes() -> None:
    assert str(WebSocketException(1008, "Policy Violation")) == "1008: Policy Violation"
    assert str(WebSocketException(1008)) == "1008: "
    assert repr(WebSocketException(1008, "x")) == "WebSocketException(code=1008, reason='x')"


# -- 10. url and raw_path ------------------------------------------------------------------------


def _scope(query: bytes, **extra: Any) -> dict[str, Any]:
    return {"type": "websocket", "path": "/p", "headers": [], "query_string": query, **extra}


@pytest.mark.parametrize(
    ("scheme", "server", "url"),
    [
        ("wss", ("example.org", 443), "wss://example.org/p"),
        ("ws", ("example.org", 80), "ws://example.org/p"),
        ("ws", ("example.org", 443), "ws://example.org:443/p"),
        ("wss", ("example.org", 8443), "wss://example.org:8443/p"),
        ("ws", ("::1", 8000), "ws://[::1]:8000/p"),
        ("ws", ("[::1]", 80), "ws://[::1]/p"),
    ],
)
def test_url_omits_the_default_port(scheme: str, server: tuple[str, int], url: str) -> None:
    ws = WebSocket(_scope(b"", scheme=scheme, server=server), _noop_receive, _noop_send)
    assert str(ws.url) == url


async def test_test_client_url_and_raw_path() -> None:
    @websocket("/raw/{name}")
    async def raw(websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        await websocket.send_json([str(websocket.url), websocket.scope["raw_path"].decode()])

    async with connect(raw, "/raw/a%20b?x=1") as ws:
        assert await ws.receive_json() == ["ws://testserver/raw/a b?x=1", "/raw/a%20b"]


# -- 13. the test session's close takes a reason ------------------------------------------------


async def test_test_session_close_sends_code_and_reason() -> None:
    seen: list[tuple[int, str]] = []

    @websocket("/bye")
    async def bye(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))

    async with connect(bye, "/bye") as ws:
        await ws.close(1001, "Going Away")
    assert seen == [(1001, "Going Away")]
