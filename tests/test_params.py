import enum
import uuid
from typing import Annotated, Any, Literal

import pytest

from ravyn_channels import Cookie, Header, Query, WebSocket, websocket
from ravyn_channels.coerce import pydantic_available
from ravyn_channels.params import ParameterError


@pytest.mark.parametrize("name", ["websocket", "socket", "ws"])
async def test_websocket_by_name(name: str) -> None:
    ns: dict = {}
    exec(f"async def h({name}, room): pass", ns)
    route = websocket("/p/{room}")(ns["h"])
    kwargs = await route.plan.resolve("WS", {"room": "a"})  # type: ignore[arg-type]
    assert kwargs == {name: "WS", "room": "a"}


async def test_websocket_by_annotation_any_name() -> None:
    async def h(conn: WebSocket) -> None: ...

    assert await websocket("/ann")(h).plan.resolve("WS", {}) == {"conn": "WS"}  # type: ignore[arg-type]


async def test_annotation_coerces_path_value() -> None:
    async def h(websocket: WebSocket, item: int, key: uuid.UUID) -> None: ...

    route = websocket("/c/{item}/{key}")(h)
    u = uuid.uuid4()
    assert await route.plan.resolve("WS", {"item": "7", "key": str(u)}) == {  # type: ignore[arg-type]
        "websocket": "WS",
        "item": 7,
        "key": u,
    }


async def test_bad_coercion_raises_parameter_error() -> None:
    async def h(websocket: WebSocket, item: int) -> None: ...

    route = websocket("/c2/{item}")(h)
    with pytest.raises(ParameterError, match="parameter 'item': 'x' is not an integer"):
        await route.plan.resolve("WS", {"item": "x"})  # type: ignore[arg-type]


class Room:
    """Not a type a query parameter can take."""


def test_unfillable_parameter_names_handler_and_fix() -> None:
    async def needs_room(websocket: WebSocket, room: Room) -> None: ...

    with pytest.raises(TypeError, match=r"needs_room: parameter 'room' cannot be filled.*Add '\{room\}' to the path"):
        websocket("/nothing")(needs_room)


async def test_default_of_a_non_simple_type_is_left_alone() -> None:
    async def h(websocket: WebSocket, registry: dict = {}) -> None: ...  # noqa: B006  # type: ignore[type-arg]

    assert await websocket("/d")(h).plan.resolve("WS", {}) == {"websocket": "WS"}  # type: ignore[arg-type]


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


# -- Query, Header, Cookie, user: read and converted before accept -------------------------

async def _never() -> Any:
    raise AssertionError("not used")


