"""Two managers that use the same room names, one behind ``IsStaff``, and a hand-written
Channels consumer in group ``notifications`` (issue 12). Settings from the env.

``?staff=1`` logs the connection in as a staff user (no database needed).
"""

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, websocket
from ravyn_channels.permissions import IsStaff

staff = ConnectionManager("tests.isolation.staff", presence=True)
public = ConnectionManager("tests.isolation.public", presence=True)


@websocket("/staff/{room}", permissions=[IsStaff])
async def staff_room(websocket: WebSocket, room: str) -> None:
    await staff.connect(websocket, group=room, meta={"who": websocket.user.username}, presence=True)
    async for text in websocket.iter_text():
        await staff.broadcast(f"staff {room}: {text}", group=room)


@websocket("/open/{room}")
async def open_room(websocket: WebSocket, room: str) -> None:
    watch = websocket.query_params.get("watch") == "1"
    await public.connect(websocket, group=room, meta={"who": "anonymous"}, presence=watch)
    async for text in websocket.iter_text():
        if text == "count":
            await websocket.send_json({"count": await public.count(room)})
        else:
            await public.broadcast(f"open {room}: {text}", group=room)


class Notifications(AsyncWebsocketConsumer):
    """Written for Channels alone: it handles no ravyn event, so any event sent to its group closes it (1011)."""

    groups = ["notifications"]  # noqa: RUF012  (Channels' API)

    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        await self.send(text_data=f"pong {text_data}")


class FakeLogin:
    """Puts a staff ``User`` in the scope for ``?staff=1``."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if b"staff=1" in scope.get("query_string", b""):
            from django.contrib.auth.models import User

            scope = {**scope, "user": User(pk=1, username="boss", is_staff=True, is_active=True)}
        await self.app(scope, receive, send)


def make_app(routes: list[Any], plain: dict[str, Any]) -> Any:
    """``/plain/<name>`` goes to the hand-written consumers, the rest to the ``@websocket`` routes."""
    ravyn = Ravyn(routes=routes)  # configures Django first when no settings module is set
    plain_apps = {path: consumer.as_asgi() for path, consumer in plain.items()}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and scope["path"] in plain_apps:
            await plain_apps[scope["path"]](scope, receive, send)
        else:
            await ravyn(scope, receive, send)

    return FakeLogin(app)


app = make_app([staff_room, open_room], {"/plain/notifications": Notifications})
