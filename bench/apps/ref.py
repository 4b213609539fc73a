"""(ref) Hand-written Channels consumers: the code users write without ravyn_channels.

Written as the Channels tutorial writes them (untyped, no helpers).

Routed as the Channels tutorial does (``AllowedHostsOriginValidator`` around a
``URLRouter``), so the origin check matches what ravyn_channels does by default.
"""

from django.core.asgi import get_asgi_application

http = get_asgi_application()  # sets Django up before the Channels imports below

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class RoomConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(self.room, {"type": "room.message", "text": text_data})

    async def room_message(self, event):
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AllowedHostsOriginValidator(
            URLRouter(
                [
                    path("echo", EchoConsumer.as_asgi()),
                    path("fanout/<str:room>", RoomConsumer.as_asgi()),
                ]
            )
        ),
    }
)