def ws_for(query: str = "", headers: dict[str, str] | None = None, user: Any = None) -> WebSocket:
    """A real WebSocket over a handshake scope (nothing is received or sent)."""
    scope: dict[str, Any] = {
        "type": "websocket",
        "path": "/t",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    if user is not None:
        scope["user"] = user
    return WebSocket(scope, _never, _never)  # type: ignore[arg-type]


async def resolve(route: Any, ws: WebSocket, **path: Any) -> dict[str, Any]:
    kwargs = await route.plan.resolve(ws, path)
    kwargs.pop("websocket", None)
    return dict(kwargs)


async def test_required_query_parameter() -> None:
    @websocket("/q1")
    async def h(websocket: WebSocket, token: str = Query()) -> None: ...

    assert await resolve(h, ws_for("token=abc")) == {"token": "abc"}
    with pytest.raises(ParameterError, match="parameter 'token': missing query parameter 'token'"):
        await resolve(h, ws_for())


async def test_query_default_and_conversion() -> None:
    @websocket("/q2")
    async def h(websocket: WebSocket, page: int = Query(1)) -> None: ...

    assert await resolve(h, ws_for()) == {"page": 1}
    assert await resolve(h, ws_for("page=3")) == {"page": 3}
    with pytest.raises(ParameterError, match="parameter 'page': query parameter 'page': 'x' is not an integer"):
        await resolve(h, ws_for("page=x"))


async def test_query_lists_take_every_value() -> None:
    @websocket("/q3")
    async def h(websocket: WebSocket, tags: list[str] = Query([]), ids: list[int] = Query([])) -> None: ...

    assert await resolve(h, ws_for("tags=a&ids=1&tags=b&ids=2")) == {"tags": ["a", "b"], "ids": [1, 2]}
    first = await resolve(h, ws_for())
    first["tags"].append("mutated")
    assert await resolve(h, ws_for()) == {"tags": [], "ids": []}  # the default is copied


async def test_optional_query_and_alias() -> None:
    @websocket("/q4")
    async def h(
        websocket: WebSocket, q: int | None = Query(None), per_page: int = Query(10, alias="per-page")
    ) -> None: ...

    assert await resolve(h, ws_for()) == {"q": None, "per_page": 10}
    assert await resolve(h, ws_for("q=5&per-page=50")) == {"q": 5, "per_page": 50}


async def test_annotated_markers() -> None:
    @websocket("/q5")
    async def h(
        websocket: WebSocket, token: Annotated[str, Query()], size: Annotated[int, Query()] = 5
    ) -> None: ...

    assert await resolve(h, ws_for("token=t")) == {"token": "t", "size": 5}
    with pytest.raises(ParameterError, match="missing query parameter 'token'"):
        await resolve(h, ws_for("size=1"))


async def test_fastapi_rule_default_and_simple_type_is_a_query_parameter() -> None:
    @websocket("/q6")
    async def h(websocket: WebSocket, q: int | None = None, flag: bool = False, name="anon") -> None: ...  # type: ignore[no-untyped-def]

    assert await resolve(h, ws_for()) == {"q": None, "flag": False, "name": "anon"}
    assert await resolve(h, ws_for("q=2&flag=yes&name=ada")) == {"q": 2, "flag": True, "name": "ada"}


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


async def test_conversions_bool_enum_literal_uuid() -> None:
    @websocket("/q7")
    async def h(
        websocket: WebSocket,
        on: bool = Query(),
        colour: Colour = Query(),
        mode: Literal["fast", "slow"] = Query("fast"),
        key: uuid.UUID = Query(),
    ) -> None: ...

    u = uuid.uuid4()
    got = await resolve(h, ws_for(f"on=0&colour=blue&mode=slow&key={u}"))
    assert got == {"on": False, "colour": Colour.BLUE, "mode": "slow", "key": u}
    with pytest.raises(ParameterError, match=r"query parameter 'colour': 'green' is not one of red, blue"):
        await resolve(h, ws_for(f"on=1&colour=green&key={u}"))
    with pytest.raises(ParameterError, match=r"'on': 'maybe' is not a boolean"):
        await resolve(h, ws_for(f"on=maybe&colour=red&key={u}"))
    with pytest.raises(ParameterError, match=r"'mode': 'medium' is not one of 'fast', 'slow'"):
        await resolve(h, ws_for(f"on=1&colour=red&mode=medium&key={u}"))


async def test_headers_with_underscores_and_alias() -> None:
    @websocket("/h1")
    async def h(
        websocket: WebSocket, x_token: str = Header(), agent: str = Header("?", alias="User-Agent")
    ) -> None: ...

    got = await resolve(h, ws_for(headers={"X-Token": "secret", "User-Agent": "pytest"}))
    assert got == {"x_token": "secret", "agent": "pytest"}
    with pytest.raises(ParameterError, match="parameter 'x_token': missing header 'x-token'"):
        await resolve(h, ws_for())


async def test_cookies() -> None:
    @websocket("/c1")
    async def h(websocket: WebSocket, theme: str = Cookie(), lang: str | None = Cookie(None)) -> None: ...

    assert await resolve(h, ws_for(headers={"Cookie": "theme=dark"})) == {"theme": "dark", "lang": None}
    with pytest.raises(ParameterError, match="missing cookie 'theme'"):
        await resolve(h, ws_for())


def test_a_cookie_cannot_be_a_list() -> None:
    async def h(websocket: WebSocket, ids: list[int] = Cookie()) -> None: ...

    with pytest.raises(TypeError, match="cookie parameter 'ids' is a list"):
        websocket("/c2")(h)


def test_marker_in_annotated_and_default_is_refused() -> None:
    async def h(websocket: WebSocket, q: Annotated[str, Query("a")] = "b") -> None: ...

    with pytest.raises(TypeError, match="parameter 'q' has a default both in Query\\('a'\\) and after '='"):
        websocket("/m1")(h)

    async def h2(websocket: WebSocket, q: Annotated[str, Query()] = Query()) -> None: ...

    with pytest.raises(TypeError, match="marker both in Annotated and as its default"):
        websocket("/m2")(h2)


def test_unresolvable_annotation_is_named() -> None:
    ns: dict[str, Any] = {"websocket": websocket, "Query": Query}
    exec(
        "from __future__ import annotations\n"
        "async def h(websocket, page: Later = Query(1)): ...\n",
        ns,
    )
    with pytest.raises(TypeError, match="the annotation 'Later' of parameter 'page' cannot be resolved"):
        websocket("/m3")(ns["h"])


def test_unresolvable_annotation_is_fine_where_the_type_is_not_needed() -> None:
    ns: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "async def h(websocket: WebSocket, room): ...\n",
        ns,
    )
    route = websocket("/m4/{room}")(ns["h"])
    assert route.plan.describe() == {"websocket": "websocket", "room": "path"}


