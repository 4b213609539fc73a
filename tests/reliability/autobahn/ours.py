"""The echo route under test: ``daphne tests.reliability.autobahn.ours:app``.

Text comes back as text and bytes as bytes, read with ``receive()`` so no frame
type is refused. ``AUTOBAHN_MAX_MESSAGE_SIZE`` (bytes) sets ``MAX_MESSAGE_SIZE``.
"""

import os

from ravyn_channels import Ravyn, WebSocket, websocket


@websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


_limit = int(os.environ.get("AUTOBAHN_MAX_MESSAGE_SIZE", "1048576"))
app = Ravyn(routes=[echo], settings={"RAVYN_CHANNELS": {"AUTODISCOVER": [], "MAX_MESSAGE_SIZE": _limit}})
