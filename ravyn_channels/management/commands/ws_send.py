"""``manage.py ws_send ROOM MESSAGE``: broadcast to a room from the shell, through the channel layer."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ravyn_channels.conf import get_settings
from ravyn_channels.manager import ConnectionManager


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
        "Send MESSAGE to every client in ROOM (a ConnectionManager room, on every server process), "
        "through the configured channel layer. With --manager NAME and no ROOM, send to everyone "
        "connected through that manager (its name defaults to the module that creates it, e.g. "
        "'chat.sockets')."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = _IntermixedParser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room", metavar="ROOM", help="The room, as passed to manager.connect(ws, group=ROOM).")
        parser.add_argument("message", metavar="MESSAGE", nargs="?", help="The text to send.")
        parser.add_argument(
            "--manager", metavar="NAME", help="Without ROOM: everyone connected through the manager NAME."
        )
        parser.add_argument("--json", action="store_true", help="MESSAGE is JSON; it is checked and sent compact.")
        parser.add_argument("--layer", metavar="ALIAS", help="The CHANNEL_LAYERS alias (default: CHANNEL_LAYER).")

    def handle(self, *args: Any, **options: Any) -> None:
        room: str | None = options["room"]
        message: str
        if options["message"] is not None:
            message = options["message"]
        elif options["manager"]:
            room, message = None, options["room"]
        else:
            raise CommandError("Give ROOM and MESSAGE (or --manager NAME and MESSAGE).")
        alias = options["layer"] or get_settings().CHANNEL_LAYER
        config = (getattr(settings, "CHANNEL_LAYERS", None) or {}).get(alias)
        if config is None:
            raise CommandError(f"CHANNEL_LAYERS has no {alias!r} layer; configure one (see 'manage.py check').")
        if str(config.get("BACKEND", "")).endswith("InMemoryChannelLayer"):
            raise CommandError(
                f"CHANNEL_LAYERS[{alias!r}] is the in-memory layer, which lives inside one process: "
                "this command runs in its own process, so no client could receive the message. "
                "Use channels-redis (ravyn_channels.layers.redis_channel_layer)."
            )
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
        target = f"room {room!r}" if room is not None else f"manager {options['manager']!r}"
        self.stdout.write(f"Sent to {target} through CHANNEL_LAYERS[{alias!r}].")
