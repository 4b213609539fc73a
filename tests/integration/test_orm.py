"""The ORM from handlers, on a real daphne and a real database (SQLite; PostgreSQL when reachable).

The generated consumer closes Django's database connections when a websocket
connects and when it ends, not around every frame as Channels' ``dispatch``
does. These tests show what that means: queries stay correct across many
messages and connections, a connection opened by a handler's sync work ends at
the websocket's boundary (``CONN_MAX_AGE = 0``) or is kept and reused
(persistent), nothing is leaked, and ``database_sync_to_async`` still discards
a broken connection at the next call.

The PostgreSQL tests need psycopg and a server at 127.0.0.1:5432 (trust auth):
``make test`` starts one (``.ci/ensure-postgres.sh``); under ``CI=true`` its
absence fails them, elsewhere they skip.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES, require_postgres

from .conftest import ROOT, StartServer, server_env

pytestmark = pytest.mark.integration

APP = "tests.integration.apps.orm:app"
SETTINGS = "tests.integration.apps.orm_settings"
PG = POSTGRES


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=server_env(SETTINGS, **env),
        check=True,
        timeout=120,
    )


async def ask(ws: Any, text: str) -> str:
    await ws.send(text)
    return str(await asyncio.wait_for(ws.recv(), 10))


@pytest.fixture
def sqlite_db(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "orm.sqlite3"
    env = {"ORM_DB": f"sqlite:{path}"}
    migrate(env)
    return env


@pytest.fixture
def postgres_db() -> Iterator[dict[str, str]]:
    """A private database on the PostgreSQL at 127.0.0.1:5432, dropped afterwards."""
    require_postgres()
    import psycopg

    admin = psycopg.connect(**PG, autocommit=True, connect_timeout=2)
    name = f"ravyn_orm_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    env = {"ORM_DB": f"postgresql:{name}", "ORM_APP_NAME": name}
    try:
        yield env
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def sessions(app_name: str) -> list[int]:
    """PIDs of the PostgreSQL sessions the server opened (tagged with ``application_name``)."""
    import psycopg

    with psycopg.connect(**PG, autocommit=True) as admin:
        rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [app_name]).fetchall()
    return sorted(row[0] for row in rows)


def wait_for_sessions(app_name: str, count: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        found = sessions(app_name)
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


async def many_clients(server: Any, ws_connect: Any, style: str, clients: int = 10, messages: int = 30) -> None:
    """``clients`` websockets at once, each adding ``messages`` rows; every answer must be a count."""

    async def one(c: int) -> list[int]:
        async with ws_connect(f"{server.ws}/orm/{style}") as ws:
            return [int(await ask(ws, f"add:{style}-{c}-{m}")) for m in range(messages)]

    counts = await asyncio.gather(*(one(c) for c in range(clients)))
    for seen in counts:
        assert seen == sorted(seen) and len(set(seen)) == messages  # each client sees its rows land
    assert max(max(seen) for seen in counts) == clients * messages


# -- SQLite: correctness, and where the connection ends -----------------------------------


@pytest.mark.parametrize("style", ["db", "sync"])
async def test_queries_stay_correct_across_messages_and_connections(
    style: str, sqlite_db: dict[str, str], start_server: StartServer, ws_connect: Any
) -> None:
    server = start_server(APP, settings=SETTINGS, env=sqlite_db)
    await many_clients(server, ws_connect, style)
    db = sqlite3.connect(sqlite_db["ORM_DB"].partition(":")[2])
    try:
        names = {row[0] for row in db.execute("SELECT name FROM auth_group")}
    finally:
        db.close()
    assert names == {f"{style}-{c}-{m}" for c in range(10) for m in range(30)}
    assert "Traceback" not in server.log()


async def test_handler_connection_lives_for_the_websocket_and_ends_with_it(
    sqlite_db: dict[str, str], start_server: StartServer, ws_connect: Any
) -> None:
    server = start_server(APP, settings=SETTINGS, env={**sqlite_db, "ORM_CONN_MAX_AGE": "0"})
    async with ws_connect(f"{server.ws}/orm/sync") as ws:
        assert await ask(ws, "add:a") == "1"
        assert await ask(ws, "conn") == "open"  # not closed after every frame
        assert await ask(ws, "add:b") == "2"
    async with ws_connect(f"{server.ws}/orm/sync") as ws:
        assert await ask(ws, "conn") == "closed"  # CONN_MAX_AGE = 0: closed at the boundary
    async with ws_connect(f"{server.ws}/orm/db") as ws:
        assert await ask(ws, "add:c") == "3"
        assert await ask(ws, "conn") == "closed"  # database_sync_to_async closes after each call


async def test_persistent_connection_is_kept_across_websockets(
    sqlite_db: dict[str, str], start_server: StartServer, ws_connect: Any
) -> None:
    server = start_server(APP, settings=SETTINGS, env={**sqlite_db, "ORM_CONN_MAX_AGE": "none"})
    async with ws_connect(f"{server.ws}/orm/db") as ws:
        first = await ask(ws, "backend")
        assert await ask(ws, "add:a") == "1"
    async with ws_connect(f"{server.ws}/orm/db") as ws:
        assert await ask(ws, "conn") == "open"
        assert await ask(ws, "backend") == first


# -- PostgreSQL: the sessions the server holds, seen from the database --------------------


@pytest.mark.parametrize("style", ["db", "sync"])
async def test_no_session_outlives_its_websocket(
    style: str, postgres_db: dict[str, str], start_server: StartServer, ws_connect: Any
) -> None:
    migrate(postgres_db)
    app_name = postgres_db["ORM_APP_NAME"]
    server = start_server(APP, settings=SETTINGS, env={**postgres_db, "ORM_CONN_MAX_AGE": "0"})
    async with ws_connect(f"{server.ws}/orm/sync") as ws:
        await ask(ws, "backend")
        assert len(sessions(app_name)) == 1  # the check below can see a session when there is one
    assert await asyncio.to_thread(wait_for_sessions, app_name, 0) == []
    await many_clients(server, ws_connect, style)
    assert await asyncio.to_thread(wait_for_sessions, app_name, 0) == []  # none leaked
    assert "Traceback" not in server.log()


async def test_persistent_session_is_reused_not_multiplied(
    postgres_db: dict[str, str], start_server: StartServer, ws_connect: Any
) -> None:
    migrate(postgres_db)
    app_name = postgres_db["ORM_APP_NAME"]
    server = start_server(APP, settings=SETTINGS, env={**postgres_db, "ORM_CONN_MAX_AGE": "60"})
    async with ws_connect(f"{server.ws}/orm/db") as ws:
        pid = await ask(ws, "backend")
        for _ in range(5):
            assert await ask(ws, "backend") == pid
    await many_clients(server, ws_connect, "db", clients=5, messages=10)
    async with ws_connect(f"{server.ws}/orm/db") as ws:
        assert await ask(ws, "backend") == pid
    assert sessions(app_name) == [int(pid)]


async def test_broken_session_is_replaced_at_the_next_call(
    postgres_db: dict[str, str], start_server: StartServer, ws_connect: Any
) -> None:
    import psycopg

    migrate(postgres_db)
    server = start_server(APP, settings=SETTINGS, env={**postgres_db, "ORM_CONN_MAX_AGE": "60"})
    async with ws_connect(f"{server.ws}/orm/db") as ws:
        pid = await ask(ws, "backend")
        with psycopg.connect(**PG, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [int(pid)])
        assert (await ask(ws, "backend")).startswith("error: ")  # the first use fails, as in a view
        new = await ask(ws, "backend")
        assert new.isdigit() and new != pid  # database_sync_to_async dropped the broken one
        assert await ask(ws, "add:after") == "1"


async def test_broken_session_used_through_sync_to_async_ends_at_the_boundary(
    postgres_db: dict[str, str], start_server: StartServer, ws_connect: Any
) -> None:
    import psycopg

    migrate(postgres_db)
    server = start_server(APP, settings=SETTINGS, env={**postgres_db, "ORM_CONN_MAX_AGE": "60"})
    async with ws_connect(f"{server.ws}/orm/sync") as ws:
        pid = await ask(ws, "backend")
        with psycopg.connect(**PG, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [int(pid)])
        assert (await ask(ws, "backend")).startswith("error: ")
    async with ws_connect(f"{server.ws}/orm/sync") as ws:
        new = await ask(ws, "backend")  # the next websocket starts on a fresh session
        assert new.isdigit() and new != pid
