"""The explicit way to share a group with hand-written consumers: ``ChannelsGroup`` (issue 12)."""

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from ravyn_channels import ChannelsGroup, WebSocket, websocket
from ravyn_channels.manager import BroadcastMixin, broadcast_event

from .isolation import Notifications, make_app, open_room, public, staff_room

NOTIFICATIONS = ChannelsGroup("notifications")


@websocket("/shared")
async def shared(websocket: WebSocket) -> None:
    await public.connect(websocket, group=NOTIFICATIONS, presence=True)
    async for text in websocket.iter_text():
        await public.broadcast(f"shared: {text}", group=NOTIFICATIONS)


class Subscriber(BroadcastMixin, AsyncWebsocketConsumer):
    """A plain consumer that opted in to broadcasts; ``BroadcastMixin`` handles ``ravyn.broadcast`` only."""

    groups = ["notifications"]  # noqa: RUF012

    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        await self.channel_layer.group_send("notifications", broadcast_event(f"plain: {text_data}", NOTIFICATIONS))


app = make_app(
    [staff_room, open_room, shared], {"/plain/notifications": Notifications, "/plain/subscriber": Subscriber}
)
