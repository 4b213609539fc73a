import json
import logging
import os
from collections.abc import Callable

import pytest


@pytest.fixture
def rc_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Captured records of the 'ravyn_channels' logger (INFO and up)."""
    caplog.set_level(logging.INFO, logger="ravyn_channels")
    return caplog


Record = Callable[..., None]


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Record:
    """``evidence(name, value, bound="< 0.25 s", unit="s")``: a figure this test measured.

    Printed; and with ``RAVYN_EVIDENCE=path`` (``python -m bench.evidence``) appended to that
    JSON-lines file, from which ``bench/evidence.md`` is written.
    """

    def record(name: str, value: float, bound: str = "", unit: str = "") -> None:
        line = {"test": request.node.nodeid, "name": name, "value": value, "bound": bound, "unit": unit}
        print(f"evidence: {name} = {value:g}{unit and ' ' + unit} (bound: {bound or '-'})")
        path = os.environ.get("RAVYN_EVIDENCE")
        if path:
            with open(path, "a") as out:
                out.write(json.dumps(line) + "\n")

    return record


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis(url: str = REDIS_URL) -> None:
    """Redis must answer at ``url``: under CI=true its absence fails the test, elsewhere it skips."""
    import redis

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
            client.ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required at {url} under CI: {exc}")
        pytest.skip(f"Redis not reachable at {url}: {exc}")


POSTGRES = {"host": "127.0.0.1", "port": 5432, "dbname": "postgres"}


def require_postgres() -> None:
    """PostgreSQL must answer at 127.0.0.1:5432 (and psycopg import): under CI=true its absence
    fails the test (`.ci/ensure-postgres.sh` provides it), elsewhere it skips."""
    try:
        import psycopg

        psycopg.connect(**POSTGRES, connect_timeout=2).close()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required at 127.0.0.1:5432 under CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
