#!/usr/bin/env bash
# Make sure a PostgreSQL server at 127.0.0.1:5432 lets this user in without a password (trust)
# and create databases (tests/integration/test_orm.py). Idempotent: does nothing when that already
# works; otherwise installs Debian's postgresql if missing, starts its cluster, trusts loopback TCP
# connections and creates a superuser role named after this user.
set -euo pipefail

host=127.0.0.1
port=5432
me="$(id -un)"

listening() {
    { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
    exec 3<&-
}

usable() {  # connect as this user over TCP, never prompting for a password
    command -v psql >/dev/null && psql -h "$host" -p "$port" -d postgres -w -tAc 'SELECT 1' >/dev/null 2>&1
}

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else echo "ensure-postgres: need root (or sudo) to run: $*" >&2; return 1
    fi
}

wait_until() {
    for _ in $(seq 40); do "$@" && return 0; sleep 0.25; done
    return 1
}

if usable; then
    echo "ensure-postgres: PostgreSQL answers at $host:$port"
    exit 0
fi

if ! command -v pg_ctlcluster >/dev/null || [[ -z "$(ls /etc/postgresql 2>/dev/null)" ]]; then
    echo "ensure-postgres: installing postgresql (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        postgresql >/dev/null
fi
version="$(ls /etc/postgresql | sort -V | tail -n 1)"

if ! listening; then
    echo "ensure-postgres: starting PostgreSQL $version (cluster main)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_until listening || { echo "ensure-postgres: PostgreSQL does not listen at $host:$port" >&2; exit 1; }
fi

if ! usable; then
    echo "ensure-postgres: trusting loopback TCP connections; role $me as superuser"
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! as_root grep -q '^host all all 127.0.0.1/32 trust$' "$hba"; then
        as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"  # the first matching line wins
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
    as_root runuser -u postgres -- psql -p "$port" -tAc \
        "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$me') THEN
         CREATE ROLE \"$me\" SUPERUSER LOGIN; END IF; END\$\$" >/dev/null
fi

if wait_until usable; then
    echo "ensure-postgres: PostgreSQL answers at $host:$port"
else
    echo "ensure-postgres: PostgreSQL at $host:$port does not let $me in without a password" >&2
    exit 1
fi
