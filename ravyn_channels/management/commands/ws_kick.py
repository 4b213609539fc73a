"""``manage.py ws_kick``: close websockets on every process, from the shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ravyn_channels import ops
from ravyn_channels.layers import cross_process_alias
from ravyn_channels.manager import ConnectionManager


class Command(BaseCommand):
    help = (
        "Close websockets on every process sharing the channel layer: every socket of a user (--user PK, "
        "with --manager NAME only those connected through that manager), one connection (--connection ID, "
        "a WebSocket.connection_id), or a room of a manager (--manager NAME ROOM; --manager NAME alone: "
        "everyone connected through it). The client sees --code (default 1008) and --reason."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room", metavar="ROOM", nargs="?", help="A room of --manager, as passed to connect().")
        parser.add_argument("--user", metavar="PK", help="Close every socket of the user with this primary key.")
        parser.add_argument("--connection", metavar="ID", help="Close the connection with this connection_id.")
        parser.add_argument("--manager", metavar="NAME", help="The manager (its name, e.g. 'chat.sockets').")
        parser.add_argument("--code", type=int, default=ops.DEFAULT_CODE, help="Close code (default 1008).")
        parser.add_argument("--reason", default="", help="Close reason the client sees (at most 123 bytes).")
        parser.add_argument("--layer", metavar="ALIAS", help="The CHANNEL_LAYERS alias (default: CHANNEL_LAYER).")

    def handle(self, *args: Any, **options: Any) -> None:
        user, connection, manager, room = options["user"], options["connection"], options["manager"], options["room"]
        if sum(x is not None for x in (user, connection, manager)) == 0:
            raise CommandError("Say whom to close: --user PK, --connection ID, or --manager NAME [ROOM].")
        if connection is not None and (user is not None or manager is not None or room is not None):
            raise CommandError("--connection ID takes no other target (no --user, --manager or ROOM).")
        if room is not None and (manager is None or user is not None):
            raise CommandError("ROOM belongs to a manager: give --manager NAME ROOM (and no --user).")
        alias = cross_process_alias(options["layer"], "it cannot reach any socket")
        code, reason = options["code"], options["reason"]
        try:
            ops.check_close(code, reason)
            if connection is not None:
                event = ops.connection_event(connection, code, reason)
                target = f"connection {connection}"
            elif user is not None:
                group = ConnectionManager(manager, layer=alias).group_name() if manager is not None else None
                event = ops.user_event(user, code, reason, manager=group)
                target = f"user {user}" + (f" (through manager {manager!r})" if manager else "")
            else:
                event = ops.room_event(ConnectionManager(manager, layer=alias).group_name(room), code, reason)
                target = f"room {room!r} of manager {manager!r}" if room is not None else f"manager {manager!r}"
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        ops.send_event_sync(event, alias)
        self.stdout.write(f"Asked every process to close the sockets of {target} with {code}.")
