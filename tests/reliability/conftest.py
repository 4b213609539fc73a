from tests.integration.conftest import redis_ready, start_server, ws_connect  # noqa: F401  (shared fixtures)
