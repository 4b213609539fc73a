"""A standalone app for Starlette/FastAPI/Ravyn parity on real servers (issue 13)."""

import functools

from ravyn_channels import Ravyn, WebSocket, websocket


async def facts(
    websocket: WebSocket, room: str, q: str, headers: dict, query: dict, cookies: dict, prefix: str
) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "room": room,
            "q": q,
            "agent": headers["x-agent"],
            "query": query,
            "cookies": cookies,
            "prefix": prefix,
            "params": dict(websocket.query_params),
            "all_b": websocket.query_params.getlist("b"),
            "route": websocket.scope["route"].path,
            "raw_path": websocket.scope["raw_path"].decode(),
        }
    )
    await websocket.close()


route = websocket("/facts/{room}", name="facts")(functools.partial(facts, prefix="fixed"))

app = Ravyn(routes=[route], settings={"RAVYN_CHANNELS": {"AUTODISCOVER": []}})
