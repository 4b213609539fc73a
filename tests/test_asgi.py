"""get_asgi_application, Ravyn, websocket_urlpatterns and hand-written routers."""

from typing import Any

import pytest
from channels.routing import URLRouter
from django.urls import path

from ravyn_channels import Ravyn, WebSocket, websocket
from ravyn_channels.asgi import get_asgi_application
from ravyn_channels.routing import registered_routes, websocket_urlpatterns
from ravyn_channels.testing import HandshakeRefused, connect
from tests.app.sockets import discovered

pytestmark = pytest.mark.django_db


def test_sockets_module_is_autodiscovered() -> None:
    assert discovered in registered_routes()
    assert discovered.pattern in websocket_urlpatterns()


async def test_project_application_serves_discovered_route() -> None:
    async with connect(get_asgi_application(), "/discovered/ann") as ws:
        assert await ws.receive_text() == "hello ann"


async def test_project_application_refuses_unknown_path() -> None:
    with pytest.raises(HandshakeRefused):
        async with connect(get_asgi_application(), "/no/such/route"):
            pass


async def test_consumer_in_hand_written_urlrouter() -> None:
    router = URLRouter([path("custom/<str:name>/", discovered.consumer.as_asgi())])
    async with connect(router, "/custom/bob/") as ws:
        assert await ws.receive_text() == "hello bob"


async def test_ravyn_app_with_configured_settings_serves_only_its_routes() -> None:
    @websocket("/only")
    async def only(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("only")

    app = Ravyn(routes=[only])
    assert repr(app) == "<Ravyn routes=['/only']>"
    async with connect(app, "/only") as ws:
        assert await ws.receive_text() == "only"
    with pytest.raises(HandshakeRefused):
        async with connect(app, "/discovered/x"):
            pass


def test_ravyn_settings_override_needs_unconfigured_django() -> None:
    with pytest.raises(RuntimeError, match="only applies when no Django settings are configured"):
        Ravyn(routes=[], settings={"DEBUG": True})


def test_ravyn_rejects_undecorated_handlers() -> None:
    async def plain(websocket: WebSocket) -> None: ...

    with pytest.raises(TypeError, match="takes @websocket-decorated handlers"):
        Ravyn(routes=[plain])  # type: ignore[list-item]


async def test_ravyn_answers_lifespan() -> None:
    app = Ravyn(routes=[])
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_each_connection_runs_its_own_handler_task() -> None:
    import asyncio

    tasks: list[Any] = []

    @websocket("/task")
    async def task_handler(websocket: WebSocket) -> None:
        tasks.append(asyncio.current_task())
        await websocket.accept()
        await websocket.receive_text()

    async with connect(task_handler, "/task"), connect(task_handler, "/task"):  # both accepted
        assert len(tasks) == 2 and tasks[0] is not tasks[1]
    assert all(t.done() for t in tasks)



async def http_status(app: Any, path: str) -> int:
    from asgiref.testing import ApplicationCommunicator

    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [], "scheme": "http", "server": ("testserver", 80)}
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(5)
    while (await comm.receive_output(5)).get("more_body"):
        pass
    await comm.wait(5)
    return int(start["status"])


@pytest.mark.parametrize("path", ["/static/../settings.py", "/static/../../etc/passwd", "/static/sub/../../x.py"])
async def test_debug_static_files_answer_404_to_traversal(path: str, tmp_path: Any) -> None:
    from django.test import override_settings

    from ravyn_channels.asgi import _static_files_handler

    (tmp_path / "hello.txt").write_text("hello")
    with override_settings(DEBUG=True, STATIC_URL="/static/", STATICFILES_DIRS=[str(tmp_path)]):
        app = _static_files_handler()(get_asgi_application())
        assert await http_status(app, "/static/hello.txt") == 200
        assert await http_status(app, path) == 404
