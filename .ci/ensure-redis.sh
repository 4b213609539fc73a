#!/usr/bin/env bash
# Make sure a Redis server answers at 127.0.0.1:6379 (channels-redis tests). Idempotent:
# does nothing when one already answers; otherwise starts redis-server (installing the Debian
# package first if needed) as a throwaway daemon with no persistence.
set -euo pipefail

host=127.0.0.1
port="${REDIS_PORT:-6379}"

answers() {
    if command -v redis-cli >/dev/null; then
        [[ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" == PONG ]]
    else  # no redis-cli: speak RESP over bash's /dev/tcp
        local reply
        { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
        printf 'PING\r\n' >&3
        read -r -t 2 reply <&3 || true
        exec 3<&-
        [[ "$reply" == +PONG* ]]
    fi
}

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else echo "ensure-redis: need root (or sudo) to run: $*" >&2; return 1
    fi
}

if answers; then
    echo "ensure-redis: Redis answers at $host:$port"
    exit 0
fi

if ! command -v redis-server >/dev/null; then
    echo "ensure-redis: installing redis-server (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        redis-server >/dev/null
    # The package may have started its own service already.
    for _ in $(seq 20); do answers && break; sleep 0.25; done
fi

if ! answers; then
    echo "ensure-redis: starting redis-server on $host:$port"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no
    for _ in $(seq 40); do answers && break; sleep 0.25; done
fi

if answers; then
    echo "ensure-redis: Redis answers at $host:$port"
else
    echo "ensure-redis: Redis does not answer at $host:$port" >&2
    exit 1
fi