def test_path_parameter_with_an_enum_annotation() -> None:
    async def h(websocket: WebSocket, colour: Colour) -> None: ...

    route = websocket("/m5/{colour}")(h)
    assert route.plan.describe() == {"websocket": "websocket", "colour": "path"}


class _User:
    """Stands in for a user object in the scope (is_authenticated is all these tests read)."""

    def __init__(self, authenticated: bool):
        self.is_authenticated = authenticated


async def test_user_by_name() -> None:
    @websocket("/u1")
    async def h(websocket: WebSocket, user) -> None: ...  # type: ignore[no-untyped-def]

    someone = _User(False)
    assert await resolve(h, ws_for(user=someone)) == {"user": someone}


async def test_user_annotation_requires_a_logged_in_user() -> None:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

    @websocket("/u2")
    async def h(websocket: WebSocket, me: User) -> None: ...

    @websocket("/u3")
    async def maybe(websocket: WebSocket, me: User | None) -> None: ...

    @websocket("/u4")
    async def anyone(websocket: WebSocket, me: AbstractBaseUser | AnonymousUser) -> None: ...

    ada = User(username="ada")
    assert await resolve(h, ws_for(user=ada)) == {"me": ada}
    with pytest.raises(ParameterError, match="parameter 'me': needs a logged-in user"):
        await resolve(h, ws_for(user=AnonymousUser()))
    assert await resolve(maybe, ws_for(user=AnonymousUser())) == {"me": None}
    anonymous = AnonymousUser()
    assert await resolve(anyone, ws_for(user=anonymous)) == {"me": anonymous}


# -- pydantic (optional) ----------------------------------------------------------------------

needs_pydantic = pytest.mark.skipif(not pydantic_available(), reason="pydantic is not installed")


@needs_pydantic
async def test_pydantic_constraints_in_annotated() -> None:
    from pydantic import Field

    @websocket("/p1")
    async def h(websocket: WebSocket, limit: Annotated[int, Field(gt=0, le=100)] = Query(10)) -> None: ...

    assert await resolve(h, ws_for("limit=50")) == {"limit": 50}
    with pytest.raises(ParameterError, match=r"parameter 'limit': query parameter 'limit': .*greater than 0"):
        await resolve(h, ws_for("limit=0"))


@needs_pydantic
async def test_pydantic_model_from_the_query_string() -> None:
    from pydantic import BaseModel

    class Filters(BaseModel):
        room: str
        since: int = 0
        tags: list[str] = []

    @websocket("/p2")
    async def h(websocket: WebSocket, filters: Filters = Query()) -> None: ...

    got = await resolve(h, ws_for("room=lobby&since=4&tags=a&tags=b"))
    assert got == {"filters": Filters(room="lobby", since=4, tags=["a", "b"])}
    with pytest.raises(ParameterError, match=r"parameter 'filters': query parameters do not fit Filters .*room"):
        await resolve(h, ws_for("since=4"))


def test_without_pydantic_a_constrained_annotation_fails_at_decoration(monkeypatch: pytest.MonkeyPatch) -> None:
    from ravyn_channels import coerce

    monkeypatch.setattr(coerce, "pydantic_available", lambda: False)

    class Point:
        pass

    async def h(websocket: WebSocket, p: Point = Query()) -> None: ...

    with pytest.raises(TypeError, match=r"parameter 'p' is annotated .*Point.*needs pydantic.*pip install pydantic"):
        websocket("/p3")(h)


def test_unresolvable_user_annotation_is_an_error() -> None:
    ns: dict[str, Any] = {"WebSocket": WebSocket}
    exec("from __future__ import annotations\nasync def h(websocket: WebSocket, user: Member): ...\n", ns)
    with pytest.raises(TypeError, match="the annotation 'Member' of parameter 'user' cannot be resolved"):
        websocket("/u5")(ns["h"])
