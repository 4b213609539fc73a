"""A burst of concurrent layer calls in one process on real Redis (redis-py 8's pool of 100).

redis-py 8 caps a connection pool at 100 connections and then raises ``MaxConnectionsError``
instead of waiting (redis-py 7 had no cap): a process with more than 100 layer calls in flight --
a busy chat, many rooms broadcasting at once -- lost those messages (the scale benchmark's
chat load: 802 of 1,000 rooms lost a message). ``redis_channel_layer`` and ``prepare_layer``
give the hosts a larger pool.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis
from django.utils.module_loading import import_string

from ravyn_channels.layers import MAX_CONNECTIONS, prepare_layer, redis_channel_layer

from .conftest import REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.redis]

#: Concurrent calls in the burst: well over redis-py 8's default pool of 100.
BURST = 400


def make_layer(config: dict[str, Any]) -> Any:
    return import_string(config["BACKEND"])(**config["CONFIG"])


async def burst(layer: Any) -> list[BaseException]:
    calls = [layer.group_send(f"g{i}", {"type": "chat.message", "text": "hi"}) for i in range(BURST)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


async def test_the_helpers_layer_takes_a_burst_over_100_concurrent_calls(redis_ready: None) -> None:
    # RedisChannelLayer: one pooled connection per call in flight (the pub/sub layer publishes on
    # one connection and was not affected).
    layer = make_layer(redis_channel_layer(REDIS_URL, pubsub=False, prefix=f"rc-pool-{uuid.uuid4().hex[:8]}"))
    try:
        assert await burst(layer) == []
    finally:
        await layer.flush()


async def test_prepared_layer_with_the_docs_hosts_takes_the_burst(redis_ready: None) -> None:
    url = redis.connection.parse_url(REDIS_URL)  # type: ignore[attr-defined]
    hosts = [(url.get("host", "127.0.0.1"), url.get("port", 6379))]
    config = {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": hosts}}
    bare, prepared = make_layer(config), make_layer(config)
    for layer in (bare, prepared):
        layer.prefix = f"rc-pool-{uuid.uuid4().hex[:8]}"
    assert prepare_layer(prepared) and prepared.hosts[0]["max_connections"] == MAX_CONNECTIONS
    try:
        assert await burst(prepared) == []
        if int(redis.__version__.split(".")[0]) >= 8:  # what the cap did (redis-py 7 has none)
            failures = await burst(bare)
            assert failures and all(type(f).__name__ == "MaxConnectionsError" for f in failures), failures[:3]
    finally:
        await prepared.flush()
        await bare.flush()
