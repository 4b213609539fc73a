"""The reference: a hand-written Channels echo consumer on plain daphne, no ravyn_channels.

``daphne tests.reliability.autobahn.plain:app``; daphne's own
``--websocket-max-message-size``/``--websocket-max-frame-size`` set its limit.
"""

from typing import Any

import django
from django.conf import settings

settings.configure(
    SECRET_KEY="autobahn-plain-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=["channels"],
    DATABASES={},
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
)
django.setup(set_prefix=False)

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        if text_data is not None:
            await self.send(text_data=text_data)
        else:
            await self.send(bytes_data=bytes_data)


app = ProtocolTypeRouter({"websocket": URLRouter([path("echo", EchoConsumer.as_asgi())])})
