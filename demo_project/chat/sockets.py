"""The demo's websocket handlers, found automatically by ravyn_channels."""

from ravyn_channels import WebSocket, WebSocketDisconnect, websocket


@websocket("/ws/{client_id}")
async def chat_socket(websocket: WebSocket, client_id: str) -> None:
    """The seed's echo handler, unchanged."""
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(f"Message from {client_id}: {data}")
    except WebSocketDisconnect:
        print(f"Client {client_id} disconnected")
