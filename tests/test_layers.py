from ravyn_channels.layers import MAX_CONNECTIONS, redis_channel_layer


def test_redis_layer_disables_socket_timeout() -> None:
    layer = redis_channel_layer("redis://h:1/2", pubsub=False, prefix="p")
    assert layer == {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": "redis://h:1/2", "socket_timeout": None, "max_connections": MAX_CONNECTIONS}],
            "prefix": "p",
        },
    }


def test_pubsub_layer_is_the_default() -> None:
    assert redis_channel_layer()["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
