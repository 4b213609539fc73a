"""``Inject(...)``: dependencies resolved before accept, cached per connection, cleaned up at close."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest
from django.core.exceptions import PermissionDenied

from ravyn_channels import Inject, Query, WebSocket, WebSocketException, websocket
from ravyn_channels.testing import HandshakeRefused, connect

pytestmark = pytest.mark.django_db


async def test_async_dependency_with_its_own_parameters() -> None:
    async def get_room(websocket: WebSocket, room: str, token: str = Query()) -> str:
        return f"{room}:{token}:{websocket.url.path}"

    @websocket("/dep1/{room}")
    async def h(websocket: WebSocket, where: str = Inject(get_room)) -> None:
        await websocket.accept()
        await websocket.send_text(where)

    async with connect(h, "/dep1/lobby?token=t") as ws:
        assert await ws.receive_text() == "lobby:t:/dep1/lobby"


async def test_sync_dependency_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()

    def which_thread() -> int:
        return threading.get_ident()

    @websocket("/dep2")
    async def h(websocket: WebSocket, thread: int = Inject(which_thread)) -> None:
        await websocket.accept()
        await websocket.send_json({"same": thread == loop_thread})

    async with connect(h, "/dep2") as ws:
        assert await ws.receive_json() == {"same": False}


async def answer() -> int:
    return 42


async def test_dependency_in_annotated() -> None:
    # (with postponed annotations, a dependency named in Annotated must be a module-level name)
    @websocket("/dep3")
    async def h(websocket: WebSocket, value: Annotated[int, Inject(answer)]) -> None:
        await websocket.accept()
        await websocket.send_json(value)

    async with connect(h, "/dep3") as ws:
        assert await ws.receive_json() == 42


async def test_cached_per_connection_unless_use_cache_false() -> None:
    calls: list[str] = []

    async def counter() -> int:
        calls.append("x")
        return len(calls)

    async def uses_counter(n: int = Inject(counter)) -> int:
        return n

    @websocket("/dep4")
    async def h(
        websocket: WebSocket,
        a: int = Inject(counter),
        b: int = Inject(uses_counter),
        fresh: int = Inject(counter, use_cache=False),
    ) -> None:
        await websocket.accept()
        await websocket.send_json([a, b, fresh])

    async with connect(h, "/dep4") as ws:
        assert await ws.receive_json() == [1, 1, 2]
    async with connect(h, "/dep4") as ws:  # a new connection calls it again
        assert await ws.receive_json() == [3, 3, 4]


async def test_generator_dependencies_exit_when_the_connection_closes() -> None:
    events: list[str] = []
    closed = asyncio.Event()

    def sync_resource() -> Iterator[str]:
        events.append("sync enter")
        yield "db"
        events.append("sync exit")

    async def async_resource() -> AsyncIterator[str]:
        events.append("async enter")
        try:
            yield "cache"
        finally:
            events.append("async exit")
            closed.set()

    @websocket("/dep5")
    async def h(websocket: WebSocket, db: str = Inject(sync_resource), cache: str = Inject(async_resource)) -> None:
        await websocket.accept()
        await websocket.send_text(f"{db}+{cache}")
        events.append("handler")
        await websocket.receive_text()

    async with connect(h, "/dep5") as ws:
        assert await ws.receive_text() == "db+cache"
    await asyncio.wait_for(closed.wait(), 5)
    # entered in signature order, exited in reverse, after the handler
    assert events == ["sync enter", "async enter", "handler", "async exit", "sync exit"]


async def test_refusal_exits_what_was_entered(rc_logs: pytest.LogCaptureFixture) -> None:
    events: list[str] = []

    async def resource() -> AsyncIterator[str]:
        events.append("enter")
        yield "r"
        events.append("exit")

    @websocket("/dep6")
    async def h(websocket: WebSocket, r: str = Inject(resource), token: str = Query()) -> None:
        await websocket.accept()

    with pytest.raises(HandshakeRefused):
        async with connect(h, "/dep6"):
            pass
    assert events == ["enter", "exit"]
    [line] = [r for r in rc_logs.records if "Refused websocket /dep6" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert "parameter 'token': missing query parameter 'token'" in line.getMessage()


async def test_dependency_that_refuses(rc_logs: pytest.LogCaptureFixture) -> None:
    async def must_be_vip(websocket: WebSocket, level: int = Query(0)) -> int:
        if level < 3:
            raise WebSocketException(reason="not a VIP")
        return level

    def django_style(level: int = Inject(must_be_vip)) -> int:
        if level > 5:
            raise PermissionDenied("too important")
        return level

    @websocket("/dep7")
    async def h(websocket: WebSocket, level: int = Inject(django_style)) -> None:
        await websocket.accept()
        await websocket.send_json(level)

    async with connect(h, "/dep7?level=4") as ws:
        assert await ws.receive_json() == 4
    for query, why in [("level=1", "refused (not a VIP)"), ("level=9", "refused (PermissionDenied: too important)")]:
        with pytest.raises(HandshakeRefused):
            async with connect(h, f"/dep7?{query}"):
                pass
        [line] = [r for r in rc_logs.records if why in r.getMessage()]
        assert line.levelno == logging.INFO and line.exc_info is None
    [nested] = [r for r in rc_logs.records if "not a VIP" in r.getMessage()]
    assert "test_dependency_that_refuses.<locals>.must_be_vip refused" in nested.getMessage()


async def test_missing_value_of_a_dependency_names_the_dependency(rc_logs: pytest.LogCaptureFixture) -> None:
    async def needs_key(key: str = Query()) -> str:
        return key

    @websocket("/dep8")
    async def h(websocket: WebSocket, key: str = Inject(needs_key)) -> None:
        await websocket.accept()

    with pytest.raises(HandshakeRefused):
        async with connect(h, "/dep8"):
            pass
    assert any(
        "parameter 'key' of dependency tests.test_dependencies.test_missing_value_of_a_dependency_names_the_dependency"
        ".<locals>.needs_key: missing query parameter 'key'" in r.getMessage()
        for r in rc_logs.records
    )


async def test_dependency_that_raises_is_logged_with_traceback(rc_logs: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("bug in a dependency")

    @websocket("/dep9")
    async def h(websocket: WebSocket, x: None = Inject(broken)) -> None:
        await websocket.accept()

    with pytest.raises(HandshakeRefused):
        async with connect(h, "/dep9"):
            pass
    [record] = [r for r in rc_logs.records if r.exc_info]
    assert record.levelno == logging.ERROR and "a dependency or permission raised" in record.getMessage()


async def test_class_and_callable_instance_dependencies() -> None:
    class Settings:
        def __init__(self, theme: str = Query("light")):
            self.theme = theme

    class Multiplier:
        async def __call__(self, n: int = Query(1)) -> int:
            return n * 10

    @websocket("/dep10")
    async def h(websocket: WebSocket, s: Settings = Inject(Settings), m: int = Inject(Multiplier())) -> None:
        await websocket.accept()
        await websocket.send_json([s.theme, m])

    async with connect(h, "/dep10?theme=dark&n=4") as ws:
        assert await ws.receive_json() == ["dark", 40]


def test_dependency_cycle_fails_at_decoration() -> None:
    def a(x: Any = None) -> None: ...

    def b(y: Any = Inject(a)) -> None: ...

    a.__defaults__ = (Inject(b),)

    async def h(websocket: WebSocket, v: Any = Inject(a)) -> None: ...

    with pytest.raises(TypeError, match="dependency cycle"):
        websocket("/cycle")(h)


def test_unfillable_dependency_parameter_fails_at_decoration() -> None:
    async def needs_room(room: dict[str, int]) -> str:
        return str(room)

    async def h(websocket: WebSocket, r: str = Inject(needs_room)) -> None: ...

    with pytest.raises(TypeError, match=r"h: dependency .*needs_room: parameter 'room' cannot be filled"):
        websocket("/nowhere")(h)


def test_inject_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="Inject\\(\\) takes a function or class to call, got 3"):
        Inject(3)  # type: ignore[arg-type]
