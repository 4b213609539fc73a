"""(limit) A bare ASGI application: no Django, no Channels, no origin check.

What the server itself can do; fan-out is a plain loop over this process's
``send`` callables.
"""

from typing import Any

rooms: dict[str, list[Any]] = {}


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    path = scope["path"]
    if path == "/echo":
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
    elif path.startswith("/fanout/"):
        members = rooms.setdefault(path[len("/fanout/") :], [])
        await send({"type": "websocket.accept"})
        members.append(send)
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return
                out = {"type": "websocket.send", "text": message.get("text")}
                for member in list(members):
                    try:
                        await member(out)
                    except Exception:  # a peer that has just gone
                        pass
        finally:
            members.remove(send)
    else:
        await send({"type": "websocket.close"})
