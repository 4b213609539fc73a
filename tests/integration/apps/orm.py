"""A handler that uses the ORM, for tests/integration/test_orm.py (settings: orm_settings).

``/orm/db`` runs each query through Channels' ``database_sync_to_async`` (which
closes obsolete and broken connections around every call); ``/orm/sync``
through plain ``sync_to_async``, so only the generated consumer's own
connection hygiene (at connect and disconnect) applies. Commands, one per
text frame: ``add:<name>`` creates a ``Group`` and answers the count;
``backend`` answers the database session's id; ``conn`` answers whether the
sync thread holds an open database connection.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connection

from ravyn_channels import Ravyn, WebSocket, websocket


def add(name: str) -> str:
    from django.contrib.auth.models import Group

    Group.objects.create(name=name)
    return str(Group.objects.count())


def backend() -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
            return str(cursor.fetchone()[0])
        cursor.execute("SELECT 1")
        return str(id(connection.connection))


def is_open() -> str:
    return "open" if connection.connection is not None else "closed"


@websocket("/orm/{style}")
async def orm(websocket: WebSocket, style: str) -> None:
    run: Any = database_sync_to_async if style == "db" else sync_to_async
    await websocket.accept()
    async for text in websocket.iter_text():
        command, _, arg = text.partition(":")
        try:
            if command == "add":
                reply = await run(add)(arg)
            elif command == "backend":
                reply = await run(backend)()
            else:
                reply = await sync_to_async(is_open)()  # the same (thread-sensitive) thread as run()
        except Exception as exc:
            reply = f"error: {type(exc).__name__}"
        await websocket.send_text(reply)


app = Ravyn(routes=[orm])
