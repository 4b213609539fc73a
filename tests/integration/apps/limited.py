"""Sockets for tests/integration/test_limits.py: rate-limited echo routes."""

from __future__ import annotations

from ravyn_channels import Ravyn, WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.limits import RateLimit


@websocket("/echo", rate_limit=RateLimit(messages="100/s burst 200", on_message_limit="drop"))
async def echo(websocket: WebSocket) -> None:
    """Echoes what passes the limit; the rest is dropped."""
    await websocket.accept()
    try:
        async for text in websocket.iter_text():
            await websocket.send_text(text)
    except WebSocketDisconnect:
        pass


@websocket("/strict", rate_limit=RateLimit(messages="100/s burst 200", close_code=1013))
async def strict(websocket: WebSocket) -> None:
    """Closes a client over the limit with 1013."""
    await websocket.accept()
    try:
        async for text in websocket.iter_text():
            await websocket.send_text(text)
    except WebSocketDisconnect:
        pass


app = Ravyn(routes=[echo, strict])
