"""Handlers found by autodiscovery in the test project."""

from ravyn_channels import WebSocket, WebSocketDisconnect, websocket


@websocket("/discovered/{name}")
async def discovered(websocket: WebSocket, name: str) -> None:
    await websocket.accept()
    await websocket.send_text(f"hello {name}")
    try:
        await websocket.receive_text()
    except WebSocketDisconnect:
        pass
