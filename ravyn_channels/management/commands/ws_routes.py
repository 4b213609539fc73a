"""``manage.py ws_routes``: every ``@websocket`` route, with what guards it."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ravyn_channels.conf import get_settings
from ravyn_channels.permissions import permission_name
from ravyn_channels.routing import WebSocketRoute, registered_routes


def origins_of(route: WebSocketRoute[Any]) -> tuple[list[str], str]:
    """The ``Origin`` patterns a route allows, and where they come from."""
    from ravyn_channels.consumer import allowed_origins

    if route.origins is not None:
        source = "route"
    elif get_settings().ORIGINS is not None:
        source = "RAVYN_CHANNELS['ORIGINS']"
    else:
        source = "ALLOWED_HOSTS" + (" (DEBUG, empty)" if settings.DEBUG and not settings.ALLOWED_HOSTS else "")
    return allowed_origins(route.origins), source


def describe(route: WebSocketRoute[Any]) -> dict[str, Any]:
    """One route as plain data (what ``--json`` prints)."""
    origins, source = origins_of(route)
    return {
        "path": route.path,
        "name": route.name,
        "handler": getattr(route.function, "__qualname__", None) or route.name,
        "module": getattr(route.function, "__module__", None) or "?",
        "permissions": [permission_name(p) for p in route.permissions],
        "origins": origins,
        "origins_from": source,
        "parameters": route.plan.describe(),
    }


class Command(BaseCommand):
    help = (
        "List every @websocket route: path, handler, module, permissions and allowed origins "
        "(--json for the parameters too, as JSON)."
    )
    # A listing must work while checks fail: it is how duplicates (ravyn_channels.E001) are found.
    requires_system_checks: list[str] = []  # noqa: RUF012  (Django's BaseCommand API)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the routes as a JSON list.")

    def handle(self, *args: Any, **options: Any) -> None:
        routes = [describe(route) for route in registered_routes()]
        if options["json"]:
            self.stdout.write(json.dumps(routes, indent=2))
            return
        if not routes:
            self.stdout.write("No @websocket routes. Put handlers in an installed app's sockets.py.")
            return
        header = ("PATH", "HANDLER", "MODULE", "PERMISSIONS", "ORIGINS")
        rows = [
            (
                r["path"],
                r["handler"],
                r["module"],
                ", ".join(r["permissions"]) or "-",
                f"{', '.join(r['origins']) or 'none'} ({r['origins_from']})",
            )
            for r in routes
        ]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
        for row in (header, *rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())
