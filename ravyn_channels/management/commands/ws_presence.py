"""``manage.py ws_presence [ROOM]``: who is connected, across every process."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ravyn_channels.conf import get_settings
from ravyn_channels.manager import ChannelsGroup, ConnectionManager, known_managers
from ravyn_channels.presence import Member, timings
from ravyn_channels.presence.store import Info, PresenceBackend, open_backend
from ravyn_channels.safetext import escape, escape_json


class Command(BaseCommand):
    help = (
        "Show presence (ConnectionManager(presence=True)): the connections in ROOM of the manager NAME "
        "(--manager NAME ROOM; rooms belong to their manager), those of a whole manager (--manager NAME), "
        "those of a Channels group shared with plain consumers (--group NAME), or, with none of these, "
        "every group that has connections and their count."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room", nargs="?", help="a room name, as given to connect(websocket, group=ROOM)")
        parser.add_argument("--manager", help="the manager ROOM belongs to (its name); alone: the whole manager")
        parser.add_argument("--group", help="a Channels group joined as ChannelsGroup(NAME)")
        parser.add_argument("--layer", help="CHANNEL_LAYERS alias (default: RAVYN_CHANNELS['CHANNEL_LAYER'])")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["layer"] or get_settings().CHANNEL_LAYER
        layer = get_channel_layer(alias)
        if layer is None:
            raise CommandError(f"CHANNEL_LAYERS has no {alias!r} layer.")
        if isinstance(layer, InMemoryChannelLayer):
            self.stderr.write(
                "The in-memory channel layer lives inside each server process: this command cannot see "
                "its connections. Use channels-redis (ravyn_channels.layers.redis_channel_layer) to share them."
            )
        room, manager, shared = options["room"], options["manager"], options["group"]
        if shared is not None and (room is not None or manager is not None):
            raise CommandError("--group NAME stands alone (no ROOM, no --manager).")
        if room is not None and manager is None:
            names = known_managers()
            raise CommandError(
                "Rooms belong to a manager: give --manager NAME ROOM"
                + (f" (managers in this project: {', '.join(map(repr, names))})." if names else ".")
            )
        if shared is not None:
            try:
                ChannelsGroup(shared)
            except ValueError as exc:
                raise CommandError(f"--group: {exc}") from None
        try:
            store = open_backend(layer, timings(get_settings().PRESENCE_TTL)[0])
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        if room is None and manager is None and shared is None:
            groups = async_to_sync(_read)(store, lambda s: s.groups())
            self._print_groups(groups, options["json"])
            return
        if shared is not None:
            group, label = shared, f"Channels group {shared!r}"
        else:
            group = ConnectionManager(manager).group_name(room)
            label = f"room {room!r} of manager {manager!r}" if room is not None else f"manager {manager!r}"
        _, found = async_to_sync(_read)(store, lambda s: s.state(group))
        self._print_members(label, found, options["json"])

    def _print_groups(self, groups: dict[str, int], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(groups, indent=2, sort_keys=True))
            return
        if not groups:
            self.stdout.write("No connections.")
            return
        width = max(len(g) for g in groups)
        for name, count in sorted(groups.items()):
            note = "  (a whole manager)" if name.startswith("ravyn.all.") else ""
            self.stdout.write(escape(f"{name:<{width}}  {count}{note}", limit=None))

    def _print_members(self, label: str, found: dict[str, Info], as_json: bool) -> None:
        members = sorted((Member.from_info(c, i) for c, i in found.items()), key=lambda m: m.joined_at)
        if as_json:
            rows = [
                {"connection_id": m.connection_id, "user_id": m.user_id, "username": m.username,
                 "joined_at": m.joined_at, "meta": m.meta}
                for m in members
            ]
            self.stdout.write(escape_json(json.dumps(rows, indent=2, ensure_ascii=False)))
            return
        self.stdout.write(escape(f"{len(members)} connection{'s' if len(members) != 1 else ''} in {label}", None))
        for m in members:
            joined = datetime.fromtimestamp(m.joined_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            user = f"{m.username} (id {m.user_id})" if m.user_id is not None else "anonymous"
            meta = json.dumps(m.meta, ensure_ascii=False) if m.meta else ""
            self.stdout.write(escape(f"  {m.connection_id}  {user}  joined {joined}  {meta}".rstrip(), limit=None))


async def _read(store: PresenceBackend, read: Any) -> Any:
    try:
        return await read(store)
    finally:
        await store.aclose()
