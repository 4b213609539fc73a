"""Starlette/FastAPI/Ravyn parity seen by a real client on real servers (issue 13, points 1, 2, 3, 5, 6)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from .conftest import Server, StartServer

pytestmark = pytest.mark.integration

APP = "tests.integration.apps.parity:app"


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(request: pytest.FixtureRequest, start_module_server: StartServer) -> Server:
    """One server per kind for the module's tests (each reads the log from its mark)."""
    return start_module_server(APP, server=request.param)


async def test_parameters_scope_route_and_query_params(server: Server, ws_connect: Any) -> None:
    url = f"{server.ws}/facts/lobby?q=hi&b=1&b=2&prefix=forged"
    headers = {"X-Agent": "parity-test", "Cookie": "a=1; b=two"}
    async with ws_connect(url, additional_headers=headers) as ws:
        facts = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert facts == {
        "room": "lobby",
        "q": "hi",  # 1: a plain parameter is a query parameter
        "agent": "parity-test",  # 2: reserved headers, query, cookies
        "query": {"q": "hi", "b": "2", "prefix": "forged"},
        "cookies": {"a": "1", "b": "two"},
        "prefix": "fixed",  # 3: a functools.partial endpoint; its bound keyword is not read from the client
        "params": {"q": "hi", "b": "2", "prefix": "forged"},  # 6: last value per key
        "all_b": ["1", "2"],
        "route": "/facts/{room}",  # 5: the matched route
        "raw_path": "/facts/lobby",
    }


async def test_missing_plain_parameter_is_refused_with_403(server: Server, ws_connect: Any) -> None:
    mark = server.mark()
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(f"{server.ws}/facts/lobby"):
            pass
    assert info.value.response.status_code == 403  # in process the refusal is close code 1008
    log = server.wait_for_log("missing query parameter 'q'", since=mark)
    assert "Traceback" not in log
