import uuid

import pytest

from ravyn_channels import WebSocket, websocket
from ravyn_channels.params import ParameterError


@pytest.mark.parametrize("name", ["websocket", "socket", "ws"])
def test_websocket_by_name(name: str) -> None:
    ns: dict = {}
    exec(f"async def h({name}, room): pass", ns)
    route = websocket("/p/{room}")(ns["h"])
    kwargs = route.plan.resolve("WS", {"room": "a"})  # type: ignore[arg-type]
    assert kwargs == {name: "WS", "room": "a"}


def test_websocket_by_annotation_any_name() -> None:
    async def h(conn: WebSocket) -> None: ...

    assert websocket("/ann")(h).plan.resolve("WS", {}) == {"conn": "WS"}  # type: ignore[arg-type]


def test_annotation_coerces_path_value() -> None:
    async def h(websocket: WebSocket, item: int, key: uuid.UUID) -> None: ...

    route = websocket("/c/{item}/{key}")(h)
    u = uuid.uuid4()
    assert route.plan.resolve("WS", {"item": "7", "key": str(u)}) == {  # type: ignore[arg-type]
        "websocket": "WS",
        "item": 7,
        "key": u,
    }


def test_bad_coercion_raises_parameter_error() -> None:
    async def h(websocket: WebSocket, item: int) -> None: ...

    route = websocket("/c2/{item}")(h)
    with pytest.raises(ParameterError, match="parameter 'item': 'x' does not convert"):
        route.plan.resolve("WS", {"item": "x"})  # type: ignore[arg-type]


def test_unfillable_parameter_names_handler_and_fix() -> None:
    async def needs_room(websocket: WebSocket, room: str) -> None: ...

    with pytest.raises(TypeError, match=r"needs_room: parameter 'room' cannot be filled.*Add '\{room\}' to the path"):
        websocket("/nothing")(needs_room)


def test_default_parameter_is_left_alone() -> None:
    async def h(websocket: WebSocket, flag: bool = True) -> None: ...

    assert websocket("/d")(h).plan.resolve("WS", {}) == {"websocket": "WS"}  # type: ignore[arg-type]


def test_no_websocket_parameter() -> None:
    async def lonely(room: str) -> None: ...

    with pytest.raises(TypeError, match="lonely: no parameter receives the WebSocket"):
        websocket("/l/{room}")(lonely)


def test_two_websocket_parameters() -> None:
    async def two(websocket: WebSocket, other: WebSocket) -> None: ...

    with pytest.raises(TypeError, match="both 'websocket' and 'other'"):
        websocket("/two")(two)


def test_unsupported_path_annotation() -> None:
    async def h(websocket: WebSocket, x: list) -> None: ...  # type: ignore[type-arg]

    with pytest.raises(TypeError, match="path parameter 'x' is annotated"):
        websocket("/u/{x}")(h)
