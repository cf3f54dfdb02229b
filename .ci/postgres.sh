#!/usr/bin/env bash
# A throw-away PostgreSQL server for the store and ingest tests, listening on 127.0.0.1 only.
#
#   source .ci/postgres.sh        # installs (as root, if missing), starts, exports ATOMABENCH_TEST_PG_URL
#   bash .ci/postgres.sh          # same, and prints the URL
#
# Idempotent: a second run finds the cluster initialised and the server up and only re-exports the URL.
# Works as root on a fresh Debian machine (the server runs as the `postgres` user the package creates)
# and as an ordinary user with PostgreSQL installed (the server runs as that user). It initialises its
# own cluster in $ATOMABENCH_PG_DIR (default /tmp/atomabench-pg) on $ATOMABENCH_PG_PORT (default
# 55432), so it never touches the Debian `main` cluster or anything on port 5432.

_atomabench_pg() {
    local dir="${ATOMABENCH_PG_DIR:-/tmp/atomabench-pg}"
    local port="${ATOMABENCH_PG_PORT:-55432}"
    local user=atomabench password=atomabench database=atomabench_test
    local bin as=()

    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "postgres.sh: PostgreSQL is not installed and installing it needs root" >&2
            return 1
        fi
        echo "postgres.sh: installing PostgreSQL" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || return 1
        bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    fi

    mkdir -p "$dir" || return 1
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$dir" || return 1
        as=(runuser -u postgres --)
    fi

    if [ ! -s "$dir/data/PG_VERSION" ]; then
        rm -rf "$dir/data"
        "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; return 1; }
    fi

    if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >&2 ||
            { tail -n 20 "$dir/server.log" >&2; return 1; }
    fi

    local psql=("${as[@]}" "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != 1 ]; then
        "${psql[@]}" -c "CREATE ROLE $user LOGIN PASSWORD '$password'" >&2 || return 1
    fi
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]; then
        "${psql[@]}" -c "CREATE DATABASE $database OWNER $user" >&2 || return 1
    fi

    export ATOMABENCH_TEST_PG_URL="postgresql+psycopg://$user:$password@127.0.0.1:$port/$database"
    echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') ready: ATOMABENCH_TEST_PG_URL=$ATOMABENCH_TEST_PG_URL" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    _atomabench_pg && echo "$ATOMABENCH_TEST_PG_URL"
else
    _atomabench_pg
fi
