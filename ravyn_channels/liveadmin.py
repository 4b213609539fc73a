"""A staff-only admin page: the cluster's live rooms, their members, and a disconnect action.

Mount it before the admin's own URLs::

    urlpatterns = [
        path("admin/live-rooms/", include("ravyn_channels.liveadmin")),
        path("admin/", admin.site.urls),
    ]

The page asks every process for its rooms (one ``ravyn.report`` event on
``ops.OPS_GROUP``, answers collected for ``REPORT_WINDOW`` seconds on a reply
channel) and closes sockets with ``ravyn_channels.ops``, like ``ws_kick``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from . import ops
from .conf import get_settings

__all__ = ["REPORT_WINDOW", "collect", "urlpatterns"]

#: Seconds the page waits for the processes' answers.
REPORT_WINDOW = 0.5
#: What a client disconnected from this page sees.
ADMIN_REASON = "disconnected by an administrator"


async def collect(window: float = REPORT_WINDOW) -> list[dict[str, Any]]:
    """Every process's live rooms, merged: ``[{"manager", "room", "group", "members": [...]}]``, sorted."""
    layer = get_channel_layer(get_settings().CHANNEL_LAYER)
    if layer is None:
        raise RuntimeError("The live rooms page needs a channel layer (CHANNEL_LAYERS).")
    reply = await layer.new_channel()
    await layer.group_send(ops.OPS_GROUP, {"type": ops.REPORT, "reply": reply})
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    end = time.monotonic() + window
    while (left := end - time.monotonic()) > 0:
        try:
            answer = await asyncio.wait_for(layer.receive(reply), left)
        except TimeoutError:
            break
        for room in answer.get("rooms", []):
            key = (room["manager"], room["group"])
            if key in merged:
                merged[key]["members"].extend(room["members"])
            else:
                merged[key] = dict(room, members=list(room["members"]))
    rooms = sorted(merged.values(), key=lambda r: (r["manager"], r["room"]))
    for room in rooms:
        room["members"].sort(key=lambda m: (m["user"] or "", m["id"] or ""))
    return rooms


def live_rooms(request: HttpRequest) -> HttpResponse:
    """GET: the live rooms; POST ``connection=ID`` or ``group=NAME``: disconnect it, then show the page again."""
    if request.method == "POST":
        connection, group = request.POST.get("connection"), request.POST.get("group")
        code = ops.DEFAULT_CODE
        if connection:
            ops.send_event_sync(ops.connection_event(connection, code, ADMIN_REASON))
            messages.success(request, f"Disconnected {connection}.")
        elif group:
            ops.send_event_sync(ops.room_event(group, code, ADMIN_REASON))
            messages.success(request, f"Disconnected everyone in {request.POST.get('room') or group}.")
        return HttpResponseRedirect(request.path)
    rooms = async_to_sync(collect)()
    context = {
        **admin.site.each_context(request),
        "title": "Live rooms",
        "rooms": rooms,
        "connections": sum(len(r["members"]) for r in rooms),
    }
    return TemplateResponse(request, "ravyn_channels/admin/live_rooms.html", context)


app_name = "ravyn_channels_live"
urlpatterns = [path("", admin.site.admin_view(live_rooms), name="live_rooms")]
