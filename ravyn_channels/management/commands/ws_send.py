"""``manage.py ws_send --manager NAME [ROOM] MESSAGE`` / ``--group NAME MESSAGE``: broadcast from the shell."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ravyn_channels.layers import cross_process_alias
from ravyn_channels.manager import ChannelsGroup, ConnectionManager, known_managers


def _refuse_constant(name: str) -> Any:
    raise ValueError(
        f"{name} is not JSON (Python's json module accepts it, browsers' JSON.parse does not); "
        "send null or a string instead"
    )


class _IntermixedParser(CommandParser):
    """Options may sit between ROOM and MESSAGE (``ws_send lobby --json '{...}'``)."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        return self.parse_intermixed_args(args, namespace)


class Command(BaseCommand):
    help = (
        "Send MESSAGE, through the configured channel layer, to every client in ROOM of the manager NAME "
        "(--manager NAME ROOM MESSAGE; rooms belong to their manager, whose name defaults to the module "
        "that creates it, e.g. 'chat.sockets'), to everyone connected through that manager (--manager NAME "
        "MESSAGE), or to the Channels group shared with plain consumers (--group NAME MESSAGE, for "
        "manager.connect(ws, group=ChannelsGroup(NAME)))."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = _IntermixedParser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room", metavar="ROOM", help="The room, as passed to manager.connect(ws, group=ROOM).")
        parser.add_argument("message", metavar="MESSAGE", nargs="?", help="The text to send.")
        parser.add_argument(
            "--manager", metavar="NAME", help="The manager ROOM belongs to (alone: everyone connected through it)."
        )
        parser.add_argument(
            "--group", metavar="NAME", help="A Channels group shared with plain consumers (ChannelsGroup(NAME))."
        )
        parser.add_argument("--json", action="store_true", help="MESSAGE is JSON; it is checked and sent compact.")
        parser.add_argument("--layer", metavar="ALIAS", help="The CHANNEL_LAYERS alias (default: CHANNEL_LAYER).")

    def handle(self, *args: Any, **options: Any) -> None:
        room: str | ChannelsGroup | None = options["room"]
        message: str
        if options["group"] is not None:
            if options["message"] is not None or options["manager"]:
                raise CommandError("--group NAME takes only MESSAGE (no ROOM, no --manager).")
            try:
                room, message = ChannelsGroup(options["group"]), options["room"]
            except ValueError as exc:
                raise CommandError(f"--group: {exc}") from None
        elif not options["manager"]:
            raise CommandError(
                "Rooms belong to a manager: give --manager NAME ROOM MESSAGE (or --manager NAME MESSAGE for everyone "
                f"connected through it; {_names_hint()}), or --group NAME MESSAGE for a Channels group shared "
                "with plain consumers."
            )
        elif options["message"] is not None:
            message = options["message"]
        else:
            room, message = None, options["room"]
        alias = cross_process_alias(options["layer"], "no client could receive the message")
        payload: Any = message
        if options["json"]:
            try:
                payload = json.loads(message, parse_constant=_refuse_constant)
            except ValueError as exc:
                raise CommandError(f"--json: MESSAGE is not valid JSON ({exc}).") from None
            if isinstance(payload, str):
                payload = json.dumps(payload)  # a JSON string stays JSON on the wire
        manager = ConnectionManager(options["manager"] or "ravyn_channels.ws_send", layer=alias)
        manager.broadcast_sync(payload, group=room)
        if isinstance(room, ChannelsGroup):
            target = f"Channels group {room.name!r}"
        elif room is not None:
            target = f"room {room!r} of manager {options['manager']!r}"
        else:
            target = f"manager {options['manager']!r}"
        self.stdout.write(f"Sent to {target} through CHANNEL_LAYERS[{alias!r}].")


def _names_hint() -> str:
    names = known_managers()
    return f"managers in this project: {', '.join(map(repr, names))}" if names else "e.g. 'chat.sockets'"
