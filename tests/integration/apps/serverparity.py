"""Handshake headers, denial responses, close reasons and dead transports, on daphne and uvicorn."""

import asyncio
import os

from django.http import HttpResponse

from ravyn_channels import DenialResponse, Inject, Ravyn, WebSocket, WebSocketDenial, WebSocketDisconnect, websocket
from ravyn_channels.permissions import BasePermission


@websocket("/headers/dict")
async def headers_dict(websocket: WebSocket) -> None:
    await websocket.accept(headers={"x-test": "dict", "X-Other": "2"})
    await websocket.send_text("ok")


@websocket("/headers/pairs")
async def headers_pairs(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="chat", headers=[(b"x-pair", b"one"), ("x-pair", "two")])
    await websocket.send_text("ok")


@websocket("/deny/{code:int}")
async def deny(websocket: WebSocket, code: int) -> None:
    try:
        await websocket.send_denial_response(
            DenialResponse({"detail": "nope"}, status_code=code, headers={"x-why": "test"})
        )
    except RuntimeError as exc:  # no denial-response extension: refuse the plain way
        print(f"deny handler: {exc}", flush=True)
        await websocket.close()


@websocket("/deny-django")
async def deny_django(websocket: WebSocket) -> None:
    response = HttpResponse("no such room", status=404, content_type="text/plain; charset=utf-8")
    response["X-Room"] = "lobby"
    await websocket.send_denial_response(response)


@websocket("/deny-starlette")
async def deny_starlette(websocket: WebSocket) -> None:
    from starlette.responses import JSONResponse

    await websocket.send_denial_response(JSONResponse({"detail": "slow down"}, status_code=429))


def bearer(websocket: WebSocket) -> str:
    token = websocket.query_params.get("token")
    if token != "good":
        raise WebSocketDenial(401, "bad token", headers={"WWW-Authenticate": "Bearer"})
    return token


@websocket("/dep")
async def dep_handler(websocket: WebSocket, token: str = Inject(bearer)) -> None:
    await websocket.accept()
    await websocket.send_text(token)


class Limited(BasePermission):
    status_code = 429
    message = "too many connections"

    async def has_permission(self, websocket: WebSocket) -> bool:
        return False


@websocket("/limited", permissions=[Limited])
async def limited(websocket: WebSocket) -> None:
    await websocket.accept()


@websocket("/flood")
async def flood(websocket: WebSocket) -> None:
    await websocket.accept()
    chunk = "x" * 16384
    sent = 0
    try:
        while True:
            await websocket.send_text(chunk)
            sent += 1
            await asyncio.sleep(0)  # on daphne a send never waits: let the server's loop run
    except WebSocketDisconnect as exc:
        print(f"flood saw disconnect {exc.code} after {sent} sends", flush=True)


@websocket("/reason")
async def reason(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("ready")
    try:
        await websocket.receive_text()
    except WebSocketDisconnect as exc:
        print(f"reason handler saw disconnect {exc.code} {exc.reason!r}", flush=True)
    await asyncio.sleep(0)


settings = {"RAVYN_CHANNELS": {"AUTODISCOVER": [], "PATCH_DAPHNE": os.environ.get("PATCH_DAPHNE", "1") == "1"}}
app = Ravyn(
    routes=[
        headers_dict,
        headers_pairs,
        deny,
        deny_django,
        deny_starlette,
        dep_handler,
        limited,
        flood,
        reason,
    ],
    settings=settings,
)
