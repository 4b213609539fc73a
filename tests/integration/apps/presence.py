"""Presence across processes, driven by commands (settings from the env).

A client logs in with the session cookie of a user who logged in through Django
(``AuthMiddlewareStack``), ``?nick=`` becomes meta,
``?watch=1`` subscribes to the room's presence frames.
"""

from channels.auth import AuthMiddlewareStack

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, websocket
from ravyn_channels.presence import member_id

manager = ConnectionManager("tests.presence", presence=True)


@websocket("/presence/{room}")
async def presence_socket(websocket: WebSocket, room: str) -> None:
    params = websocket.query_params
    await manager.connect(
        websocket, group=room, meta={"nick": params.get("nick", "")}, presence=params.get("watch") == "1"
    )
    async for data in websocket.iter_text():
        command, _, rest = data.partition(":")
        if command == "id":
            await websocket.send_text(websocket.connection_id or "")
        elif command == "pid":
            await websocket.send_text(member_id(websocket.connection_id or ""))
        elif command == "count":
            await websocket.send_json({"count": await manager.count(rest or room)})
        elif command == "members":
            members = await manager.members(rest or room)
            await websocket.send_json({"members": [[m.connection_id, m.user_id, m.meta] for m in members]})
        elif command == "users":
            users = await manager.users(room)
            await websocket.send_json({"users": [[u.user_id, u.username, len(u.connection_ids)] for u in users]})
        elif command == "touser":
            user_id, _, text = rest.partition(" ")
            await manager.send_to_user(user_id, text)
        elif command == "say":
            await manager.broadcast(f"{room}: {rest}", group=room)
        elif command == "crash":
            raise RuntimeError("crash on purpose")


# Django's session auth: a client sends the session cookie of a user who logged in.
app = AuthMiddlewareStack(Ravyn(routes=[presence_socket]))
