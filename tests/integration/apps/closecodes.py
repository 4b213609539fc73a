"""A standalone app with one route per row of DESIGN.md's close-code table."""

import asyncio
import os
import time

from ravyn_channels import Ravyn, WebSocket, WebSocketDisconnect, websocket


@websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    finally:
        print(f"echo ended with {websocket.close_code}", flush=True)


@websocket("/raise")
async def raise_handler(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    raise RuntimeError("handler bug on purpose")


@websocket("/noaccept")
async def no_accept_handler(websocket: WebSocket) -> None:
    return None


@websocket("/receive-first")
async def receive_first_handler(websocket: WebSocket) -> None:
    await websocket.receive_text()


@websocket("/json")
async def json_handler(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_json(await websocket.receive_json())


@websocket("/text")
async def text_handler(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text(await websocket.receive_text())


@websocket("/bytes")
async def bytes_handler(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_bytes(await websocket.receive_bytes())


@websocket("/small", max_message_size=1000)
async def small_handler(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text(await websocket.receive_text())


@websocket("/close/{code:int}")
async def close_handler(websocket: WebSocket, code: int) -> None:
    await websocket.accept()
    await websocket.close(code=code, reason="closing on purpose")


@websocket("/wait")
async def wait_handler(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("ready")
    try:
        await websocket.receive_text()
    except WebSocketDisconnect as exc:
        print(f"wait_handler saw disconnect {exc.code}", flush=True)


@websocket("/term/{tag}")
async def term_handler(websocket: WebSocket, tag: str) -> None:
    """Returns on WebSocketDisconnect, as handlers should; prints when its cleanup ran."""
    await websocket.accept()
    await websocket.send_text("ready")
    try:
        await websocket.receive_text()
    except WebSocketDisconnect as exc:
        print(f"cleanup {tag} saw {exc.code} at {time.time():.6f}", flush=True)


@websocket("/deaf/{tag}")
async def deaf_handler(websocket: WebSocket, tag: str) -> None:
    """Never reads, so never sees the disconnect: it is cancelled after DISCONNECT_GRACE."""
    await websocket.accept()
    await websocket.send_text("ready")
    try:
        await asyncio.sleep(3600)
    finally:
        print(f"cleanup {tag} cancelled at {time.time():.6f}", flush=True)


settings = {"RAVYN_CHANNELS": {"AUTODISCOVER": [], "PATCH_DAPHNE": os.environ.get("PATCH_DAPHNE", "1") == "1"}}
app = Ravyn(
    routes=[
        echo,
        raise_handler,
        no_accept_handler,
        receive_first_handler,
        json_handler,
        text_handler,
        bytes_handler,
        small_handler,
        close_handler,
        wait_handler,
        term_handler,
        deaf_handler,
    ],
    settings=settings,
)
