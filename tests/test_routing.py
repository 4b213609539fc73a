import uuid

import pytest

from ravyn_channels import WebSocket, websocket
from ravyn_channels.routing import compile_path, registered_routes, websocket_urlpatterns


def test_compile_path_plain_param_is_str() -> None:
    assert compile_path("/ws/{client_id}") == ("ws/<str:client_id>", {"client_id": str})


@pytest.mark.parametrize(
    ("conv", "django", "py"),
    [("int", "ravyn_int", int), ("float", "ravyn_float", float), ("uuid", "uuid", uuid.UUID), ("path", "path", str)],
)
def test_compile_path_converters(conv: str, django: str, py: type) -> None:
    assert compile_path(f"/r/{{x:{conv}}}") == (f"r/<{django}:x>", {"x": py})


def test_compile_path_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="duplicated param name 'a'"):
        compile_path("/{a}/{a}")


def test_compile_path_rejects_unknown_converter() -> None:
    with pytest.raises(ValueError, match=r"unknown converter 'slug'.*str, int, float, uuid, path"):
        compile_path("/{a:slug}")


def test_compile_path_needs_leading_slash() -> None:
    with pytest.raises(ValueError, match="must be a string starting with '/'"):
        compile_path("ws/{a}")


def test_compile_path_rejects_django_syntax() -> None:
    with pytest.raises(ValueError, match="Django's <type:name> syntax"):
        compile_path("/ws/<int:a>")


def test_route_keeps_function_identity_and_is_callable() -> None:
    async def my_handler(websocket: WebSocket) -> None:
        """Doc."""

    route = websocket("/identity")(my_handler)
    assert route.__name__ == "my_handler"
    assert route.__doc__ == "Doc."
    assert route.__wrapped__ is my_handler
    assert route.consumer.__name__ == "MyHandlerConsumer"
    assert route.consumer.__module__ == my_handler.__module__
    where = f"{__name__}.test_route_keeps_function_identity_and_is_callable.<locals>.my_handler"
    assert repr(route) == f"<WebSocketRoute '/identity' -> {where}>"
    assert route in registered_routes()


def test_sync_handler_fails_at_decoration() -> None:
    def sync_handler(websocket: WebSocket) -> None: ...

    with pytest.raises(TypeError, match=r"sync_handler: @websocket handlers must be 'async def'"):
        websocket("/sync")(sync_handler)  # type: ignore[arg-type]


def test_bare_decorator_is_refused() -> None:
    async def h(websocket: WebSocket) -> None: ...

    with pytest.raises(TypeError, match="not bare @websocket"):
        websocket(h)  # type: ignore[arg-type]


def test_urlpatterns_match_and_convert() -> None:
    async def h(websocket: WebSocket, n: int) -> None: ...

    route = websocket("/n/{n:int}")(h)
    [pattern] = websocket_urlpatterns([route])
    assert pattern.pattern.match("n/-12") == ("", (), {"n": -12})
    assert pattern.pattern.match("n/abc") is None


def test_urlpatterns_fallback_is_last() -> None:
    patterns = websocket_urlpatterns([], fallback=True)
    assert [p.name for p in patterns] == ["ravyn_channels_not_found"]
